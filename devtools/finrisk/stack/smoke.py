"""A round trip through each local service: what `finrisk stack smoke` shows and the tests check."""

from __future__ import annotations

import time
import uuid
from typing import Any

from finrisk.bigquery_client import bigquery_client
from finrisk.errors import FinriskError
from finrisk.settings import Settings


def kafka_round_trip(bootstrap_servers: str, topic: str, payload: bytes) -> bytes:
    """Produce `payload` with acks=all, then read it back with a fresh consumer group."""
    from confluent_kafka import Consumer, KafkaError, Producer

    producer = Producer({"bootstrap.servers": bootstrap_servers, "acks": "all"})
    errors: list[KafkaError] = []

    def delivered(err: KafkaError | None, _message: object) -> None:
        if err is not None:
            errors.append(err)

    producer.produce(topic, value=payload, on_delivery=delivered)
    if producer.flush(30) != 0 or errors:
        raise FinriskError(f"Kafka did not acknowledge the message: {errors or 'timeout'}")
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap_servers,
            "group.id": f"finrisk-smoke-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            message = consumer.poll(1.0)
            if message is None:
                continue
            if message.error():
                raise FinriskError(f"Kafka consume failed: {message.error()}")
            value = message.value()
            if value == payload:
                return value
    finally:
        consumer.close()
    raise FinriskError(f"the message produced to {topic} did not come back within 60 s")


def mlflow_round_trip(tracking_uri: str, experiment: str, metric: float) -> dict[str, Any]:
    """Log a run with a parameter and a metric, then read it back from the server."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    found = client.get_experiment_by_name(experiment)
    experiment_id = found.experiment_id if found else client.create_experiment(experiment)
    run = client.create_run(experiment_id)
    client.log_param(run.info.run_id, "smoke", "yes")
    client.log_metric(run.info.run_id, "value", metric)
    client.set_terminated(run.info.run_id)
    data = client.get_run(run.info.run_id).data
    return {"run_id": run.info.run_id, "params": dict(data.params), "metrics": dict(data.metrics)}


def bigquery_round_trip(
    project: str, endpoint: str | None, dataset: str, row: dict[str, Any]
) -> list[dict[str, Any]]:
    """Create a table, insert `row` (keys: id STRING, amount FLOAT), query it back by id."""
    from google.api_core.retry import Retry
    from google.cloud import bigquery

    client = bigquery_client(project, endpoint)
    client.create_dataset(dataset, exists_ok=True)
    table = bigquery.Table(
        f"{project}.{dataset}.smoke",
        schema=[
            bigquery.SchemaField("id", "STRING", mode="REQUIRED"),
            bigquery.SchemaField("amount", "FLOAT"),
        ],
    )
    client.create_table(table, exists_ok=True)
    # A short retry: the emulator answers a bad row with a 500 that the default retries for minutes.
    errors = client.insert_rows_json(table, [row], retry=Retry(timeout=30), timeout=30)
    if errors:
        raise FinriskError(f"BigQuery rejected the row: {errors}")
    job = client.query(
        f"SELECT id, amount FROM `{project}.{dataset}.smoke` WHERE id = @id",
        job_config=bigquery.QueryJobConfig(
            query_parameters=[bigquery.ScalarQueryParameter("id", "STRING", row["id"])]
        ),
    )
    return [dict(r.items()) for r in job.result(timeout=60)]


def run_all(settings: Settings) -> dict[str, Any]:
    marker = uuid.uuid4().hex
    value = kafka_round_trip(settings.kafka.bootstrap_servers, "finrisk.smoke", marker.encode())
    run = mlflow_round_trip(settings.mlflow.tracking_uri, "finrisk-smoke", 1.5)
    rows = bigquery_round_trip(
        settings.bigquery.project,
        settings.bigquery.endpoint,
        "finrisk_smoke",
        {"id": marker, "amount": 12.5},
    )
    return {
        "kafka": {"topic": "finrisk.smoke", "value": value.decode()},
        "mlflow": run,
        "bigquery": rows,
    }
