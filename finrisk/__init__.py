"""finrisk: real-time transaction anomaly detection and personal financial risk scoring."""

__version__ = "0.1.0"
