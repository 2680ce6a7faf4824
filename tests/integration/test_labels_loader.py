"""`finrisk labels load` against the real broker and the BigQuery emulator: label and scored
records in, rows out; a poison record dead-lettered while the rest load; a replay counted once;
the realized metrics' SQL equal to the reference computed from the records themselves."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest

from finrisk.bigquery_client import bigquery_client
from finrisk.monitoring.profile import reference_profile
from finrisk.monitoring.realized import realized_metrics, shadowed_outcomes
from finrisk.monitoring.records import window_record
from finrisk.monitoring.window import ModelWindow
from finrisk.outcomes import Outcomes
from finrisk.serving.bridge.producer import produce
from finrisk.serving.labels.loader import LabelLoader, load
from finrisk.settings import LabelsSettings, Settings
from finrisk.stack import Service
from finrisk.synthetic import generate
from finrisk.synthetic.labels import synthetic_labels
from tests.support.kafka_reading import committed_offsets, read_topic
from tests.support.realized_reference import reference_realized, reference_shadowed

pytestmark = pytest.mark.integration


REASONS = [{"feature": "overdraft_freq", "contribution": 0.21}]
RECOMMENDATIONS = [
    {
        "actions": [{"lever": "avoid_overdrafts", "reduce_by": 0.5}],
        "changes": [
            {"feature": "overdraft_freq", "from": 0.2, "to": 0.1},
            {"feature": "recent_overdraft_share", "from": 0.3, "to": 0.15},
        ],
        "cost": 0.5,
        "probability": 0.35,
        "band": "LOW",
    }
]


def scored_records(transactions: pd.DataFrame, seed: int) -> list[dict[str, Any]]:
    """Scored records in the bridge's form (outputs.scored_values): the champion flags most
    frauds and a few others; half the users also have a shadow challenger's verdict."""
    rng = np.random.default_rng(seed)
    out = []
    for i, row in enumerate(transactions.itertuples(index=False)):
        caught = bool(row.is_fraud) and rng.random() < 0.7
        flagged = caught or rng.random() < 0.01
        record: dict[str, Any] = {
            "transaction_id": row.transaction_id,
            "user_id": row.user_id,
            "event_time": row.timestamp.isoformat(),
            "amount": row.amount,
            "anomaly_score": float(rng.random()),
            "is_anomaly": flagged,
            "threshold": 0.5,
            "risk_probability": None,
            "risk_band": None,
            "detector_version": "3" if i % 3 else "4",
            "risk_model_version": "2",
            "scored_at_ms": int(row.timestamp.timestamp() * 1000) + 40,
            "source": {"partition": 0, "offset": i},
        }
        if i % 7 == 0:  # an elevated user's reasons and recommendations, as the bridge carries them
            record |= {"reasons": REASONS, "recommendations": RECOMMENDATIONS if i % 14 else []}
        else:
            record["reasons"] = []
        if int(row.user_id[1:]) % 2:
            record |= {
                "challenger_version": "5",
                "challenger_score": float(rng.random()),
                "challenger_is_anomaly": bool(row.is_fraud) or rng.random() < 0.02,
            }
        out.append(record)
    return out


def monitoring_records() -> list[dict[str, Any]]:
    """Two windows of a detector version as the bridge publishes them (finrisk.monitoring)."""
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"amount": rng.lognormal(3, 1, 2_000)})
    profile = reference_profile(frame, rng.beta(1, 20, 2_000), threshold=0.3)
    out = []
    for start, shift in ((0, 0.0), (60_000, 1.5)):
        window = ModelWindow("det", "3", "champion", profile, ["amount"])
        window.add(
            rng.lognormal(3 + shift, 1, (500, 1)),
            rng.beta(1, 20, 500),
            alerts=4,
            event_ns=np.array([1_700_000_000_000_000_000 + start * 1_000_000], dtype=np.int64),
        )
        out.append(
            window_record(
                window.report(),
                instance="pod-0",
                started_ms=1_700_000_000_000 + start,
                ended_ms=1_700_000_060_000 + start,
                dead_lettered=1,
                messages=501,
            )
        )
    return out


@pytest.fixture
def settings(kafka: Service, bigquery_emulator: Service, stack_settings: Settings) -> Settings:
    suffix = uuid.uuid4().hex[:10]
    labels = LabelsSettings(
        labels_topic=f"test.labels-{suffix}",
        scored_topic=f"test.scored-{suffix}",
        monitoring_topic=f"test.monitoring-{suffix}",
        dlq_topic=f"test.labels-dlq-{suffix}",
        group_id=f"test-labels-{suffix}",
        bigquery_dataset=f"labels_{suffix}",
        bigquery_endpoint=stack_settings.bigquery.endpoint,
        batch_max_records=200,
        batch_max_wait_ms=200,
    )
    return stack_settings.model_copy(update={"labels": labels})


@pytest.fixture
def client(settings: Settings) -> Iterator[Any]:
    bq = settings.bigquery
    client = bigquery_client(bq.project, bq.endpoint)
    yield client
    client.close()


def _count(client: Any, table_id: str, distinct: bool = False) -> int:
    what = "COUNT(DISTINCT transaction_id)" if distinct else "COUNT(*)"
    return next(iter(client.query(f"SELECT {what} AS n FROM `{table_id}`").result()))["n"]


def _assert_json_columns(client: Any, table_id: str, scored: list[dict[str, Any]]) -> None:
    """reasons and recommendations read back as the records carried them (NULL: none)."""
    query = f"SELECT transaction_id, reasons, recommendations FROM `{table_id}`"
    got = {r["transaction_id"]: r for r in client.query(query).result()}
    for record in scored:
        row = got[record["transaction_id"]]
        for name in ("reasons", "recommendations"):
            carried = record.get(name)
            assert (None if row[name] is None else orjson.loads(row[name])) == carried, name
    assert any(r.get("recommendations") for r in scored)


def test_loads_the_three_topics_dead_letters_poison_and_counts_a_replay_once(
    settings: Settings, client: Any
) -> None:
    transactions, _users, _ = generate(60, 25, 5)
    labels = synthetic_labels(transactions, 5)
    scored = scored_records(transactions, 5)
    bootstrap = settings.kafka.bootstrap_servers
    cfg = settings.labels
    poison_label = b'{"transaction_id": "tx1", "outcome": "stolen"}'
    poison_scored = b"not json {"
    label_messages = [(r.key, r.to_json()) for r in labels]
    label_messages.insert(len(label_messages) // 2, (b"u1", poison_label))
    scored_messages = [(r["user_id"].encode(), orjson.dumps(r)) for r in scored]
    scored_messages.insert(10, (b"u2", poison_scored))
    windows = monitoring_records()
    poison_window = orjson.dumps({**windows[0], "transactions": "many"})
    window_messages = [(w["model"].encode(), orjson.dumps(w)) for w in windows]
    window_messages.insert(1, (b"det", poison_window))
    loader = LabelLoader(settings)  # creates the topics and tables
    try:
        produce({"bootstrap.servers": bootstrap}, cfg.labels_topic, label_messages)
        produce({"bootstrap.servers": bootstrap}, cfg.scored_topic, scored_messages)
        produce({"bootstrap.servers": bootstrap}, cfg.monitoring_topic, window_messages)
        stats = loader.run(once=True)
    finally:
        loader.close()

    assert stats.labels == len(labels) and stats.scored == len(scored)
    assert stats.monitoring == len(windows)
    assert stats.dead_lettered == 3
    dead = read_topic(bootstrap, cfg.dlq_topic)
    by_value = {d.value: d.headers for d in dead}
    assert by_value[poison_scored]["finrisk.error.kind"] == b"unparseable"
    assert by_value[poison_label]["finrisk.error.kind"] == b"schema_invalid"
    assert b"missing fields" in by_value[poison_label]["finrisk.error.reason"]
    assert b"transactions must be int" in by_value[poison_window]["finrisk.error.reason"]
    tables = loader.tables
    rows = list(client.query(f"SELECT * FROM `{tables.monitoring_id}`").result())
    assert sorted(row["window_id"] for row in rows) == sorted(w["window_id"] for w in windows)
    for row in rows:
        window = next(w for w in windows if w["window_id"] == row["window_id"])
        assert row["transactions"] == window["transactions"]
        assert orjson.loads(row["feature_psi"]) == window["feature_psi"]
        assert row["drift_level"] == window["drift_level"]
    assert _count(client, tables.labels_id) == len(labels)
    assert _count(client, tables.scored_id) == len(scored)
    _assert_json_columns(client, tables.scored_id, scored)
    # Offsets committed past everything, the poison records included.
    committed = committed_offsets(bootstrap, cfg.group_id, cfg.labels_topic)
    assert sum(committed.values()) == len(label_messages)

    dataset = f"{tables.project}.{tables.dataset}"
    expected = reference_realized(scored, [r.as_json_dict() for r in labels])
    assert realized_metrics(client, dataset) == pytest.approx(expected)
    assert any(d.role == "challenger" for d in expected)
    assert any(d.true_alerts for d in expected)

    # The same group again: nothing left to load.
    assert load(settings, once=True).records == 0
    # A replay of everything (a new group; a crash before committing is the same): the
    # emulator keeps the duplicate rows, the metrics count each transaction once.
    replay = settings.model_copy(
        update={"labels": cfg.model_copy(update={"group_id": cfg.group_id + "-replay"})}
    )
    assert load(replay, once=True).labels == len(labels)
    assert _count(client, tables.labels_id) == 2 * len(labels)
    assert realized_metrics(client, dataset) == pytest.approx(expected)
    # Champion and shadow challenger on the same transactions, for the live gate.
    for champion in ("3", "4"):
        pair = shadowed_outcomes(client, dataset, champion_version=champion, challenger_version="5")
        assert pair == reference_shadowed(
            scored, [r.as_json_dict() for r in labels], champion_version=champion,
            challenger_version="5",
        )  # fmt: skip
        assert pair[0].scored > 0 and pair[1].true_alerts > 0
    assert shadowed_outcomes(client, dataset, champion_version="3", challenger_version="9") == (
        Outcomes(0, 0, 0, 0, 0),
        Outcomes(0, 0, 0, 0, 0),
    )
    some_day = expected[len(expected) // 2].day
    assert realized_metrics(client, dataset, since=some_day, until=some_day) == [
        d for d in expected if d.day == some_day
    ]


def test_a_scored_table_made_without_the_json_columns_gets_them_and_keeps_loading(
    settings: Settings, client: Any
) -> None:
    """A warehouse made before reasons and recommendations were kept: ensure_tables adds the
    NULLABLE columns, the old rows read NULL there, new records load both."""
    from google.cloud import bigquery

    from finrisk.monitoring.warehouse import (
        PARTITION_FIELD,
        SCORED_COLUMNS,
        SCORED_NULLABLE,
        Tables,
        schema,
    )

    bq = settings.bigquery
    tables = Tables(bq.project, settings.labels.bigquery_dataset)
    client.create_dataset(f"{tables.project}.{tables.dataset}", exists_ok=True)
    old_columns = {
        k: v for k, v in SCORED_COLUMNS.items() if k not in ("reasons", "recommendations")
    }
    old = bigquery.Table(tables.scored_id, schema=schema(old_columns, SCORED_NULLABLE))
    old.time_partitioning = bigquery.TimePartitioning(
        type_=bigquery.TimePartitioningType.DAY, field=PARTITION_FIELD
    )
    client.create_table(old)
    before = {
        "transaction_id": "old-1",
        "user_id": "u0",
        "event_time": "2025-01-02T10:00:00+00:00",
        "scored_at": "2025-01-02T10:00:01+00:00",
        "detector_version": "1",
        "anomaly_score": 0.1,
        "is_anomaly": False,
    }
    assert client.insert_rows_json(tables.scored_id, [before], row_ids=["old-1"]) == []

    transactions, _users, _ = generate(30, 10, 6)
    scored = scored_records(transactions, 6)
    loader = LabelLoader(settings)  # ensure_tables: the missing columns added
    try:
        produce(
            {"bootstrap.servers": settings.kafka.bootstrap_servers},
            settings.labels.scored_topic,
            [(r["user_id"].encode(), orjson.dumps(r)) for r in scored],
        )
        stats = loader.run(once=True)
    finally:
        loader.close()
    assert stats.scored == len(scored) and stats.dead_lettered == 0
    names = [field.name for field in client.get_table(tables.scored_id).schema]
    assert names == list(SCORED_COLUMNS)
    assert _count(client, tables.scored_id) == len(scored) + 1
    _assert_json_columns(client, tables.scored_id, scored)
    (old_row,) = client.query(
        f"SELECT reasons, recommendations FROM `{tables.scored_id}` WHERE transaction_id = 'old-1'"
    ).result()
    assert old_row["reasons"] is None and old_row["recommendations"] is None
