"""A running bridge whose champion moves mid-stream to versions with other inputs (docs/bridge.md,
"When the champion changes"): the same features in another order, one fewer, a detector reading
merchant risk (the bridge started without it: it starts again in process, with it), and one
reading a feature no bridge computes (a stall until the champion moves on). Exactly once as
deployed: every transaction scored once (at least once: none lost), nothing dead-lettered, and
each score the one the version named in the record gives for the transaction's features."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from finrisk import registry
from finrisk.bench.local_processes import (
    EXPERIMENT,
    BridgeProcess,
    PredictorProcess,
    RegisteredModels,
    bridge_environment,
)
from finrisk.features.definitions import SERVED_MERCHANT_FEATURES, TRANSACTION_FEATURES
from finrisk.features.merchant_frauds import merchant_frauds_of
from finrisk.models import TransactionAnomalyDetector
from finrisk.serving.bridge import kafka_config
from finrisk.serving.bridge.producer import produce
from finrisk.settings import Settings
from finrisk.stack import Service
from tests.integration.bridge import runs
from tests.support.kafka_reading import Record, read_topic, wait_for

SEED = 8
UNKNOWN = "tomorrows_feature"
TX = tuple(TRANSACTION_FEATURES)
# The detectors registered under one name, in the order the champion alias visits them.
ORDERS = {
    "plain": TX,
    "reordered": tuple(reversed(TX)),  # same width: today's bridge scored it silently wrong
    "older": tuple(n for n in TX if n != "new_merchants_7d"),  # trained before a feature
    "unknown": (*TX, UNKNOWN),  # a feature this bridge release does not compute
    "merchant": (*TX, *SERVED_MERCHANT_FEATURES),  # merchant risk: needs a restart
}


@dataclass
class Stream:
    records: list[tuple[bytes, bytes]]
    frame: pd.DataFrame
    features: pd.DataFrame  # every feature any version reads, per row of `frame`
    frauds: list[Any]  # the merchant frauds the batch path counts


@pytest.fixture(scope="module")
def stream() -> Stream:
    base = runs.hard_stream(users=60, days=30, seed=SEED)
    features = base.features.copy()
    features[UNKNOWN] = np.linspace(0.0, 1.0, len(features))  # only for training
    return Stream(base.records, base.frame, features, merchant_frauds_of(base.frame, base.labels))


@dataclass(frozen=True)
class Versions:
    served: runs.Served
    versions: dict[str, str]  # kind -> registry version

    @property
    def name(self) -> str:
        return self.served.models.detector

    def promote(self, kind: str) -> None:
        """The champion alias moves, and the predictor reloads it now (no waiting for its
        reload interval)."""
        registry.set_alias(
            self.name, "champion", self.versions[kind], tracking_uri=self.served.tracking_uri
        )
        answer = httpx.post(
            f"{self.served.predictor.url}/v2/repository/models/{self.name}/load", timeout=60
        )
        assert answer.status_code == 200, answer.text
        metadata = httpx.get(f"{self.served.predictor.url}/v2/models/{self.name}").json()
        assert metadata["versions"] == [self.versions[kind]]


@pytest.fixture(scope="module")
def versions(
    mlflow_server: Service,
    stack_settings: Settings,
    served: runs.Served,
    logs: Path,
    stream: Stream,
) -> Iterator[Versions]:
    tracking_uri = stack_settings.mlflow.tracking_uri
    name = f"test-bridge-champion-{uuid.uuid4().hex[:8]}"
    registered = {}
    for kind, names in ORDERS.items():
        detector = TransactionAnomalyDetector(
            feature_names=names, max_iter=40, negative_sample=0.2
        ).fit(stream.features, stream.frame["is_fraud"])
        _, uri = registry.log_model(
            detector, "detector", tracking_uri=tracking_uri, experiment=EXPERIMENT
        )
        registered[kind] = registry.register(
            uri, name, {"purpose": "bridge"}, tracking_uri=tracking_uri
        )
    registry.set_alias(name, "champion", registered["plain"], tracking_uri=tracking_uri)
    models = RegisteredModels(name, served.models.risk, {**served.models.versions})
    predictor = PredictorProcess(models, tracking_uri, logs / "champion-predictor.log").start()
    try:
        yield Versions(runs.Served(models, predictor, tracking_uri, None), registered)
    finally:
        predictor.stop()


def _expected(versions: Versions, stream: Stream) -> dict[str, dict[str, float]]:
    """Per registry version, each transaction's score as that version gives it."""
    out = {}
    for kind, version in versions.versions.items():
        if kind == "unknown":
            continue  # never scores: the bridge cannot compute its feature
        loaded = registry.load(
            versions.name, version=version, tracking_uri=versions.served.tracking_uri
        )
        names = list(loaded.compiled.feature_names)
        assert tuple(names) == ORDERS[kind]
        scores = loaded.compiled.score(stream.features[names].to_numpy())
        out[version] = dict(zip(stream.frame["transaction_id"], map(float, scores), strict=True))
    return out


def _metric(bridge: BridgeProcess, name: str) -> float:
    try:
        return bridge.metrics().get(name, 0.0)
    except Exception:  # between two runs of the process its port is briefly closed
        return -1.0


@pytest.mark.parametrize("exactly_once", [True, False], ids=["exactly-once", "at-least-once"])
def test_the_bridge_follows_each_promoted_champion_without_losing_or_misplacing_a_row(
    exactly_once: bool,
    kafka: Service,
    stack_settings: Settings,
    versions: Versions,
    stream: Stream,
    logs: Path,
) -> None:
    expected = _expected(versions, stream)
    versions.promote("plain")  # the bridge starts without merchant risk, whatever ran before
    settings = stack_settings
    bootstrap = runs.bootstrap(settings)
    topic = runs.unique("champion-input")
    kafka_config.ensure_topic(settings, topic, 2)
    labels = runs.unique("labels")  # the input's partition count, as placement requires
    kafka_config.ensure_topic(settings, labels, 2)
    frauds = runs.unique("merchant-frauds")
    kafka_config.ensure_topic(settings, frauds, 2)
    produce(kafka_config.client_config(settings), frauds, [(f.key, f.value) for f in stream.frauds])
    name = runs.unique("champion")
    env = bridge_environment(
        bootstrap,
        versions.served.predictor.url,
        versions.served.models,
        topic,
        name,
        **{
            **runs.FAST,
            "exactly_once": str(exactly_once).lower(),
            "merchant_frauds_topic": frauds,
            "monitoring": "false",
            "backoff_max_s": 0.5,
        },
    )
    ids = list(stream.frame["transaction_id"])
    chunks = np.array_split(np.arange(len(stream.records)), 5)

    def send(chunk: np.ndarray) -> None:
        produce(kafka_config.client_config(settings), topic, [stream.records[i] for i in chunk])

    def scored_from(chunk: np.ndarray, *, every: bool = False) -> list[Record]:
        wanted = {ids[i] for i in chunk}
        return read_topic(
            bootstrap,
            f"{name}.scored",
            until=lambda records: (
                wanted <= set(runs.ids(records)) if every else bool(wanted & set(runs.ids(records)))
            ),
            timeout_s=180,
        )

    held = {ids[i] for i in chunks[3]}
    log_path = logs / f"{name}.log"
    with BridgeProcess({**env, "FINRISK_LABELS__LABELS_TOPIC": labels}, log_path).start() as bridge:
        # Each move comes mid-stream: as soon as the chunk before has rows scored, with the
        # rest of it in flight or still in the topic.
        send(chunks[0])
        scored_from(chunks[0])
        versions.promote("reordered")
        send(chunks[1])
        scored_from(chunks[1])
        versions.promote("older")
        send(chunks[2])
        scored_from(chunks[2], every=True)
        # A detector reading a feature no bridge computes: paused, nothing dead-lettered.
        versions.promote("unknown")
        send(chunks[3])
        wait_for(lambda: _metric(bridge, "finrisk_bridge_paused") == 1, 60, "the pause")
        assert not held & set(runs.ids(read_topic(bootstrap, f"{name}.scored")))
        # Then one reading merchant risk, which the bridge started without: it starts again
        # in its process, with merchant risk, and scores what was held.
        versions.promote("merchant")
        send(chunks[4])
        scored = runs.scored_until_all(bootstrap, name, ids)
        assert bridge.terminate() == 0
    text = log_path.read_text()
    assert UNKNOWN in text  # the pause named the feature
    assert "starting the bridge again in this process" in text

    docs: list[dict[str, Any]] = [r.json() for r in scored]
    counts = Counter(doc["transaction_id"] for doc in docs)
    assert set(counts) == set(ids)  # none lost
    if exactly_once:
        assert set(counts.values()) == {1}  # none twice under read_committed
    assert read_topic(bootstrap, f"{name}.dlq") == []
    for doc in docs:
        want = expected[doc["detector_version"]][doc["transaction_id"]]
        assert doc["anomaly_score"] == pytest.approx(want, rel=1e-9, abs=1e-12), doc
    used = Counter(doc["detector_version"] for doc in docs)
    assert set(used) == {versions.versions[k] for k in ORDERS if k != "unknown"}, used
    # Everything held during the pause was scored by the merchant-risk detector.
    held_by = {doc["detector_version"] for doc in docs if doc["transaction_id"] in held}
    assert held_by == {versions.versions["merchant"]}
