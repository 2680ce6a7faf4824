"""`finrisk monitor` against the BigQuery emulator: windows it reads from a `model_monitoring`
table written here as the bridge writes it, decisions it records, runs it starts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import pytest

from finrisk.pipelines.monitor import run_once
from finrisk.settings import Settings
from finrisk.stack import Service
from tests.support.monitoring_tables import NOW, create_tables, decisions, insert, realized, window

pytestmark = pytest.mark.integration


@pytest.fixture
def tables(bigquery_emulator: Service, stack_settings: Settings) -> Settings:
    return create_tables(stack_settings)


class Recorder:
    def __init__(self) -> None:
        self.started: list[dict[str, Any]] = []

    def __call__(self, arguments: Mapping[str, Any]) -> str:
        self.started.append(dict(arguments))
        return f"recorded run {len(self.started)}"


def test_sustained_drift_starts_one_run_then_the_cooldown_holds(
    tables: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    # The challenger's stable windows sit beside the champion's drifted ones.
    insert(tables, [window(i, psi) for i, psi in enumerate([0.02, 0.03, 0.31, 0.4, 0.45])])
    insert(tables, [window(i, 0.01, role="challenger") for i in range(5)])
    launcher = Recorder()
    first = run_once(tables, launcher, {"seed": 5}, realized=realized, now=NOW)
    assert launcher.started == [{"seed": 5, "force_training": True}]
    line = json.loads(capsys.readouterr().out.strip())
    assert line["retrain"] is True and line["run"] == "recorded run 1"
    assert line["reasons"] == [
        "drift: PSI >= 0.25 in each of the last 3 windows (0.31, 0.40, 0.45)"
    ]
    assert line["signals"]["windows"] == 5 and line["signals"]["labels"] == 2100

    second = run_once(tables, launcher, {}, realized=realized, now=NOW + timedelta(hours=2))
    assert len(launcher.started) == 1  # nothing more started
    assert second["retrain"] is False
    assert json.loads(second["reasons"])[0] == "cooldown: last retrain 2.0 h ago < 24 h"

    stored = decisions(tables)
    assert [(r["retrain"], r["run"], r["source"]) for r in stored] == [
        (True, "recorded run 1", "monitor"),
        (False, None, "monitor"),
    ]
    assert json.loads(stored[0]["reasons"]) == json.loads(first["reasons"])
    assert json.loads(stored[0]["signals"])["max_psi"] == pytest.approx(0.45)


def test_stable_windows_start_nothing_and_are_recorded(tables: Settings) -> None:
    insert(tables, [window(i, 0.04) for i in range(5)])
    launcher = Recorder()
    row = run_once(tables, launcher, {}, realized=realized, now=NOW)
    assert launcher.started == []
    assert json.loads(row["reasons"])[0] == "no drift: max PSI 0.04 < 0.25 over 5 windows"
    (stored,) = decisions(tables)
    assert (stored["retrain"], stored["run"], stored["launch_error"]) == (False, None, None)


def test_a_run_that_cannot_start_is_recorded_and_does_not_start_the_cooldown(
    tables: Settings,
) -> None:
    from finrisk.errors import FinriskError

    def refuses(arguments: Mapping[str, Any]) -> str:
        raise FinriskError("Kubeflow Pipelines could not start run: HTTP 503")

    insert(tables, [window(i, 0.5) for i in range(5)])
    failed = run_once(tables, refuses, {}, realized=realized, now=NOW)
    assert failed["retrain"] is True and "HTTP 503" in failed["launch_error"]
    launcher = Recorder()
    run_once(tables, launcher, {}, realized=realized, now=NOW + timedelta(minutes=5))
    assert len(launcher.started) == 1


def test_cli_once_on_a_stable_table(tables: Settings) -> None:
    """The command itself, as a process: one JSON line, one decisions row, exit 0."""
    insert(tables, [window(i, 0.03) for i in range(4)])
    env = {
        **os.environ,
        "FINRISK_MONITOR__BIGQUERY_DATASET": tables.monitor.bigquery_dataset,
        "FINRISK_MONITOR__BIGQUERY_ENDPOINT": str(tables.monitor.bigquery_endpoint),
        # The retraining policy alone, as the fixture's settings (test_live_gate.py: the rest).
        "FINRISK_MONITOR__LIVE_GATE": "false",
    }
    out = subprocess.run(
        [sys.executable, "-m", "finrisk", "monitor", "--once", "--local"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    (line,) = out.stdout.strip().splitlines()
    decision = json.loads(line)
    assert decision["retrain"] is False
    assert decision["reasons"][0] == "no drift: max PSI 0.03 < 0.25 over 4 windows"
    assert [r["decision_id"] for r in decisions(tables)] == [decision["decision_id"]]
