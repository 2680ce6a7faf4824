"""The bridge end to end: real broker, real predictor (`finrisk serve` on models registered in
the real MLflow server), BigQuery emulator; the bridge runs as `finrisk bridge` subprocesses.

One clean run over a stream with poison messages is the reference. The recovery scenarios
(SIGKILL and restart, exactly once, SIGTERM, predictor down, a second bridge joining) stream
the same transactions through fresh topics and must score every one exactly as the clean run
did: per-user state survives restarts and rebalances.
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pandas as pd
import psutil
import pytest

from finrisk.serving.bridge import benchmark, kafka_config
from finrisk.serving.bridge.baseline import run_one_per_message
from finrisk.serving.bridge.local_processes import (
    BridgeProcess,
    PredictorProcess,
    RegisteredModels,
    bridge_environment,
    register_champions,
    train_models,
)
from finrisk.serving.bridge.producer import produce, synthetic_records
from finrisk.settings import Settings
from finrisk.sinks.bigquery import BigQuerySink
from finrisk.stack import Service
from tests.support.kafka_reading import (
    Record,
    committed_offsets,
    count_at_least,
    end_offsets,
    read_topic,
    wait_for,
)

pytestmark = pytest.mark.integration

N_TRANSACTIONS = 3_000
PARTITIONS = 6
# Fast group joins after a SIGKILL; 6 s is the broker's minimum session timeout.
FAST = {"session_timeout_ms": 6_000, "batch_max_messages": 200, "batch_max_wait_ms": 20}
POISON: list[tuple[bytes, bytes | None, str]] = [
    (b"u-poison", b"{not json", "unparseable"),
    (b"u-poison", None, "unparseable"),
    (b"u-poison", b"[1, 2, 3]", "unparseable"),
    (b"u-poison", b'{"transaction_id": "p4", "user_id": "u-poison"}', "schema_invalid"),
    (
        b"u-poison",
        orjson.dumps(
            {
                "transaction_id": "p5",
                "user_id": "u-poison",
                "timestamp": 1735689600000,
                "amount": -4.0,
                "direction": "debit",
                "category": "groceries",
                "merchant": "m",
                "channel": "online",
                "balance_after": 1.0,
            }
        ),
        "schema_invalid",
    ),
]


@dataclass(frozen=True)
class Served:
    models: RegisteredModels
    predictor: PredictorProcess
    tracking_uri: str


@dataclass(frozen=True)
class Reference:
    input_topic: str
    name: str
    scored: list[Record]
    dead: list[Record]
    anomalies_in_bigquery: list[Any]
    committed: dict[int, int]
    end: dict[int, int]
    returncode: int

    @property
    def by_id(self) -> dict[str, dict[str, Any]]:
        return {doc["transaction_id"]: doc for doc in (r.json() for r in self.scored)}  # type: ignore[misc]


def _name(kind: str) -> str:
    return f"test.bridge.{kind}.{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bridge-logs")


@pytest.fixture(scope="module")
def served(mlflow_server: Service, stack_settings: Settings, logs: Path) -> Iterator[Served]:
    tracking_uri = stack_settings.mlflow.tracking_uri
    suffix = uuid.uuid4().hex[:8]
    detector, risk = train_models(users=150, days=30, seed=11)
    models = register_champions(
        tracking_uri, f"test-bridge-det-{suffix}", f"test-bridge-risk-{suffix}", detector, risk
    )
    predictor = PredictorProcess(models, tracking_uri, logs / "predictor.log").start()
    try:
        yield Served(models, predictor, tracking_uri)
    finally:
        predictor.stop()


@pytest.fixture(scope="module")
def transactions() -> list[tuple[bytes, bytes]]:
    return synthetic_records(N_TRANSACTIONS, users=120, days=30, seed=23)


@pytest.fixture(scope="module")
def frame(transactions: list[tuple[bytes, bytes]]) -> pd.DataFrame:
    """The streamed transactions as the batch path reads them."""
    frame = pd.DataFrame([orjson.loads(value) for _, value in transactions])
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], unit="ms", utc=True)
    return frame


@pytest.fixture(scope="module")
def valid_ids(transactions: list[tuple[bytes, bytes]]) -> list[str]:
    return [orjson.loads(value)["transaction_id"] for _, value in transactions]


def _bootstrap(settings: Settings) -> str:
    return settings.kafka.bootstrap_servers


def _topic(settings: Settings, name: str) -> str:
    kafka_config.ensure_topic(settings, name, PARTITIONS)
    return name


def _bridge(
    settings: Settings, served: Served, topic: str, name: str, logs: Path, **extra: Any
) -> BridgeProcess:
    env = bridge_environment(
        _bootstrap(settings), served.predictor.url, served.models, topic, name, **{**FAST, **extra}
    )
    return BridgeProcess(env, logs / f"{name}.log")


def _scored_count(bridge: BridgeProcess) -> float:
    try:
        return bridge.metrics().get("finrisk_bridge_messages_total{outcome=scored}", 0.0)
    except Exception:  # the process may be between start and its first scrape
        return 0.0


@pytest.fixture(scope="module")
def reference(
    kafka: Service,
    bigquery_emulator: Service,
    stack_settings: Settings,
    served: Served,
    transactions: list[tuple[bytes, bytes]],
    logs: Path,
) -> Reference:
    """One clean run over the stream with poison messages mixed in, anomalies to BigQuery."""
    topic = _topic(stack_settings, _name("input"))
    stream: list[tuple[bytes, bytes | None]] = list(transactions)
    for i, (key, value, _) in enumerate(POISON):
        stream.insert(300 + i * 500, (key, value))
    produce(kafka_config.client_config(stack_settings), topic, stream)  # type: ignore[arg-type]
    name = _name("reference")
    bq = stack_settings.bigquery
    dataset = f"test_bridge_{uuid.uuid4().hex[:10]}"
    bridge = _bridge(
        stack_settings,
        served,
        topic,
        name,
        logs,
        sink="bigquery",
        bigquery_project=bq.project,
        bigquery_endpoint=bq.endpoint,
        bigquery_dataset=dataset,
        bigquery_table="anomalies",
    ).start()
    with bridge:
        scored = read_topic(
            _bootstrap(stack_settings),
            f"{name}.scored",
            until=count_at_least(N_TRANSACTIONS),
            timeout_s=180,
        )
        # Quiet now: the next checkpoint commits everything without being asked to stop.
        end = end_offsets(_bootstrap(stack_settings), topic)
        wait_for(
            lambda: committed_offsets(_bootstrap(stack_settings), name, topic) == end,
            30,
            "the idle checkpoint's commit",
        )
        returncode = bridge.terminate()
    dead = read_topic(_bootstrap(stack_settings), f"{name}.dlq", until=count_at_least(len(POISON)))
    sink = BigQuerySink(bq.project, dataset, "anomalies", endpoint=bq.endpoint)
    anomalies = sink.read()
    sink.close()
    return Reference(
        input_topic=topic,
        name=name,
        scored=scored,
        dead=dead,
        anomalies_in_bigquery=anomalies,
        committed=committed_offsets(_bootstrap(stack_settings), name, topic),
        end=end_offsets(_bootstrap(stack_settings), topic),
        returncode=returncode,
    )


# ---------------------------------------------------------------- the clean run


def test_every_transaction_is_scored_exactly_once(
    reference: Reference, valid_ids: list[str]
) -> None:
    ids = [r.json()["transaction_id"] for r in reference.scored]
    assert sorted(ids) == sorted(valid_ids)
    assert reference.returncode == 0


def test_scored_records_carry_scores_bands_reasons_versions_and_latency(
    reference: Reference, served: Served
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


def test_every_anomaly_is_in_the_bigquery_table(reference: Reference) -> None:
    flagged = {doc["transaction_id"]: doc for doc in reference.by_id.values() if doc["is_anomaly"]}
    assert flagged, "the stream should hold some anomalies"
    stored = {row.transaction_id: row for row in reference.anomalies_in_bigquery}
    assert set(stored) == set(flagged)
    for tx_id, row in stored.items():
        assert row.anomaly_score == pytest.approx(flagged[tx_id]["anomaly_score"])
        assert row.user_id == flagged[tx_id]["user_id"]


def test_poison_messages_are_dead_lettered_with_reasons_and_the_stream_goes_on(
    reference: Reference,
) -> None:
    assert sorted((r.value or b"") for r in reference.dead) == sorted(
        (value or b"") for _, value, _ in POISON
    )
    for record in reference.dead:
        expected_kind = next(
            kind for _, value, kind in POISON if (value or b"") == (record.value or b"")
        )
        assert record.headers["finrisk.error.kind"].decode() == expected_kind
        assert record.headers["finrisk.error.reason"]
        assert record.headers["finrisk.source.topic"].decode() == reference.input_topic
        assert int(record.headers["finrisk.source.offset"]) >= 0
    reasons = b" ".join(r.headers["finrisk.error.reason"] for r in reference.dead)
    assert b"'amount' must be > 0" in reasons and b"not JSON" in reasons


def test_offsets_are_committed_to_the_end_of_the_stream(reference: Reference) -> None:
    assert reference.committed == reference.end


def test_online_scores_equal_batch_features_through_the_registered_models(
    reference: Reference, served: Served, frame: pd.DataFrame
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
    reference: Reference, frame: pd.DataFrame
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


# ---------------------------------------------------------------- recovery


def test_the_one_call_per_message_baseline_scores_like_the_bridge(
    stack_settings: Settings, served: Served, reference: Reference
) -> None:
    """The benchmark's comparison is only fair if the baseline does the same work."""
    name = _name("single")
    settings = stack_settings.model_copy(
        update={
            "bridge": stack_settings.bridge.model_copy(
                update={
                    "bootstrap_servers": _bootstrap(stack_settings),
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
    scored = read_topic(_bootstrap(stack_settings), f"{name}.scored", until=count_at_least(200))
    assert len({r.json()["transaction_id"] for r in scored}) == 200  # type: ignore[index]
    _same_scores(scored, reference)


def test_the_bridge_benchmark_runs_all_three_measurements(
    kafka: Service, stack_settings: Settings, served: Served
) -> None:
    """A small `finrisk bench bridge` on the served models: every figure is really measured."""
    count, rate, seconds = 3_000, 500.0, 2.0
    before = _topics(stack_settings)
    result = benchmark.run(
        stack_settings,
        benchmark.Endpoint(served.predictor.url, served.models),
        count=count,
        users=100,
        days=40,
        seed=3,
        partitions=3,
        bridge_settings={"batch_max_messages": 500, "batch_max_wait_ms": 20},
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
        "speedup_at_least_100x",
        "p99_under_250_ms_at_5k",
    }
    # The run's topics are gone (a fresh broker may have made its internal ones meanwhile).
    assert {name for name in _topics(stack_settings) - before if name.startswith("bench")} == set()


def test_delete_topics_deletes_those_named_with_the_prefixes_only(
    kafka: Service, stack_settings: Settings
) -> None:
    prefix = _name("delete")
    mine = [_topic(stack_settings, f"{prefix}.{i}") for i in range(2)]
    kept = _topic(stack_settings, f"{prefix}-kept")
    assert kafka_config.delete_topics(stack_settings, [f"{prefix}."]) == mine
    left = {name for name in _topics(stack_settings) if name.startswith(prefix)}
    assert left == {kept}
    assert kafka_config.delete_topics(stack_settings, [f"{prefix}."]) == []


def _topics(settings: Settings) -> set[str]:
    return set(kafka_config.admin(settings).list_topics(timeout=30).topics)


def _same_scores(records: list[Record], reference: Reference) -> None:
    expected = reference.by_id
    docs: list[dict[str, Any]] = [r.json() for r in records]  # type: ignore[misc]
    for doc in docs:
        want = expected[doc["transaction_id"]]
        assert doc["anomaly_score"] == pytest.approx(want["anomaly_score"], rel=1e-9, abs=1e-12)
        assert doc["is_anomaly"] == want["is_anomaly"]
        assert doc["risk_probability"] == pytest.approx(
            want["risk_probability"], rel=1e-9, abs=1e-12
        )
        assert doc["risk_band"] == want["risk_band"]
        assert doc["history_days"] == want["history_days"]
        assert [r["feature"] for r in doc["reasons"]] == [r["feature"] for r in want["reasons"]]


class Feeder:
    """Produces the transactions to a fresh topic at a steady rate, in the background."""

    def __init__(
        self, settings: Settings, topic: str, records: list[tuple[bytes, bytes]], rate: float
    ):
        self.thread = threading.Thread(
            target=produce,
            args=(kafka_config.client_config(settings), topic, records),
            kwargs={"rate": rate},
            daemon=True,
        )

    def __enter__(self) -> Feeder:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.thread.join(timeout=120)


def _scored_until_all(bootstrap: str, name: str, valid_ids: list[str]) -> list[Record]:
    """The bridge `name`'s scored records, read until every one of `valid_ids` is there."""
    return read_topic(
        bootstrap,
        f"{name}.scored",
        until=lambda records: set(_ids(records)) >= set(valid_ids),
        timeout_s=180,
    )


def _ids(records: list[Record]) -> list[str]:
    return [r.json()["transaction_id"] for r in records]  # type: ignore[misc]


@pytest.mark.parametrize("exactly_once", [False, True], ids=["at-least-once", "exactly-once"])
def test_sigkill_mid_stream_then_restart_loses_nothing(
    exactly_once: bool,
    stack_settings: Settings,
    served: Served,
    reference: Reference,
    transactions: list[tuple[bytes, bytes]],
    valid_ids: list[str],
    logs: Path,
) -> None:
    bootstrap = _bootstrap(stack_settings)
    topic = _topic(stack_settings, _name("kill"))
    name = _name("kill-eos" if exactly_once else "kill")
    first = _bridge(
        stack_settings,
        served,
        topic,
        name,
        logs,
        exactly_once=exactly_once,
        transactional_id=f"{name}-tx",
    ).start()
    with Feeder(stack_settings, topic, transactions, rate=1_500), first:
        wait_for(lambda: _scored_count(first) >= N_TRANSACTIONS // 3, 120, "a third scored")
        first.kill()
        # Exactly once, the dead bridge's open transaction keeps its offsets unstable (a fetch
        # waits for them) until the restart fences it; duplicates are checked differently.
        committed_at_kill = {} if exactly_once else committed_offsets(bootstrap, name, topic)
        assert sum(committed_at_kill.values()) < N_TRANSACTIONS  # it really died mid-stream
        second = BridgeProcess(first.env, logs / f"{name}-restart.log").start()
        with second:
            scored = _scored_until_all(bootstrap, name, valid_ids)
            assert second.terminate() == 0
    ids = _ids(scored)
    assert set(ids) == set(valid_ids)  # nothing lost
    duplicates = {tx_id for tx_id, n in Counter(ids).items() if n > 1}
    if exactly_once:
        assert not duplicates  # read_committed sees each transaction once
    for record in scored:
        doc = record.json()
        if doc["transaction_id"] in duplicates:
            source = doc["source"]  # type: ignore[index]
            # Only batches that were not committed when the bridge died come twice.
            assert source["offset"] >= committed_at_kill.get(source["partition"], 0)
    _same_scores(scored, reference)
    assert committed_offsets(bootstrap, name, topic) == end_offsets(bootstrap, topic)


def test_sigterm_finishes_the_batch_commits_and_a_restart_duplicates_nothing(
    stack_settings: Settings,
    served: Served,
    reference: Reference,
    transactions: list[tuple[bytes, bytes]],
    valid_ids: list[str],
    logs: Path,
) -> None:
    bootstrap = _bootstrap(stack_settings)
    topic = _topic(stack_settings, _name("term"))
    name = _name("term")
    first = _bridge(stack_settings, served, topic, name, logs).start()
    with Feeder(stack_settings, topic, transactions, rate=1_500), first:
        wait_for(lambda: _scored_count(first) >= N_TRANSACTIONS // 3, 120, "a third scored")
        assert first.terminate(timeout_s=30) == 0
        committed = committed_offsets(bootstrap, name, topic)
        scored_before = read_topic(bootstrap, f"{name}.scored", timeout_s=5)
        # Everything scored is committed, and everything committed is scored.
        positions = {
            (r.json()["source"]["partition"], r.json()["source"]["offset"]) for r in scored_before
        }  # type: ignore[index]
        assert all(offset < committed[p] for p, offset in positions)
        assert len(positions) == sum(committed.values())
        second = BridgeProcess(first.env, logs / f"{name}-restart.log").start()
        with second:
            scored = _scored_until_all(bootstrap, name, valid_ids)
            assert second.terminate() == 0
    assert sorted(_ids(scored)) == sorted(valid_ids)  # no loss, no duplicate
    _same_scores(scored, reference)


def test_predictor_down_pauses_without_committing_then_recovers_by_itself(
    stack_settings: Settings,
    served: Served,
    reference: Reference,
    transactions: list[tuple[bytes, bytes]],
    valid_ids: list[str],
    logs: Path,
) -> None:
    bootstrap = _bootstrap(stack_settings)
    own = PredictorProcess(served.models, served.tracking_uri, logs / "predictor-down.log").start()
    topic = _topic(stack_settings, _name("down"))
    name = _name("down")
    env = bridge_environment(
        bootstrap,
        own.url,
        served.models,
        topic,
        name,
        **FAST,
        request_timeout_s=2,
        max_attempts=2,
        breaker_failure_threshold=2,
        breaker_reset_s=0.5,
        backoff_max_s=0.5,
    )
    bridge = BridgeProcess(env, logs / f"{name}.log").start()
    with own, Feeder(stack_settings, topic, transactions, rate=600), bridge:
        wait_for(lambda: _scored_count(bridge) >= 300, 120, "some scored before the outage")
        own.stop()
        down_since = time.monotonic()
        wait_for(lambda: bridge.metrics().get("finrisk_bridge_paused") == 1.0, 60, "a pause")
        assert bridge.get("/readyz") == 503 and bridge.get("/healthz") == 200

        def nothing_committed_early() -> None:
            committed = committed_offsets(bootstrap, name, topic)
            scored = read_topic(bootstrap, f"{name}.scored", timeout_s=5)
            have = {(r.json()["source"]["partition"], r.json()["source"]["offset"]) for r in scored}  # type: ignore[index]
            for partition, offset in committed.items():
                assert all((partition, o) in have for o in range(offset))

        nothing_committed_early()
        scored_during = _scored_count(bridge)
        wait_for(
            lambda: (
                time.monotonic() - down_since > 4
                and bridge.metrics().get("finrisk_bridge_errors_total{kind=endpoint}", 0) >= 3
            ),
            60,
            "several seconds of outage with retries",
        )
        nothing_committed_early()
        assert _scored_count(bridge) == scored_during  # nothing scored, nothing dropped
        own.start()
        scored = _scored_until_all(bootstrap, name, valid_ids)
        wait_for(lambda: bridge.get("/readyz") == 200, 30, "readiness after recovery")
        metrics = bridge.metrics()
        assert metrics["finrisk_bridge_paused"] == 0.0
        assert bridge.terminate() == 0
    assert set(_ids(scored)) == set(valid_ids)
    _same_scores(scored, reference)


def test_a_second_bridge_takes_partitions_with_their_state(
    stack_settings: Settings,
    served: Served,
    reference: Reference,
    transactions: list[tuple[bytes, bytes]],
    valid_ids: list[str],
    logs: Path,
) -> None:
    bootstrap = _bootstrap(stack_settings)
    config = kafka_config.client_config(stack_settings)
    topic = _topic(stack_settings, _name("rebalance"))
    name = _name("rebalance")
    half = N_TRANSACTIONS // 2
    first = _bridge(stack_settings, served, topic, name, logs).start()
    env = {**first.env, "FINRISK_BRIDGE__HTTP_PORT": str(_free_port())}
    with first:
        # Phase 1: one bridge builds every user's state.
        produce(config, topic, transactions[:half])
        wait_for(lambda: _scored_count(first) >= half, 120, "the first half scored")
        # A second bridge joins; cooperative rebalancing hands it some partitions.
        second = BridgeProcess(env, logs / f"{name}-second.log").start()
        with second:
            wait_for(
                lambda: (
                    second.metrics().get("finrisk_bridge_assigned_partitions", 0) > 0
                    and first.metrics().get("finrisk_bridge_assigned_partitions", 0) < PARTITIONS
                ),
                60,
                "partitions moving to the second bridge",
            )
            # Phase 2: the moved users' transactions are scored by the second bridge, from
            # the state it restored.
            produce(config, topic, transactions[half:])
            scored = _scored_until_all(bootstrap, name, valid_ids)
            second_metrics = second.metrics()
            assert second.terminate() == 0
        assert first.terminate() == 0
    assert second_metrics["finrisk_bridge_state_restored_records_total"] > 0
    assert second_metrics["finrisk_bridge_messages_total{outcome=scored}"] > 0
    assert set(_ids(scored)) == set(valid_ids)
    _same_scores(scored, reference)


def _workers(bridge: BridgeProcess) -> list[psutil.Process]:
    """The supervisor's worker processes (not multiprocessing's resource tracker)."""
    assert bridge.child is not None
    children = psutil.Process(bridge.child.pid).children()
    return [child for child in children if "spawn_main" in " ".join(child.cmdline())]


def test_workers_share_the_stream_and_score_it_as_one_bridge(
    stack_settings: Settings,
    served: Served,
    reference: Reference,
    transactions: list[tuple[bytes, bytes]],
    valid_ids: list[str],
    logs: Path,
) -> None:
    bootstrap = _bootstrap(stack_settings)
    topic = _topic(stack_settings, _name("workers"))
    name = _name("workers")
    bridge = _bridge(stack_settings, served, topic, name, logs, workers=2).start()
    with Feeder(stack_settings, topic, transactions, rate=1_500), bridge:
        assert len(_workers(bridge)) == 2
        scored = _scored_until_all(bootstrap, name, valid_ids)
        end = end_offsets(bootstrap, topic)
        wait_for(lambda: committed_offsets(bootstrap, name, topic) == end, 30, "the commits")
        counts = bridge.partitions_per_worker()
        assert bridge.terminate() == 0
    assert sorted(counts) == [PARTITIONS // 2, PARTITIONS // 2]  # each worker read its share
    assert set(_ids(scored)) == set(valid_ids)
    _same_scores(scored, reference)


def test_a_failed_worker_stops_the_others_and_a_restart_loses_nothing(
    stack_settings: Settings,
    served: Served,
    reference: Reference,
    transactions: list[tuple[bytes, bytes]],
    valid_ids: list[str],
    logs: Path,
) -> None:
    bootstrap = _bootstrap(stack_settings)
    topic = _topic(stack_settings, _name("worker-kill"))
    name = _name("worker-kill")
    first = _bridge(stack_settings, served, topic, name, logs, workers=2).start()
    with Feeder(stack_settings, topic, transactions, rate=1_500), first:
        wait_for(lambda: _scored_count(first) >= N_TRANSACTIONS // 4, 120, "a quarter scored")
        killed, other = _workers(first)
        killed.kill()
        assert first.child is not None
        assert first.child.wait(60) != 0
        assert not other.is_running()
        log = first.log.read_text()
        assert "exited with -9" in log
        assert "SIGTERM: finishing the batch, committing, closing" in log
        second = BridgeProcess(first.env, logs / f"{name}-restart.log").start()
        with second:
            scored = _scored_until_all(bootstrap, name, valid_ids)
            assert second.terminate() == 0
    assert set(_ids(scored)) == set(valid_ids)
    _same_scores(scored, reference)


def test_workers_stop_by_themselves_when_their_supervisor_is_killed(
    kafka: Service, stack_settings: Settings, served: Served, logs: Path
) -> None:
    topic = _topic(stack_settings, _name("orphans"))
    name = _name("orphans")
    bridge = _bridge(stack_settings, served, topic, name, logs, workers=2).start()
    with bridge:
        workers = _workers(bridge)
        bridge.kill()
        _, alive = psutil.wait_procs(workers, timeout=60)
        assert not alive
    log = bridge.log.read_text()
    for i in range(2):  # the graceful stop, not a kill
        assert f"[worker {i}]: SIGTERM: finishing the batch, committing, closing" in log


def _free_port() -> int:
    from finrisk.stack.process import free_port

    return free_port()
