"""Merchant risk through the bridge. A hard-scenario stream and its label stream over two
partitions: two bridges place their users' fraud labels at the merchants and publish exactly
the frauds the batch path counts; bridges reading that topic score the batch path's features
through the same registered detector; a restarted bridge rebuilds the frauds from the topic and
its users' placement state from the changelog; hostile records on either topic are skipped
with a reason while the stream goes on."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from finrisk.bench.local_processes import (
    EXPERIMENT,
    BridgeProcess,
    PredictorProcess,
    RegisteredModels,
    bridge_environment,
)
from finrisk.features.definitions import (
    MERCHANT_RISK_WINDOW_NS,
    SERVED_MERCHANT_FEATURES,
    TRANSACTION_FEATURES,
)
from finrisk.features.merchant_frauds import MerchantFraud, decode, merchant_frauds_of
from finrisk.labels import LabelRecord
from finrisk.models import TransactionAnomalyDetector
from finrisk.serving.bridge import kafka_config
from finrisk.serving.bridge.producer import produce
from finrisk.settings import Settings
from finrisk.stack import Service
from tests.integration.bridge import runs
from tests.support.kafka_reading import Record, end_offsets, read_topic, wait_for

SEED = 8
HOSTILE = [
    (b'["m", "x1"]', b"{not json"),
    (
        b'["m", "x2"]',
        b'{"merchant": 5, "transaction_id": "x2", "event_time_ns": 1, "labelled_at_ns": 2}',
    ),
]


Stream = runs.HardStream


@pytest.fixture(scope="module")
def stream() -> Stream:
    return runs.hard_stream(users=300, days=40, seed=SEED)


@pytest.fixture(scope="module")
def merchant_served(
    mlflow_server: Service,
    stack_settings: Settings,
    served: runs.Served,
    logs: Path,
    stream: Stream,
) -> Iterator[runs.Served]:
    """A detector that reads merchant risk, registered and served (risk model: the package's)."""
    from finrisk import registry

    names = (*TRANSACTION_FEATURES, *SERVED_MERCHANT_FEATURES)
    detector = TransactionAnomalyDetector(
        feature_names=names, max_iter=40, negative_sample=0.2
    ).fit(stream.features, stream.frame["is_fraud"])
    tracking_uri = stack_settings.mlflow.tracking_uri
    name = f"test-bridge-merchant-det-{uuid.uuid4().hex[:8]}"
    _, uri = registry.log_model(
        detector, "detector", tracking_uri=tracking_uri, experiment=EXPERIMENT
    )
    version = registry.register(uri, name, {"purpose": "bridge"}, tracking_uri=tracking_uri)
    registry.set_alias(name, "champion", version, tracking_uri=tracking_uri)
    models = RegisteredModels(name, served.models.risk, {name: version, **served.models.versions})
    predictor = PredictorProcess(models, tracking_uri, logs / "merchant-predictor.log").start()
    try:
        yield runs.Served(models, predictor, tracking_uri, detector)
    finally:
        predictor.stop()


def _expected(served: runs.Served, stream: Stream) -> dict[str, float]:
    from finrisk.registry import load

    detector = load(served.models.detector, "champion", tracking_uri=served.tracking_uri)
    names = list(detector.compiled.feature_names)
    assert names[-len(SERVED_MERCHANT_FEATURES) :] == list(SERVED_MERCHANT_FEATURES)
    scores = detector.compiled.score(stream.features[names].to_numpy())
    return dict(zip(stream.frame["transaction_id"], map(float, scores), strict=True))


def _check(records: list[Record], expected: dict[str, float]) -> int:
    docs: list[dict[str, Any]] = [r.json() for r in records]
    for doc in docs:
        assert doc["anomaly_score"] == pytest.approx(
            expected[doc["transaction_id"]], rel=1e-9, abs=1e-12
        ), doc["transaction_id"]
    return len(docs)


def _frauds_topic(settings: Settings, frauds: list[MerchantFraud]) -> str:
    """A merchant-frauds topic with `frauds` and two hostile records among them."""
    topic = runs.unique("merchant-frauds")
    kafka_config.ensure_topic(settings, topic, 3)
    records = [(f.key, f.value) for f in frauds]
    produce(kafka_config.client_config(settings), topic, [*records[:5], *HOSTILE, *records[5:]])
    return topic


def _published(records: list[Record]) -> set[MerchantFraud]:
    """The frauds in a merchant-frauds topic's records, the test's hostile ones left out."""
    hostile = {value for _, value in HOSTILE}
    return {decode(r.value) for r in records if r.value not in hostile}


def _labels_topic(settings: Settings, labels: list[LabelRecord]) -> str:
    """The label stream keyed by user (as the input), two partitions, two hostile records."""
    topic = runs.unique("labels")
    kafka_config.ensure_topic(settings, topic, 2)
    records = [(r.key, r.to_json()) for r in labels]
    hostile = [(b"u-x", b"{not json"), (b"u-x", b'{"transaction_id": 3}')]
    produce(kafka_config.client_config(settings), topic, [*hostile, *records])
    return topic


def _bridge(
    settings: Settings,
    served: runs.Served,
    topic: str,
    name: str,
    frauds: str,
    labels: str,
    log: Path,
) -> BridgeProcess:
    env = bridge_environment(
        runs.bootstrap(settings),
        served.predictor.url,
        served.models,
        topic,
        name,
        **{**runs.FAST, "merchant_frauds_topic": frauds, "monitoring": "false"},
    )
    return BridgeProcess({**env, "FINRISK_LABELS__LABELS_TOPIC": labels}, log)


def _two_bridges(
    settings: Settings,
    served: runs.Served,
    stream: Stream,
    topic: str,
    frauds: str,
    labels: str,
    logs: Path,
) -> tuple[list[Record], list[dict[str, float]], list[str]]:
    """Two bridges of a fresh group, one partition each, over the whole stream: their scored
    records, their metrics and their logs once they stopped."""
    name = runs.unique("merchant")
    paths = [logs / f"{name}-{i}.log" for i in (1, 2)]
    with (
        _bridge(settings, served, topic, name, frauds, labels, paths[0]).start() as first,
        _bridge(settings, served, topic, name, frauds, labels, paths[1]).start() as second,
    ):
        wait_for(
            lambda: all(
                b.metrics().get("finrisk_bridge_assigned_partitions", 0) == 1
                for b in (first, second)
            ),
            60,
            "one partition each",
        )
        if not any(end_offsets(runs.bootstrap(settings), topic).values()):  # the first run
            produce(kafka_config.client_config(settings), topic, stream.records)
        ids = list(stream.frame["transaction_id"])
        scored = runs.scored_until_all(runs.bootstrap(settings), name, ids)
        metrics = [first.metrics(), second.metrics()]
        assert first.terminate() == 0
        assert second.terminate() == 0
    return scored, metrics, [path.read_text() for path in paths]


def test_two_bridges_place_the_labels_and_score_the_batch_paths_features(
    kafka: Service,
    stack_settings: Settings,
    merchant_served: runs.Served,
    stream: Stream,
    logs: Path,
) -> None:
    # The test means something only if merchant risk moves scores: rows with known frauds.
    merchant = stream.features[SERVED_MERCHANT_FEATURES[0]].to_numpy()
    assert (merchant > 0).sum() > 100
    want = merchant_frauds_of(stream.frame, stream.labels)
    topic = runs.unique("merchant-input")
    kafka_config.ensure_topic(stack_settings, topic, 2)
    labels = _labels_topic(stack_settings, stream.labels)
    frauds = _frauds_topic(stack_settings, [])

    # 1. The owners place their users' labels: the topic holds the batch path's frauds, each
    #    with its merchant, event time and earliest label, placed by both bridges.
    _, metrics, texts = _two_bridges(
        stack_settings, merchant_served, stream, topic, frauds, labels, logs
    )
    got = _published(read_topic(runs.bootstrap(stack_settings), frauds))
    assert got == set(want), (len(got), len(want), len(set(want) - got), texts[0][-3000:])
    # The hostile labels share a key, hence a partition: read by its owner, and by the first
    # bridge too if it held that partition before the second joined (2 or 4 counted). Every
    # instance reads the whole merchant-frauds topic, hostile records included.
    invalid = sum(m.get("finrisk_bridge_errors_total{kind=label_invalid}", 0) for m in metrics)
    assert invalid in (2, 4)
    for m, text in zip(metrics, texts, strict=True):
        assert m["finrisk_bridge_errors_total{kind=merchant_fraud_invalid}"] == 2
        placed = re.search(r"placed (\d+) frauds", text)
        assert placed is not None and int(placed.group(1)) > 0, text[-2000:]
        assert "not JSON" in text and "merchant must be a non-empty string" in text
    assert any(f"label record {labels}[" in text and "skipped" in text for text in texts)

    # 2. Bridges of a new group read those frauds whole: every score is the batch path's. The
    #    stream again, on a new input topic, produced once both hold a partition (on the first
    #    topic, the bridge that joins first could score it all before the other joins).
    expected = _expected(merchant_served, stream)
    again = runs.unique("merchant-input")
    kafka_config.ensure_topic(stack_settings, again, 2)
    scored, metrics, _ = _two_bridges(
        stack_settings, merchant_served, stream, again, frauds, labels, logs
    )
    assert _check(scored, expected) >= len(stream.records)
    assert all(m["finrisk_bridge_messages_total{outcome=scored}"] > 0 for m in metrics)


def test_a_restarted_bridge_places_labels_of_transactions_scored_before_it(
    kafka: Service,
    stack_settings: Settings,
    merchant_served: runs.Served,
    stream: Stream,
    logs: Path,
) -> None:
    """The placement state (which merchant each recent transaction was at) survives a restart
    through the changelog; the frauds come back from the topic."""
    expected = _expected(merchant_served, stream)
    frauds = _frauds_topic(stack_settings, [])
    topic = runs.unique("merchant-restart")
    kafka_config.ensure_topic(stack_settings, topic, 2)
    name = runs.unique("merchant-restart")
    bootstrap = runs.bootstrap(stack_settings)
    half = len(stream.records) // 2
    frame = stream.frame
    first, second = frame.iloc[:half], frame.iloc[half:]
    labels = runs.unique("labels")
    kafka_config.ensure_topic(stack_settings, labels, 2)
    # 1. The first half, before any label exists.
    with _bridge(
        stack_settings, merchant_served, topic, name, frauds, labels, logs / f"{name}-1.log"
    ).start() as bridge:
        produce(kafka_config.client_config(stack_settings), topic, stream.records[:half])
        runs.scored_until_all(bootstrap, name, list(first["transaction_id"]))
        assert bridge.terminate() == 0
    # 2. Then the labels come, to a new process: it places those of the first half's
    #    transactions (within the window of each user's last one), which it never saw.
    newest = first.groupby("user_id")["timestamp"].max()
    window = pd.Timedelta(MERCHANT_RISK_WINDOW_NS, "ns")
    users = dict(zip(first["transaction_id"], first["user_id"], strict=True))
    kept = {
        f
        for f in merchant_frauds_of(stream.frame, stream.labels)
        if f.transaction_id in users
        and pd.Timestamp(f.event_time_ns, tz="UTC") > newest[users[f.transaction_id]] - window
    }
    assert len(kept) > 10
    produce(
        kafka_config.client_config(stack_settings),
        labels,
        [(r.key, r.to_json()) for r in stream.labels],
    )
    with _bridge(
        stack_settings, merchant_served, topic, name, frauds, labels, logs / f"{name}-2.log"
    ).start() as bridge:
        read_topic(
            bootstrap,
            frauds,
            until=lambda records: kept <= _published(records),
            timeout_s=60,
        )
        # 3. The second half: scored with every fraud known by then, as the batch path has it.
        produce(kafka_config.client_config(stack_settings), topic, stream.records[half:])
        scored = runs.scored_until_all(bootstrap, name, list(frame["transaction_id"]))
        assert bridge.terminate() == 0
    later = set(second["transaction_id"])
    assert (stream.features[SERVED_MERCHANT_FEATURES[0]].to_numpy()[half:] > 0).sum() > 50
    assert _check([r for r in scored if r.json()["transaction_id"] in later], expected) >= len(
        later
    )
