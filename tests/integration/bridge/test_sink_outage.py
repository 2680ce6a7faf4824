"""The anomaly sink as deployed (BigQuery, on an emulator of the test's own) going away and
coming back, and refusing rows for good: the stream never stops for long, nothing is lost, and
the bridge holds no more than its bounds while it waits."""

from __future__ import annotations

import uuid
from pathlib import Path

import orjson
import pytest
from google.cloud import bigquery

from finrisk.bigquery_client import bigquery_client
from finrisk.serving.bridge import kafka_config
from finrisk.serving.bridge.producer import produce, synthetic_records
from finrisk.settings import Settings
from finrisk.sinks.bigquery import table_schema
from finrisk.stack import Service
from tests.integration.bridge import runs
from tests.support.kafka_reading import committed_offsets, end_offsets, read_topic, wait_for

pytestmark = pytest.mark.integration

# The first anomaly the sink cannot take fills the backlog: backpressure comes before the flush
# fails (sink_timeout_s), whatever the machine's speed.
IN_FLIGHT, BACKLOG = 4, 1
EXTRA = 50_000


def _other_users(count: int) -> list[tuple[bytes, bytes]]:
    """Transactions of users the reference stream does not have (their state stays apart)."""
    out = []
    for _, value in synthetic_records(count, users=4_000, days=30, seed=99, id_prefix="x"):
        doc = orjson.loads(value)
        doc["user_id"] = f"x{doc['user_id']}"
        out.append((doc["user_id"].encode(), orjson.dumps(doc)))
    return out


def test_the_sink_down_bounds_what_the_bridge_holds_and_it_catches_up_losing_nothing(
    stack_settings: Settings,
    own_bigquery: Service,
    served: runs.Served,
    reference: runs.Reference,
    transactions: list[tuple[bytes, bytes]],
    valid_ids: list[str],
    logs: Path,
) -> None:
    bootstrap = runs.bootstrap(stack_settings)
    config = kafka_config.client_config(stack_settings)
    topic = runs.topic(stack_settings, runs.unique("sink-down"))
    name = runs.unique("sink-down")
    project = stack_settings.bigquery.project
    dataset = f"test_sink_down_{uuid.uuid4().hex[:10]}"
    extra = _other_users(EXTRA)
    bridge = runs.bridge(
        stack_settings,
        served,
        topic,
        name,
        logs,
        **runs.bigquery_sink(own_bigquery.address, project, dataset),
        max_in_flight_batches=IN_FLIGHT,
        sink_max_backlog_rows=BACKLOG,
        sink_timeout_s=5,
    ).start()
    with bridge:
        produce(config, topic, transactions)
        end = end_offsets(bootstrap, topic)
        wait_for(lambda: committed_offsets(bootstrap, name, topic) == end, 120, "the stream")
        before = runs.scored_count(bridge)
        own_bigquery.down()
        produce(config, topic, extra)
        seen: list[dict[str, float]] = []

        def held_back_and_paused() -> bool:
            seen.append(bridge.metrics())
            return (
                any(m.get("finrisk_bridge_backpressure") == 1.0 for m in seen)
                and seen[-1].get("finrisk_bridge_paused") == 1.0
                and seen[-1].get("finrisk_bridge_errors_total{kind=sink}", 0) >= 1
            )

        wait_for(held_back_and_paused, 60, "backpressure, then a pause retrying the sink")
        # Most of the stream waits in Kafka: what the bridge took stops at its bounds.
        taken = runs.scored_count(bridge) - before
        assert taken < EXTRA / 10, taken
        assert max(m["finrisk_bridge_in_flight_batches"] for m in seen) <= IN_FLIGHT
        batch = runs.FAST["batch_max_messages"]
        assert max(m["finrisk_bridge_sink_backlog_rows"] for m in seen) < BACKLOG + batch
        own_bigquery.up()
        end = end_offsets(bootstrap, topic)
        wait_for(lambda: committed_offsets(bootstrap, name, topic) == end, 180, "catching up")
        metrics = bridge.metrics()
        assert metrics["finrisk_bridge_paused"] == 0 and metrics["finrisk_bridge_backpressure"] == 0
        assert bridge.terminate() == 0
    everyone = valid_ids + [orjson.loads(v)["transaction_id"] for _, v in extra]
    scored = runs.scored_until_all(bootstrap, name, everyone)
    assert set(runs.ids(scored)) == set(everyone)
    theirs = reference.users
    runs.same_scores([r for r in scored if r.json()["user_id"] in theirs], reference)
    stored = runs.anomalies_in(own_bigquery.address, project, dataset)
    assert {row.transaction_id for row in stored} == runs.flagged(scored)


def test_rows_the_sink_refuses_for_good_are_dead_lettered_and_the_others_stored(
    stack_settings: Settings,
    bigquery_emulator: Service,
    served: runs.Served,
    transactions: list[tuple[bytes, bytes]],
    valid_ids: list[str],
    logs: Path,
) -> None:
    bootstrap = runs.bootstrap(stack_settings)
    bq = stack_settings.bigquery
    topic = runs.topic(stack_settings, runs.unique("sink-refuses"))
    name = runs.unique("sink-refuses")
    dataset = f"test_sink_refuses_{uuid.uuid4().hex[:10]}"
    # An operator changed a column's type: anomaly rows no longer fit the table.
    client = bigquery_client(bq.project, bq.endpoint)
    client.create_dataset(dataset)
    drifted = [
        bigquery.SchemaField(f.name, "FLOAT", mode=f.mode) if f.name == "risk_band" else f
        for f in table_schema()
    ]
    client.create_table(bigquery.Table(f"{bq.project}.{dataset}.anomalies", schema=drifted))
    client.close()
    bridge = runs.bridge(
        stack_settings,
        served,
        topic,
        name,
        logs,
        **runs.bigquery_sink(bq.endpoint, bq.project, dataset),
    ).start()
    with bridge:
        produce(kafka_config.client_config(stack_settings), topic, transactions)
        end = end_offsets(bootstrap, topic)
        wait_for(lambda: committed_offsets(bootstrap, name, topic) == end, 120, "the stream")
        assert bridge.terminate() == 0
    scored = runs.scored_until_all(bootstrap, name, valid_ids)
    flagged = runs.flagged(scored)
    dead = read_topic(bootstrap, f"{name}.dlq")
    # Every anomaly has a band, so every row is refused, each once, with BigQuery's reason;
    # the stream went on to its end. (Rows that fit beside refused ones are stored: see
    # tests/integration/test_sinks_bigquery.py.)
    refused = [orjson.loads(r.value or b"")["transaction_id"] for r in dead]
    assert flagged and sorted(refused) == sorted(flagged)
    for record in dead:
        assert record.headers["finrisk.error.kind"] == b"sink_rejected"
        assert b"refused the anomaly row: invalid" in record.headers["finrisk.error.reason"]
    assert runs.anomalies_in(bq.endpoint, bq.project, dataset) == []
