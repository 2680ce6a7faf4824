"""The bridge's clean run: real broker, real predictor (`finrisk serve` on models registered in
the real MLflow server), BigQuery emulator; the bridge runs as `finrisk bridge` subprocesses.

One clean run over a stream with poison messages is the reference (conftest.py); the other
modules' fault scenarios must score every transaction exactly as it did. Here: what the clean
run wrote, and the benchmark with its one-call-per-message baseline.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import pytest

from finrisk.bench import bridge as benchmark
from finrisk.bench.one_per_message import run_one_per_message
from finrisk.serving.bridge import kafka_config
from finrisk.settings import Settings
from finrisk.stack import Service, topics
from tests.integration.bridge import runs
from tests.support.kafka_reading import count_at_least, read_topic

pytestmark = pytest.mark.integration

# ---------------------------------------------------------------- the clean run


def test_every_transaction_is_scored_exactly_once(
    reference: runs.Reference, valid_ids: list[str]
) -> None:
    ids = [r.json()["transaction_id"] for r in reference.scored]
    assert sorted(ids) == sorted(valid_ids)
    assert reference.returncode == 0


def test_scored_records_carry_scores_bands_reasons_versions_and_latency(
    reference: runs.Reference, served: runs.Served
) -> None:
    docs = [r.json() for r in reference.scored]
    versions = served.models.versions
    for doc in docs:
        assert math.isfinite(doc["anomaly_score"])
        assert doc["is_anomaly"] == (doc["anomaly_score"] >= doc["threshold"])
        assert doc["risk_band"] in ("LOW", "MEDIUM", "HIGH")
        assert doc["detector_version"] == versions[served.models.detector]
        assert doc["risk_model_version"] == versions[served.models.risk]
        assert doc["latency_ms"] >= 0
        # The default reasons policy explains elevated bands, and only those.
        if doc["risk_band"] != "LOW":
            assert doc["reasons"] and all(r["feature"] for r in doc["reasons"])
        else:
            assert doc["reasons"] == []
    assert {doc["risk_band"] for doc in docs} >= {"LOW", "MEDIUM"}  # both cases met
    # Keyed by user, like the input, so a user's scores stay in order downstream.
    assert all(r.key == r.json()["user_id"].encode() for r in reference.scored)  # type: ignore[union-attr]


def test_every_anomaly_is_in_the_bigquery_table(reference: runs.Reference) -> None:
    flagged = {doc["transaction_id"]: doc for doc in reference.by_id.values() if doc["is_anomaly"]}
    assert flagged, "the stream should hold some anomalies"
    stored = {row.transaction_id: row for row in reference.anomalies_in_bigquery}
    assert set(stored) == set(flagged)
    for tx_id, row in stored.items():
        assert row.anomaly_score == pytest.approx(flagged[tx_id]["anomaly_score"])
        assert row.user_id == flagged[tx_id]["user_id"]


def test_each_window_is_monitored_per_served_version_against_its_profile(
    reference: runs.Reference, served: runs.Served, stack_settings: Settings
) -> None:
    """The served versions' profiles come from the predictor; each closed window gives one
    record per model version with a PSI per profiled feature, its alert rate and dead letters."""
    from finrisk.features import TRANSACTION_FEATURES, USER_FEATURES

    docs = [r.json() for r in reference.monitoring]
    versions = served.models.versions
    by_model = {model: [d for d in docs if d["model"] == model] for model in versions}
    # Every scored transaction counted once, in one window of each model.
    for model in versions:
        assert sum(d["transactions"] for d in by_model[model]) == runs.N_TRANSACTIONS
    assert any(d["transactions"] >= runs.MONITORING_WINDOW for d in docs)  # closed by count
    for model, columns in (
        (served.models.detector, TRANSACTION_FEATURES),
        (served.models.risk, USER_FEATURES),
    ):
        for doc in by_model[model]:
            assert doc["model_version"] == versions[model] and doc["role"] == "champion"
            assert set(doc["feature_psi"]) == set(columns)  # all profiled: none skipped
            assert all(v is None or v >= 0 for v in doc["feature_psi"].values())
            assert doc["score_psi"] is not None and doc["reference_alert_rate"] is not None
            assert doc["drift_level"] in ("stable", "moderate", "major")
    detector_docs = by_model[served.models.detector]
    assert all(d["category_psi"] is not None for d in detector_docs)
    assert all(d["band_mix"] for d in by_model[served.models.risk])
    # The poison messages were dead-lettered within the windows.
    assert sum(d["dead_lettered"] for d in detector_docs) == len(runs.POISON)
    assert all(r.key == r.json()["model"].encode() for r in reference.monitoring)  # type: ignore[union-attr]
    # Made by the bridge at start (not by the broker on first use, with its 3 partitions): one
    # partition, the records in the order the windows closed.
    admin = kafka_config.admin(stack_settings)
    assert kafka_config.partition_count(admin, f"{reference.name}.monitoring") == 1


def test_poison_messages_are_dead_lettered_with_reasons_and_the_stream_goes_on(
    reference: runs.Reference,
) -> None:
    assert sorted((r.value or b"") for r in reference.dead) == sorted(
        (value or b"") for _, value, _ in runs.POISON
    )
    for record in reference.dead:
        expected_kind = next(
            kind for _, value, kind in runs.POISON if (value or b"") == (record.value or b"")
        )
        assert record.headers["finrisk.error.kind"].decode() == expected_kind
        assert record.headers["finrisk.error.reason"]
        assert record.headers["finrisk.source.topic"].decode() == reference.input_topic
        assert int(record.headers["finrisk.source.offset"]) >= 0
    reasons = b" ".join(r.headers["finrisk.error.reason"] for r in reference.dead)
    assert b"'amount' must be > 0" in reasons and b"not JSON" in reasons


def test_offsets_are_committed_to_the_end_of_the_stream(reference: runs.Reference) -> None:
    assert reference.committed == reference.end


def test_online_scores_equal_batch_features_through_the_registered_models(
    reference: runs.Reference, served: runs.Served, frame: pd.DataFrame
) -> None:
    from finrisk.features import transaction_features
    from finrisk.registry import load

    features = transaction_features(frame)
    detector = load(served.models.detector, "champion", tracking_uri=served.tracking_uri)
    offline = detector.compiled.score(features[list(detector.compiled.feature_names)].to_numpy())
    online = reference.by_id
    for tx_id, expected in zip(frame["transaction_id"], offline, strict=True):
        assert online[tx_id]["anomaly_score"] == pytest.approx(float(expected), rel=1e-9, abs=1e-12)


def test_history_days_is_the_users_span_up_to_each_transaction(
    reference: runs.Reference, frame: pd.DataFrame
) -> None:
    from finrisk.features import user_features

    final_span = user_features(frame)["active_days"]
    by_user: dict[str, list[dict[str, Any]]] = {}
    for doc in reference.by_id.values():
        by_user.setdefault(doc["user_id"], []).append(doc)
    for user, docs in by_user.items():
        docs.sort(key=lambda d: d["source"]["offset"])  # a user's messages share a partition
        days = [d["history_days"] for d in docs]
        assert days[0] == 0 and days == sorted(days)
        assert days[-1] == pytest.approx(final_span[user], abs=0.005)
    assert final_span.min() > 1  # every user has days of history: the check is not about zeros


# ---------------------------------------------------------------- the benchmark and its baseline


def test_the_one_call_per_message_baseline_scores_like_the_bridge(
    stack_settings: Settings, served: runs.Served, reference: runs.Reference
) -> None:
    """The benchmark's comparison is only fair if the baseline does the same work."""
    name = runs.unique("single")
    settings = stack_settings.model_copy(
        update={
            "bridge": stack_settings.bridge.model_copy(
                update={
                    "bootstrap_servers": runs.bootstrap(stack_settings),
                    "input_topic": reference.input_topic,
                    "scored_topic": f"{name}.scored",
                    "group_id": name,
                    "predictor_url": served.predictor.url,
                    "detector_model": served.models.detector,
                    "risk_model": served.models.risk,
                }
            )
        }
    )
    result = run_one_per_message(settings, max_messages=200, max_seconds=120)
    assert result["scored"] == 200
    scored = read_topic(runs.bootstrap(stack_settings), f"{name}.scored", until=count_at_least(200))
    assert len({r.json()["transaction_id"] for r in scored}) == 200  # type: ignore[index]
    runs.same_scores(scored, reference)


def test_the_bridge_benchmark_runs_all_three_measurements(
    kafka: Service, bigquery_emulator: Service, stack_settings: Settings, served: runs.Served
) -> None:
    """A small `finrisk bench bridge` on the served models: every figure is really measured."""
    count, rate, seconds = 3_000, 500.0, 2.0
    before = runs.topics(stack_settings)
    result = benchmark.run(
        stack_settings,
        benchmark.Endpoint(served.predictor.url, served.models),
        count=count,
        users=100,
        days=40,
        seed=3,
        partitions=3,
        bridge_settings={
            "batch_max_messages": 500,
            "batch_max_wait_ms": 20,
            "predictor_grpc_port": served.predictor.grpc_port,
            **benchmark.sink_settings(stack_settings, "bigquery"),  # as deployed
        },
        baseline_messages=100,
        baseline_seconds=30,
        latency_rate=rate,
        latency_seconds=seconds,
        timeout_s=120,
    )
    bridge = result["bridge"]
    assert bridge["scored"] == count
    assert bridge["drain_seconds"] > 0 and bridge["tx_per_s"] > 0
    # All committed comes after the last record was sent.
    until_committed = bridge["tx_per_s_until_committed"]
    assert 0 < until_committed <= 1.01 * count / bridge["drain_seconds"]
    # The backlog again over each transport: REST as deployed, gRPC beside it.
    transports = result["transports"]
    assert transports["order"] == "rest, grpc, grpc, rest"
    assert [len(transports["tx_per_s_runs"][t]) for t in ("rest", "grpc")] == [2, 2]
    assert all(rate > 0 for rate in transports["tx_per_s"].values())
    assert result["one_call_per_message"]["scored"] == 100
    assert result["speedup"] == pytest.approx(
        bridge["tx_per_s"] / result["one_call_per_message"]["tx_per_s"], rel=0.01
    )
    latency = result["latency"]
    assert latency["transactions"] == int(rate * seconds)
    figures = latency["event_to_score"]
    assert 0 < figures["p50_ms"] <= figures["p95_ms"] <= figures["p99_ms"] <= figures["max_ms"]
    assert set(result["targets"]) == {
        "tx_per_s_at_least_20000",
        "tx_per_s_at_least_40000_with_the_bigquery_sink",
        "speedup_at_least_100x",
        "p99_under_250_ms_at_5k",
    }
    # Both sides stored their anomalies in the run's own BigQuery dataset.
    assert result["sink"]["kind"] == "bigquery" and result["sink"]["anomalies_stored"] > 0
    # The run's topics are gone (a fresh broker may have made its internal ones meanwhile).
    assert {
        name for name in runs.topics(stack_settings) - before if name.startswith("bench")
    } == set()


def test_delete_topics_deletes_those_named_with_the_prefixes_only(
    kafka: Service, stack_settings: Settings
) -> None:
    prefix = runs.unique("delete")
    mine = [runs.topic(stack_settings, f"{prefix}.{i}") for i in range(2)]
    kept = runs.topic(stack_settings, f"{prefix}-kept")
    assert topics.delete_topics(stack_settings, [f"{prefix}."]) == mine
    left = {name for name in runs.topics(stack_settings) if name.startswith(prefix)}
    assert left == {kept}
    assert topics.delete_topics(stack_settings, [f"{prefix}."]) == []
