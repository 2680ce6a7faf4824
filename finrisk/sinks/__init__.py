"""Anomaly sinks: where the streaming bridge stores flagged transactions.

`base` holds the interface and the record; `local` (SQLite, the embedded default) and `bigquery`
are the backends. `open_sink(settings)` picks one from the bridge settings.
"""

from __future__ import annotations

from finrisk.settings import Settings
from finrisk.sinks.base import FIELD_TYPES, AnomalyRecord, AnomalySink, SinkError

__all__ = ["FIELD_TYPES", "AnomalyRecord", "AnomalySink", "SinkError", "open_sink"]


def open_sink(settings: Settings) -> AnomalySink | None:
    """The sink named by `settings.bridge.sink`; None for "none"."""
    bridge = settings.bridge
    if bridge.sink == "none":
        return None
    if bridge.sink == "local":
        from finrisk.sinks.local import LocalSink

        path = bridge.local_sink_path or settings.home / "anomalies.sqlite"
        return LocalSink(path, deadline_s=bridge.sink_timeout_s)
    from finrisk.sinks.bigquery import BigQuerySink

    return BigQuerySink(
        bridge.bigquery_project or settings.bigquery.project,
        bridge.bigquery_dataset,
        bridge.bigquery_table,
        endpoint=bridge.bigquery_endpoint,
        location=bridge.bigquery_location,
        deadline_s=bridge.sink_timeout_s,
    )
