"""The anomaly sink behind the bridge: in a thread of its own, written per batch, flushed per
checkpoint, with rows the sink refuses for good handed back beside their input messages.

Flushing once per checkpoint rather than per batch is one request (BigQuery: one insertAll per
500 rows) a second instead of dozens: the sink only needs to be durable before offsets are
committed, which happens at checkpoints. The writer's thread runs writes and flushes in the
order given, so a flush covers every write handed over before it.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from confluent_kafka import Message

from finrisk.sinks import AnomalyRecord, AnomalySink
from finrisk.sinks.base import Rejected


@dataclass
class Flush:
    """A flush handed to the sink's thread, and the transactions it makes durable."""

    future: Future[list[Rejected]]
    covers: list[str]


class SinkWriter:
    def __init__(self, sink: AnomalySink) -> None:
        self.sink = sink
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bridge-sink")
        # Anomalies written and not yet flushed (transaction id -> its input message): the
        # backlog, and where a row the sink refuses came from.
        self._unflushed: dict[str, Message] = {}

    @property
    def backlog(self) -> int:
        """Anomaly rows handed over and not yet known durable."""
        return len(self._unflushed)

    def write(self, anomalies: list[AnomalyRecord], messages: list[Message]) -> None:
        """Buffer a batch's anomalies in the sink (its thread); durable at the next flush."""
        if not anomalies:
            return
        self._unflushed.update(zip([a.transaction_id for a in anomalies], messages, strict=True))
        self._thread.submit(self.sink.write, anomalies)

    def flush(self) -> Flush | None:
        """Make every anomaly written so far durable, in the sink's thread; None: none is due."""
        if not self._unflushed:
            return None
        return Flush(self._thread.submit(self._flush), list(self._unflushed))

    def finish(self, flush: Flush) -> list[tuple[Message, Rejected]]:
        """Wait for a flush: the rows refused for good, with their input messages. SinkError
        when it failed: everything stays due, and the next flush tries again."""
        rejected = flush.future.result()
        unflushed = self._unflushed
        refused = [
            (unflushed[r.record.transaction_id], r)
            for r in rejected
            if r.record.transaction_id in unflushed
        ]
        for tx_id in flush.covers:
            self._unflushed.pop(tx_id, None)
        return refused

    def _flush(self) -> list[Rejected]:
        self.sink.flush()
        return self.sink.take_rejected()

    def close(self) -> None:
        self._thread.shutdown(wait=True)
        self.sink.close()
