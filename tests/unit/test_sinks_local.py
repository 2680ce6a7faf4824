"""The shared sink suite on the local SQLite backend, plus what only that backend promises."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from finrisk.errors import FinriskError
from finrisk.settings import BridgeSettings, Settings
from finrisk.sinks import open_sink
from finrisk.sinks.local import LocalSink
from tests.support.sink_contract import MakeSink, SinkContract, record


class TestLocalSink(SinkContract):
    @pytest.fixture
    def make_sink(self, tmp_path: Path) -> MakeSink:
        return lambda: LocalSink(tmp_path / "anomalies.sqlite")


def test_local_sink_keeps_one_row_per_transaction_with_the_latest_values(tmp_path: Path) -> None:
    with LocalSink(tmp_path / "a.sqlite") as sink:
        sink.write([record(1, anomaly_score=0.6)])
        sink.flush()
        sink.write([record(1, anomaly_score=0.9)])
        sink.flush()
        assert [r.anomaly_score for r in sink.read()] == [0.9]


def test_failed_flush_keeps_the_records_for_the_next_one(tmp_path: Path) -> None:
    path = tmp_path / "a.sqlite"
    sink = LocalSink(path, deadline_s=0.2)
    sink.write([record(1)])
    # Another connection holding the write lock makes every attempt fail.
    blocker = sqlite3.connect(path, timeout=0)
    blocker.execute("BEGIN EXCLUSIVE")
    sink._db.execute("PRAGMA busy_timeout = 0")
    with pytest.raises(FinriskError, match=r"not stored \(\d+ attempts in 0.2 s\)"):
        sink.flush()
    assert sink.pending == 1
    blocker.rollback()
    blocker.close()
    assert sink.flush() == 1
    assert [r.transaction_id for r in sink.read()] == ["tx000001"]
    sink.close()


def test_unwritable_location_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(FinriskError, match="cannot open the local anomaly sink"):
        LocalSink(tmp_path / "file" / "a.sqlite")


def test_open_sink_follows_the_settings(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, bridge=BridgeSettings(sink="local"))
    sink = open_sink(settings)
    assert isinstance(sink, LocalSink)
    assert sink.path == tmp_path / "anomalies.sqlite"
    sink.close()
    assert open_sink(Settings(home=tmp_path, bridge=BridgeSettings(sink="none"))) is None
