"""The decision and the pipeline together, with kfp.local, the real MLflow server and the
BigQuery emulator:

- a scheduled-style run (force_training=false) on stable monitoring windows: the check-drift
  step reads the table, records its decision, and the run skips training;
- `finrisk monitor --once --local` on drifted windows starts a real local retraining run that
  trains and registers a champion.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from finrisk.cli import main
from finrisk.registry.names import CHAMPION
from finrisk.retraining.registration import alias_versions
from finrisk.settings import Settings
from finrisk.stack import Service
from tests.support.monitoring_tables import create_tables, decisions, insert, window

pytestmark = pytest.mark.integration


def _tasks(root: Path) -> set[str]:
    (run,) = [p for p in root.iterdir() if p.is_dir()]
    return {p.name for p in run.iterdir()}


@pytest.fixture
def monitor_env(
    bigquery_emulator: Service, stack_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    """Fresh tables; the tasks (subprocesses of this one) and the monitor read them."""
    tables = create_tables(stack_settings)
    monkeypatch.setenv("FINRISK_MONITOR__BIGQUERY_DATASET", tables.monitor.bigquery_dataset)
    monkeypatch.setenv("FINRISK_MONITOR__BIGQUERY_ENDPOINT", str(tables.monitor.bigquery_endpoint))
    return tables


def test_a_run_that_decides_by_policy_skips_training_when_nothing_changed(
    mlflow_server: Service,
    monitor_env: Settings,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    insert(monitor_env, [window(i, 0.02) for i in range(5)])
    root = tmp_path / "outputs"
    argv = ["pipeline", "run", "--local", "--json", "--pipeline-root", str(root)]
    argv += ["--tracking-uri", mlflow_server.address, "-p", "force_training=false"]
    argv += ["-p", f"detector_model_name=skip-det-{uuid.uuid4().hex[:8]}"]
    assert main(argv) == 0, capsys.readouterr().err[-3000:]
    tasks = _tasks(root)
    assert {"check-drift", "keep-champion-2"} <= tasks
    assert not tasks & {"ingest-data", "train-detector", "register-challenger"}
    (decision,) = decisions(monitor_env)
    assert (decision["source"], decision["retrain"]) == ("pipeline", False)
    reasons = json.loads(decision["reasons"])
    assert reasons[0] == "no drift: max PSI 0.03 < 0.25 over 5 windows"  # the score PSI


def test_monitor_once_starts_a_real_local_retraining_run(
    mlflow_server: Service,
    monitor_env: Settings,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No realized metrics exist in this branch's reader: drift alone, min labels 0."""
    insert(monitor_env, [window(i, psi) for i, psi in enumerate([0.3, 0.35, 0.5])])
    suffix = uuid.uuid4().hex[:8]
    names = {"detector": f"mon-det-{suffix}", "risk": f"mon-risk-{suffix}"}
    root = tmp_path / "outputs"
    argv = ["monitor", "--once", "--local", "--min-labels", "0", "--pipeline-root", str(root)]
    argv += ["--tracking-uri", mlflow_server.address, "-p", "synthetic_users=150"]
    argv += ["-p", f"detector_model_name={names['detector']}"]
    argv += ["-p", f"risk_model_name={names['risk']}"]
    assert main(argv) == 0, capsys.readouterr().err[-3000:]
    lines = [json.loads(text) for text in capsys.readouterr().out.strip().splitlines()]
    (line,) = [found for found in lines if found["source"] == "monitor"]
    # Then the live gate, against the same MLflow: the new champion has no challenger beside it.
    assert lines[-1] == {"source": "live-gate", "reason": "no challenger beside the champion"}
    assert line["retrain"] is True and line["run"].startswith(f"local {root}")
    # The run was forced (the monitor had decided): it trained, and a champion now exists.
    assert {"check-drift", "ingest-data", "train-detector", "register-challenger"} <= _tasks(root)
    (decision,) = decisions(monitor_env)  # the forced check records nothing of its own
    assert (decision["source"], decision["retrain"]) == ("monitor", True)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.address)
    champion = alias_versions(CHAMPION, model_names=names)
    assert all(version is not None for version in champion.values())
