"""What the bridge's integration tests share: the stream, the served models, one clean run to
compare with, and helpers to start bridges on fresh topics and read what they wrote."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pandas as pd
import pytest

from finrisk.bench.local_processes import (
    BridgeProcess,
    PredictorProcess,
    RegisteredModels,
    bridge_environment,
)
from finrisk.features import transaction_features
from finrisk.features.batch_merchants import merchant_features
from finrisk.features.definitions import SERVED_MERCHANT_FEATURES
from finrisk.labels import LabelRecord
from finrisk.serving.bridge import kafka_config
from finrisk.serving.bridge.producer import produce, wire_records
from finrisk.serving.bridge.state import StateStore
from finrisk.settings import Settings
from finrisk.sinks.bigquery import BigQuerySink
from finrisk.stack.process import free_port
from finrisk.synthetic import generate
from finrisk.synthetic.labels import synthetic_labels
from tests.support.kafka_reading import Record, read_topic

__all__ = ["free_port"]

N_TRANSACTIONS = 3_000
# The clean run's monitoring windows close every this many transactions, or seconds.
MONITORING_WINDOW = 1_000
MONITORING_WINDOW_S = 10.0
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
    detector: Any  # the trained detector the champion version holds


@dataclass(frozen=True)
class Reference:
    input_topic: str
    name: str
    scored: list[Record]
    dead: list[Record]
    monitoring: list[Record]
    anomalies_in_bigquery: list[Any]
    committed: dict[int, int]
    end: dict[int, int]
    returncode: int

    @property
    def by_id(self) -> dict[str, dict[str, Any]]:
        return {doc["transaction_id"]: doc for doc in (r.json() for r in self.scored)}  # type: ignore[misc]

    @property
    def users(self) -> set[str]:
        return {doc["user_id"] for doc in self.by_id.values()}


def monitored(records: list[Record]) -> int:
    """The transactions the detector's monitoring records count."""
    docs = (r.json() for r in records)
    return sum(d["transactions"] for d in docs if "-det-" in d["model"])  # type: ignore[index]


def unique(kind: str) -> str:
    return f"test.bridge.{kind}.{uuid.uuid4().hex[:8]}"


def named(settings: Settings, name: str, **bridge: Any) -> Settings:
    """`settings` with a bridge named `name`: its group, and topics `name`.input, .scored,
    .dlq, .monitoring (and its changelog, `name`.state); `bridge` overrides more settings."""
    topics = {
        "input_topic": f"{name}.input",
        "scored_topic": f"{name}.scored",
        "dlq_topic": f"{name}.dlq",
        "monitoring_topic": f"{name}.monitoring",
        "group_id": name,
    }
    named_bridge = settings.bridge.model_copy(update={**topics, **bridge})
    return settings.model_copy(update={"bridge": named_bridge})


def bootstrap(settings: Settings) -> str:
    return settings.kafka.bootstrap_servers


def topic(settings: Settings, name: str) -> str:
    kafka_config.ensure_topic(settings, name, PARTITIONS)
    return name


def bridge(
    settings: Settings, served: Served, topic: str, name: str, logs: Path, **extra: Any
) -> BridgeProcess:
    env = bridge_environment(
        bootstrap(settings), served.predictor.url, served.models, topic, name, **{**FAST, **extra}
    )
    return BridgeProcess(env, logs / f"{name}.log")


def scored_count(bridge: BridgeProcess) -> float:
    try:
        return bridge.metrics().get("finrisk_bridge_messages_total{outcome=scored}", 0.0)
    except Exception:  # the process may be between start and its first scrape
        return 0.0


def topics(settings: Settings) -> set[str]:
    return set(kafka_config.admin(settings).list_topics(timeout=30).topics)


def same_scores(records: list[Record], reference: Reference) -> None:
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


def scored_until_all(bootstrap: str, name: str, valid_ids: list[str]) -> list[Record]:
    """The bridge `name`'s scored records, read until every one of `valid_ids` is there."""
    return read_topic(
        bootstrap,
        f"{name}.scored",
        until=lambda records: set(ids(records)) >= set(valid_ids),
        timeout_s=180,
    )


def ids(records: list[Record]) -> list[str]:
    return [r.json()["transaction_id"] for r in records]  # type: ignore[misc]


def final_state(bootstrap: str, changelog_topic: str) -> dict[str, tuple[float, ...]]:
    """Every user's features as a restore of the changelog topic gives them."""
    store = StateStore()
    for record in read_topic(bootstrap, changelog_topic):
        assert record.key is not None
        store.restore(record.key, record.value, record.partition, list(record.headers.items()))
    return {user: store.features.user_values(user) for user in store.features.users()}


def bigquery_sink(endpoint: str, project: str, dataset: str) -> dict[str, Any]:
    """A bridge's settings for anomalies to `dataset`.anomalies at a BigQuery endpoint."""
    return {
        "sink": "bigquery",
        "bigquery_project": project,
        "bigquery_endpoint": endpoint,
        "bigquery_dataset": dataset,
        "bigquery_table": "anomalies",
    }


def anomalies_in(endpoint: str, project: str, dataset: str) -> list[Any]:
    """The rows of `dataset`.anomalies (duplicates kept: the emulator ignores insertId)."""
    sink = BigQuerySink(project, dataset, "anomalies", endpoint=endpoint)
    try:
        return sink.read()
    finally:
        sink.close()


def flagged(records: list[Record]) -> set[str]:
    """Transaction ids of the scored records flagged as anomalies."""
    return {doc["transaction_id"] for doc in (r.json() for r in records) if doc["is_anomaly"]}  # type: ignore[misc]


def sources(records: list[Record]) -> list[tuple[int, int]]:
    """The input (partition, offset) of each scored record."""
    docs: list[dict[str, Any]] = [r.json() for r in records]  # type: ignore[misc]
    return [(doc["source"]["partition"], doc["source"]["offset"]) for doc in docs]


def deployed_sink(settings: Settings) -> tuple[dict[str, Any], str]:
    """Bridge settings for the sink as deployed (BigQuery, on the stack's emulator) on a fresh
    dataset, and that dataset."""
    bq = settings.bigquery
    dataset = f"test_bridge_{uuid.uuid4().hex[:10]}"
    return bigquery_sink(bq.endpoint, bq.project, dataset), dataset


def assert_every_anomaly_stored(
    settings: Settings,
    dataset: str,
    scored: list[Record],
    may_repeat: frozenset[str] | set[str] | None = frozenset(),
) -> None:
    """Every flagged transaction has its row in the table; a row comes twice only for the
    transactions in `may_repeat` (None: any, the sink being outside a Kafka transaction)."""
    bq = settings.bigquery
    ids = [row.transaction_id for row in anomalies_in(bq.endpoint, bq.project, dataset)]
    assert set(ids) == flagged(scored)
    repeated = {tx_id for tx_id, n in Counter(ids).items() if n > 1}
    if may_repeat is not None:
        assert repeated <= may_repeat, sorted(repeated - may_repeat)


@dataclass(frozen=True)
class HardStream:
    """A hard-scenario stream as the bridge reads it and as the batch path computes it."""

    records: list[tuple[bytes, bytes]]
    frame: pd.DataFrame  # the streamed transactions as the batch path reads them
    labels: list[LabelRecord]  # the generator's confirmed-label stream
    features: pd.DataFrame  # transaction features and served merchant risk, per row of frame


def hard_stream(users: int, days: int, seed: int) -> HardStream:
    """Generate the hard scenario and read its wire records back as the batch path does."""
    hard, _, _ = generate(users=users, days=days, seed=seed, scenario="hard")
    records = wire_records(hard)
    frame = pd.DataFrame([orjson.loads(value) for _, value in records])
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], unit="ms", utc=True)
    frame["is_fraud"] = (
        hard.set_index("transaction_id").loc[frame["transaction_id"], "is_fraud"].to_numpy()
    )
    labels = synthetic_labels(hard, seed)
    features = pd.concat(
        [
            transaction_features(frame),
            merchant_features(frame, labels)[list(SERVED_MERCHANT_FEATURES)],
        ],
        axis=1,
    )
    return HardStream(records, frame, labels, features)
