"""One record through each real service, read back and compared."""

from __future__ import annotations

import uuid

import pytest

from finrisk.settings import Settings
from finrisk.stack import Service
from finrisk.stack.smoke import bigquery_round_trip, kafka_round_trip, mlflow_round_trip

pytestmark = pytest.mark.integration


def test_kafka_message_is_consumed_back(kafka: Service, stack_settings: Settings) -> None:
    payload = uuid.uuid4().bytes
    topic = f"test.smoke.{uuid.uuid4().hex[:8]}"
    assert kafka_round_trip(stack_settings.kafka.bootstrap_servers, topic, payload) == payload


def test_mlflow_run_is_read_back(mlflow_server: Service, stack_settings: Settings) -> None:
    run = mlflow_round_trip(stack_settings.mlflow.tracking_uri, "test-smoke", 0.625)
    assert run["params"] == {"smoke": "yes"}
    assert run["metrics"] == {"value": 0.625}


def test_bigquery_row_is_queried_back(bigquery_emulator: Service, stack_settings: Settings) -> None:
    row_id = uuid.uuid4().hex
    rows = bigquery_round_trip(
        stack_settings.bigquery.project,
        stack_settings.bigquery.endpoint,
        "test_smoke",
        {"id": row_id, "amount": 42.25},
    )
    assert rows == [{"id": row_id, "amount": 42.25}]
