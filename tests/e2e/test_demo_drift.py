"""`finrisk demo --drift`: the closed loop really closes. Checked against what the run wrote
(the scored topic, the decisions table, the registry) and against the generator's ground truth
recomputed here, not against the demo's own arithmetic."""

from __future__ import annotations

import io
from datetime import datetime

import pandas as pd
import pytest

from finrisk import registry
from finrisk.bigquery_client import bigquery_client
from finrisk.demo.drift import run_drift_demo
from finrisk.demo.drift_summary import format_summary
from finrisk.demo.options import DriftOptions
from finrisk.kinds import CHAMPION
from finrisk.settings import Settings
from finrisk.stack import Service
from finrisk.synthetic import generate
from tests.support.kafka_reading import count_at_least, read_topic

pytestmark = pytest.mark.e2e


def test_drift_is_caught_retrained_on_labels_promoted_and_recall_recovers(
    kafka: Service, mlflow_server: Service, bigquery_emulator: Service, stack_settings: Settings
) -> None:
    options = DriftOptions(progress=False)
    log = io.StringIO()
    summary = run_drift_demo(options, stack_settings, out=log)
    text = format_summary(summary)

    # The loop happened: a decision to retrain, with its reasons, in the decisions table.
    assert [d["retrain"] for d in summary.decisions] == [True], text
    assert any(r.startswith("drift:") for r in summary.decisions[0]["reasons"]), text
    project, dataset = summary.tables["BigQuery"].split(" ")[0].split(".")
    client = bigquery_client(project, stack_settings.bigquery.endpoint)
    rows = list(client.query(f"SELECT * FROM `{project}.{dataset}.monitor_decisions`").result())
    assert [row["retrain"] for row in rows] == [True]
    assert rows[0]["run"] and not rows[0]["launch_error"]
    client.close()
    # The gate promoted the retrained detector, and the predictor served it from then on.
    assert summary.champion_after is not None and summary.champion_after != summary.champion_before
    tracking = stack_settings.mlflow.tracking_uri
    found = registry.get_version(summary.detector_model, CHAMPION, tracking_uri=tracking)
    assert found is not None and str(found.version) == summary.champion_after

    # The ground truth, generated again here, and every scored record.
    now = pd.Timestamp(summary.retrain_at)
    start = now - pd.Timedelta(days=options.drift_day + options.days_drifted)
    stream, _, _ = generate(
        options.stream_users,
        options.drift_day + options.days_drifted + options.days_after,
        options.seed + 1,
        start,
        scenario="drift",
        drift_day=options.drift_day,
    )
    prefix = f"{summary.run_id}-"
    kind = dict(zip(prefix + stream["transaction_id"], stream["fraud_type"], strict=True))
    records = [
        r.json()
        for r in read_topic(
            stack_settings.kafka.bootstrap_servers,
            summary.scored_topic,
            until=count_at_least(len(stream)),
            timeout_s=120,
        )
    ]
    assert sorted(str(r["transaction_id"]) for r in records) == sorted(kind)
    shift = datetime.fromisoformat(summary.shift_at)
    new = set(summary.new_fraud_types)
    assert new and not new & set(stream.loc[stream["timestamp"] < shift, "fraud_type"])

    def recall(rows: list[dict[str, object]], types: set[str]) -> float:
        frauds = [r for r in rows if kind[str(r["transaction_id"])] in types]
        return sum(bool(r["is_anomaly"]) for r in frauds) / len(frauds)

    old = set(stream["fraud_type"]) - new - {"none"}
    when = {str(r["transaction_id"]): datetime.fromisoformat(str(r["event_time"])) for r in records}
    before_shift = [r for r in records if when[str(r["transaction_id"])] < shift]
    after = [r for r in records if when[str(r["transaction_id"])] >= now.to_pydatetime()]
    # Scored after the retraining by the new champion, every one.
    assert {r["detector_version"] for r in after} == {summary.champion_after}
    old_before, new_after = recall(before_shift, old), recall(after, new)
    assert old_before == pytest.approx(summary.recall_old_before_shift.value)
    assert new_after == pytest.approx(summary.recall_new_after_retraining.value)
    # Recall on the pattern the first champion never saw came back (the target).
    assert new_after >= 0.9 * old_before, text
    assert summary.detection["transactions_after_shift"] is not None, text
    assert "drift caught" in text and "stream the next" in log.getvalue()
