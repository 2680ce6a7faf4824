"""`finrisk bridge --workers N`: what each worker process is given, and the flag's checks.
(The workers themselves run against the real broker in tests/integration/test_bridge.py.)"""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from finrisk.cli import build_parser
from finrisk.errors import FinriskError
from finrisk.serving.bridge import kafka_config
from finrisk.serving.bridge.cli import bridge_settings
from finrisk.serving.bridge.workers import worker_settings
from finrisk.settings import BridgeSettings, Settings
from finrisk.stack.process import free_port, port_in_use
from tests.support.closed_port import closed_port


def _settings(**bridge: object) -> Settings:
    return Settings().model_copy(update={"bridge": BridgeSettings.model_validate(bridge)})


def test_each_worker_serves_on_its_own_port_and_is_a_single_worker() -> None:
    settings = _settings(workers=3, http_port=9200, group_id="g")
    workers = [worker_settings(settings, i, 3).bridge for i in range(3)]
    assert [w.http_port for w in workers] == [9200, 9201, 9202]
    assert {w.workers for w in workers} == {1}
    assert {w.group_id for w in workers} == {"g"}  # one consumer group
    assert {w.transactional_id for w in workers} == {None}  # at least once: no producer id


def test_port_zero_stays_any_free_port_for_every_worker() -> None:
    settings = _settings(workers=2, http_port=0)
    assert [worker_settings(settings, i, 2).bridge.http_port for i in range(2)] == [0, 0]


def test_exactly_once_workers_have_distinct_stable_transactional_ids() -> None:
    settings = _settings(workers=2, exactly_once=True, group_id="g")
    base = kafka_config.transactional_id(settings.bridge)
    ids = [worker_settings(settings, i, 2).bridge.transactional_id for i in range(2)]
    assert ids == [f"{base}-0", f"{base}-1"]
    # Another start of the same supervisor fences exactly these ids: they do not change.
    assert ids == [worker_settings(settings, i, 2).bridge.transactional_id for i in range(2)]
    named = _settings(workers=2, exactly_once=True, transactional_id="tx")
    assert worker_settings(named, 1, 2).bridge.transactional_id == "tx-1"


def test_ports_past_the_last_are_a_clear_error() -> None:
    settings = _settings(workers=4, http_port=65_534)
    with pytest.raises(FinriskError, match=r"ports 65534\.\.65537"):
        worker_settings(settings, 0, 4)


def test_the_workers_flag_lands_in_the_settings_and_is_checked() -> None:
    settings = bridge_settings(build_parser().parse_args(["bridge", "--workers", "3"]))
    assert settings.bridge.workers == 3
    with pytest.raises(FinriskError, match="--workers"):
        bridge_settings(build_parser().parse_args(["bridge", "--workers", "0"]))


def test_the_bench_needs_a_partition_per_worker() -> None:
    args = build_parser().parse_args(["bench", "bridge", "--workers", "4", "--partitions", "3"])
    with pytest.raises(FinriskError, match="--workers 4 exceeds --partitions 3"):
        args.handler(args)


def test_a_free_port_run_is_free_after_its_first_port() -> None:
    port = free_port(run=3)
    assert not any(port_in_use(p) for p in range(port, port + 3))
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        assert port_in_use(taken.getsockname()[1])  # the check sees a bound port


def test_a_worker_that_cannot_start_fails_the_supervisor_with_its_reason(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """No broker where the settings point: each worker says why in one line, and the
    supervisor exits non-zero naming the worker (no traceback)."""
    with closed_port() as port:
        nowhere = f"127.0.0.1:{port}"
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "finrisk",
                "bridge",
                "--workers",
                "2",
                "--http-port",
                "0",
                "--bootstrap-servers",
                nowhere,
            ],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
        )
    assert done.returncode != 0
    assert f"Kafka at {nowhere}" in done.stderr
    assert "finrisk: error: bridge worker" in done.stderr
    assert "Traceback" not in done.stderr
