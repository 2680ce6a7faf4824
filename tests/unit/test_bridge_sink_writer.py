"""The sink behind the bridge: written per batch, flushed per checkpoint, refused rows handed
back with their input messages, and a failed flush leaving everything due."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from confluent_kafka import Message

from finrisk.serving.bridge.sink_writer import SinkWriter
from finrisk.sinks import AnomalyRecord, AnomalySink, SinkError
from finrisk.sinks.base import Rejected
from tests.support.sink_contract import record


class ScriptedSink(AnomalySink):
    """Stores in memory; refuses the ids in `refuse`; fails while `down`."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, AnomalyRecord] = {}
        self.refuse: set[str] = set()
        self.down = False
        self.requests = 0

    @property
    def location(self) -> str:
        return "scripted"

    def _store(self, records: Sequence[AnomalyRecord]) -> None:
        self.requests += 1
        if self.down:
            raise SinkError("down")
        for r in records:
            if r.transaction_id in self.refuse:
                self._rejected.append(Rejected(r, "invalid: no such column"))
            else:
                self.rows[r.transaction_id] = r

    def read(self) -> list[AnomalyRecord]:
        return list(self.rows.values())


def _msg(i: int) -> Message:
    return Message(topic="tx", partition=0, offset=i, key=b"u", value=b"v%d" % i)


def test_writes_wait_for_one_flush_and_refused_rows_come_back_with_their_messages() -> None:
    sink = ScriptedSink()
    sink.refuse = {"tx000002"}
    writer = SinkWriter(sink)
    for i in range(4):
        writer.write([record(i)], [_msg(i)])
    assert writer.backlog == 4 and sink.requests == 0
    flush = writer.flush()
    assert flush is not None
    refused = writer.finish(flush)
    assert [(msg.offset(), r.reason) for msg, r in refused] == [(2, "invalid: no such column")]
    assert sorted(sink.rows) == ["tx000000", "tx000001", "tx000003"]
    assert sink.requests == 1 and writer.backlog == 0
    assert writer.flush() is None  # nothing new
    writer.close()


def test_a_failed_flush_leaves_everything_due_for_the_next() -> None:
    sink = ScriptedSink()
    writer = SinkWriter(sink)
    writer.write([record(1)], [_msg(1)])
    sink.down = True
    failed = writer.flush()
    assert failed is not None
    with pytest.raises(SinkError):
        writer.finish(failed)
    assert writer.backlog == 1
    writer.write([record(2)], [_msg(2)])
    sink.down = False
    again = writer.flush()
    assert again is not None and writer.finish(again) == []
    assert sorted(sink.rows) == ["tx000001", "tx000002"] and writer.backlog == 0
    writer.close()
