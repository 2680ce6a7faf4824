"""The end-to-end demo (`finrisk demo`, `make demo`)."""

from finrisk.demo.run import DemoOptions, run_demo
from finrisk.demo.summary import DemoSummary, StreamSummary, format_summary, summarise_stream

__all__ = [
    "DemoOptions",
    "DemoSummary",
    "StreamSummary",
    "format_summary",
    "run_demo",
    "summarise_stream",
]
