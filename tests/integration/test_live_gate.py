"""The live gate of `finrisk monitor` against the real MLflow server and the BigQuery emulator:
a challenger pair the pipeline's gate shadowed is promoted only once the labelled shadowed
traffic says it beats the champion; each judgement is recorded; nothing else is touched."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from mlflow import MlflowClient

from finrisk import registry
from finrisk.bigquery_client import bigquery_client
from finrisk.errors import FinriskError
from finrisk.kinds import DETECTOR, RISK
from finrisk.labels import LabelRecord
from finrisk.monitoring.warehouse import Tables, ensure_tables, label_row, scored_row
from finrisk.outcomes import Outcomes
from finrisk.pipelines.monitor import run_once
from finrisk.retraining.live_promotion import _set_champions, judge_shadowed
from finrisk.settings import Settings
from finrisk.stack import Service
from tests.support import trained_models
from tests.support.closed_port import closed_port
from tests.support.monitoring_tables import NOW, decisions, realized

pytestmark = pytest.mark.integration

TRANSACTIONS, FRAUDS = 2_000, 60


class NoLaunch:
    def __call__(self, arguments: Any) -> str:
        raise AssertionError(f"the retraining policy started a run: {arguments}")


@pytest.fixture
def pair_names(mlflow_server: Service, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Champion pair v1 and challenger pair v2 registered; v2 not (yet) shadowed by the gate."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.address)
    suffix = uuid.uuid4().hex[:8]
    names = {DETECTOR: f"it-live-detector-{suffix}", RISK: f"it-live-risk-{suffix}"}
    models = {
        DETECTOR: trained_models.detector("supervised"),
        RISK: trained_models.risk_model(),
    }
    for kind, model in models.items():
        _, uri = registry.log_model(model, kind, experiment=f"it-live-{suffix}")
        registry.register(uri, names[kind], {"gate_decision": "promote", "pipeline_run_id": "r1"})
        registry.register(
            uri,
            names[kind],
            {
                "gate_decision": "keep_champion",
                "gate_reason": "shadow the challenger: detector pr_auc 0.81 beats 0.80",
                "gate_champion_version": "1",
                "pipeline_run_id": "r2",
            },
        )
        registry.set_alias(names[kind], registry.CHAMPION, "1")
        registry.set_alias(names[kind], registry.CHALLENGER, "2")
    return names


@pytest.fixture
def settings(
    bigquery_emulator: Service, stack_settings: Settings, pair_names: dict[str, str]
) -> Iterator[Settings]:
    bq = stack_settings.bigquery
    dataset = f"test_live_{uuid.uuid4().hex[:10]}"
    client = bigquery_client(bq.project, bq.endpoint)
    ensure_tables(client, Tables(bq.project, dataset))
    monitor = stack_settings.monitor.model_copy(
        update={
            "bigquery_dataset": dataset,
            "bigquery_endpoint": bq.endpoint,
            "model": pair_names[DETECTOR],
            "risk_model": pair_names[RISK],
            "live_min_frauds": 30,
        }
    )
    yield stack_settings.model_copy(update={"monitor": monitor})
    client.close()


def _shadowed_traffic(settings: Settings) -> list[LabelRecord]:
    """Transactions the champion v1 scored with v2 shadowing: of 60 frauds the champion flags
    30, the challenger 50; both raise 20 false alerts. Returns the fraud labels (not loaded)."""
    bq = settings.bigquery
    client = bigquery_client(bq.project, bq.endpoint)
    tables = Tables(bq.project, settings.monitor.bigquery_dataset)
    start = NOW - timedelta(days=3)
    rows, labels = [], []
    for i in range(TRANSACTIONS):
        fraud = i < FRAUDS
        event = start + timedelta(seconds=60 * i)
        record = {
            "transaction_id": f"t{i}",
            "user_id": f"u{i % 97}",
            "event_time": event.isoformat(),
            "scored_at_ms": int(event.timestamp() * 1000) + 40,
            "anomaly_score": 0.9 if fraud else 0.1,
            "is_anomaly": (fraud and i < 30) or FRAUDS <= i < FRAUDS + 20,
            "threshold": 0.5,
            "detector_version": "1",
            "risk_model_version": "1",
            "challenger_version": "2",
            "challenger_score": 0.8,
            "challenger_is_anomaly": (fraud and i < 50) or FRAUDS + 20 <= i < FRAUDS + 40,
        }
        rows.append(scored_row(record))
        if fraud:
            labels.append(
                LabelRecord(
                    f"t{i}", f"u{i % 97}", event, "fraud_confirmed", event + timedelta(days=1), "it"
                )
            )
    ids, values = zip(*rows, strict=True)
    assert client.insert_rows_json(tables.scored_id, list(values), row_ids=list(ids)) == []
    client.close()
    return labels


def _load(settings: Settings, labels: list[LabelRecord]) -> None:
    bq = settings.bigquery
    client = bigquery_client(bq.project, bq.endpoint)
    ids, values = zip(*(label_row(label) for label in labels), strict=True)
    table = Tables(bq.project, settings.monitor.bigquery_dataset).labels_id
    assert client.insert_rows_json(table, list(values), row_ids=list(ids)) == []
    client.close()


def _judgements(settings: Settings) -> list[dict[str, Any]]:
    return [row for row in decisions(settings) if row["source"] == "live-gate"]


def _champion(names: dict[str, str]) -> dict[str, str]:
    found = {kind: registry.get_version(name, registry.CHAMPION) for kind, name in names.items()}
    return {kind: version.version for kind, version in found.items() if version is not None}


def test_a_shadowed_pair_is_promoted_once_labelled_live_traffic_agrees(
    settings: Settings, pair_names: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    labels = _shadowed_traffic(settings)

    # v2 was kept by the gate, not shadowed: the live gate leaves it alone.
    run_once(settings, NoLaunch(), {}, realized=realized, now=NOW)
    assert _judgements(settings) == []
    assert "challenger v2 was not shadowed (gate: keep_champion)" in capsys.readouterr().out

    client = MlflowClient()
    for name in pair_names.values():
        client.set_model_version_tag(name, "2", "gate_decision", "shadow")

    # Shadowed, but only 20 of its frauds confirmed so far: wait for labels.
    _load(settings, labels[:20])
    run_once(settings, NoLaunch(), {}, realized=realized, now=NOW + timedelta(minutes=1))
    (waiting,) = _judgements(settings)
    reasons = json.loads(waiting["reasons"])
    assert reasons[0].startswith("keep shadowing: live: not judged yet: 20 confirmed frauds")
    assert (
        "on the same 2,000 shadowed transactions (20 labelled, 20 confirmed frauds)" in (reasons[0])
    )
    assert _champion(pair_names) == {DETECTOR: "1", RISK: "1"}

    # Every fraud confirmed: F1 of the challenger 2*50/(70+60) beats the champion's 2*30/(50+60).
    _load(settings, labels[20:])
    run_once(settings, NoLaunch(), {}, realized=realized, now=NOW + timedelta(minutes=2))
    promoted = _judgements(settings)[-1]
    reason = json.loads(promoted["reasons"])[0]
    assert reason.startswith(
        "promote the challenger: live: live f1 0.7692 beats the champion's 0.5455"
    )
    assert reason.endswith(
        "offline: shadow the challenger: detector pr_auc 0.81 beats 0.80 "
        "(predictors follow the aliases)"
    )
    signals = json.loads(promoted["signals"])
    assert signals["action"] == "promote"
    assert signals["live_challenger"]["true_alerts"] == 50
    assert signals["live_champion"]["true_alerts"] == 30
    assert (promoted["retrain"], promoted["run"], promoted["launch_error"]) == (False, None, None)
    assert _champion(pair_names) == {DETECTOR: "2", RISK: "2"}

    # The challenger is the champion now: nothing left to judge, nothing recorded.
    run_once(settings, NoLaunch(), {}, realized=realized, now=NOW + timedelta(minutes=3))
    assert len(_judgements(settings)) == 2
    assert "no challenger beside the champion" in capsys.readouterr().out


def test_a_pair_from_two_runs_or_a_moved_champion_is_not_promoted(
    settings: Settings, pair_names: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    _load(settings, _shadowed_traffic(settings))
    client = MlflowClient()
    _shadow(pair_names)
    client.set_model_version_tag(pair_names[RISK], "2", "pipeline_run_id", "another-run")
    run_once(settings, NoLaunch(), {}, realized=realized, now=NOW)
    assert "the risk model's challenger is not the shadowed pair of run r2" in (
        capsys.readouterr().out
    )

    client.set_model_version_tag(pair_names[RISK], "2", "pipeline_run_id", "r2")
    client.set_model_version_tag(pair_names[DETECTOR], "2", "gate_champion_version", "7")
    run_once(settings, NoLaunch(), {}, realized=realized, now=NOW + timedelta(minutes=1))
    out = capsys.readouterr().out
    assert "judged offline against champion v7; the champion is now v1" in out
    assert _judgements(settings) == [] and _champion(pair_names) == {DETECTOR: "1", RISK: "1"}


def test_mlflow_out_of_reach_is_recorded_and_the_retraining_decision_stands(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    with closed_port() as port:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{port}")
        monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        row = run_once(settings, NoLaunch(), {}, realized=realized, now=NOW)
    assert row["source"] == "monitor" and row["retrain"] is False
    (failed,) = _judgements(settings)
    assert json.loads(failed["reasons"])[0].startswith("live gate not judged: ")
    assert "@champion failed" in failed["launch_error"]
    assert "Connection refused" in failed["launch_error"]


def _shadow(names: dict[str, str]) -> None:
    client = MlflowClient()
    for name in names.values():
        client.set_model_version_tag(name, "2", "gate_decision", "shadow")


def _winning(champion: str, challenger: str) -> tuple[Outcomes, Outcomes]:
    """The shadowed traffic of test one, fully labelled: the challenger wins."""
    assert (champion, challenger) == ("1", "2")
    return Outcomes(2000, 60, 60, 50, 30), Outcomes(2000, 60, 60, 70, 50)


def test_a_winning_pair_is_rolled_out_before_its_aliases_move(
    settings: Settings, pair_names: dict[str, str]
) -> None:
    """The deploy step pins versions on the champion's InferenceService: the live gate rolls
    the pair out there first (the deploy code, tested against the real API server), and a
    rollout that fails moves no alias."""
    _shadow(pair_names)
    calls: list[dict[str, str]] = []

    def failing(versions: Any) -> str:
        calls.append(dict(versions))
        raise FinriskError("rolling out failed: not Ready; put back, and no alias moved")

    with pytest.raises(FinriskError, match="not Ready"):
        judge_shadowed(settings.monitor, _winning, rollout=failing)
    assert calls == [{DETECTOR: "2", RISK: "2"}]
    assert _champion(pair_names) == {DETECTOR: "1", RISK: "1"}

    def rolling(versions: Any) -> str:
        assert _champion(pair_names) == {DETECTOR: "1", RISK: "1"}  # aliases after, not before
        return f"rolled out: InferenceService finrisk/finrisk on {dict(versions)}"

    judgement = judge_shadowed(settings.monitor, _winning, rollout=rolling)
    assert judgement.promoted
    assert judgement.reason.endswith(
        "(rolled out: InferenceService finrisk/finrisk on {'detector': '2', 'risk': '2'})"
    )
    assert _champion(pair_names) == {DETECTOR: "2", RISK: "2"}


def test_a_promotion_stopped_half_way_is_put_back_or_finished(
    settings: Settings, pair_names: dict[str, str]
) -> None:
    # The second alias cannot move (no such model): the first is put back.
    names = {DETECTOR: pair_names[DETECTOR], RISK: f"{pair_names[RISK]}-missing"}
    with pytest.raises(FinriskError, match=r"promoting .* stopped"):
        _set_champions({DETECTOR: "2", RISK: "2"}, names, None, previous={DETECTOR: "1"})
    assert _champion(pair_names) == {DETECTOR: "1", RISK: "1"}

    # A split pair left by a crash between the two moves: the next evaluation finishes it.
    _shadow(pair_names)
    registry.set_alias(pair_names[DETECTOR], registry.CHAMPION, "2")
    judgement = judge_shadowed(settings.monitor, _winning)
    assert judgement.decision is None
    assert judgement.reason.startswith("finished a promotion left half done")
    assert _champion(pair_names) == {DETECTOR: "2", RISK: "2"}


def test_a_pair_without_a_run_id_is_not_taken_for_one_run(
    settings: Settings, pair_names: dict[str, str]
) -> None:
    _shadow(pair_names)
    client = MlflowClient()
    for name in pair_names.values():
        client.delete_model_version_tag(name, "2", "pipeline_run_id")
    judgement = judge_shadowed(settings.monitor, _winning)
    assert judgement.decision is None and "of run unknown" in judgement.reason
    assert _champion(pair_names) == {DETECTOR: "1", RISK: "1"}
