"""Confirmed labels in the warehouse: `finrisk labels load|produce|report`."""
