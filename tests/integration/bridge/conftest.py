"""Package fixtures of the bridge's integration tests: the models served once, the stream, and
the clean reference run every recovery scenario is compared with."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import pandas as pd
import pytest

from finrisk.bench.local_processes import (
    PredictorProcess,
    register_champions,
    train_models,
)
from finrisk.serving.bridge import kafka_config
from finrisk.serving.bridge.producer import produce, synthetic_records
from finrisk.settings import Settings
from finrisk.sinks.bigquery import BigQuerySink
from finrisk.stack import Service
from tests.integration.bridge import runs
from tests.support.kafka_reading import (
    committed_offsets,
    count_at_least,
    end_offsets,
    read_topic,
    wait_for,
)


@pytest.fixture(scope="package")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bridge-logs")


@pytest.fixture(scope="package")
def served(mlflow_server: Service, stack_settings: Settings, logs: Path) -> Iterator[runs.Served]:
    tracking_uri = stack_settings.mlflow.tracking_uri
    suffix = uuid.uuid4().hex[:8]
    detector, risk = train_models(users=150, days=30, seed=11)
    models = register_champions(
        tracking_uri, f"test-bridge-det-{suffix}", f"test-bridge-risk-{suffix}", detector, risk
    )
    predictor = PredictorProcess(models, tracking_uri, logs / "predictor.log").start()
    try:
        yield runs.Served(models, predictor, tracking_uri, detector)
    finally:
        predictor.stop()


@pytest.fixture(scope="package")
def transactions() -> list[tuple[bytes, bytes]]:
    return synthetic_records(runs.N_TRANSACTIONS, users=120, days=30, seed=23)


@pytest.fixture(scope="package")
def frame(transactions: list[tuple[bytes, bytes]]) -> pd.DataFrame:
    """The streamed transactions as the batch path reads them."""
    frame = pd.DataFrame([orjson.loads(value) for _, value in transactions])
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], unit="ms", utc=True)
    return frame


@pytest.fixture(scope="package")
def valid_ids(transactions: list[tuple[bytes, bytes]]) -> list[str]:
    return [orjson.loads(value)["transaction_id"] for _, value in transactions]


@pytest.fixture(scope="package")
def reference(
    kafka: Service,
    bigquery_emulator: Service,
    stack_settings: Settings,
    served: runs.Served,
    transactions: list[tuple[bytes, bytes]],
    logs: Path,
) -> runs.Reference:
    """One clean run over the stream with poison messages mixed in, anomalies to BigQuery."""
    topic = runs.topic(stack_settings, runs.unique("input"))
    stream: list[tuple[bytes, bytes | None]] = list(transactions)
    for i, (key, value, _) in enumerate(runs.POISON):
        stream.insert(300 + i * 500, (key, value))
    produce(kafka_config.client_config(stack_settings), topic, stream)  # type: ignore[arg-type]
    name = runs.unique("reference")
    bq = stack_settings.bigquery
    dataset = f"test_bridge_{uuid.uuid4().hex[:10]}"
    bridge = runs.bridge(
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
        monitoring_window_transactions=runs.MONITORING_WINDOW,
        monitoring_window_s=runs.MONITORING_WINDOW_S,
    ).start()
    with bridge:
        scored = read_topic(
            runs.bootstrap(stack_settings),
            f"{name}.scored",
            until=count_at_least(runs.N_TRANSACTIONS),
            timeout_s=180,
        )
        # Quiet now: the next checkpoint commits everything without being asked to stop.
        end = end_offsets(runs.bootstrap(stack_settings), topic)
        wait_for(
            lambda: committed_offsets(runs.bootstrap(stack_settings), name, topic) == end,
            30,
            "the idle checkpoint's commit",
        )
        # The windows closed by count as the stream went, the last by time once it was quiet.
        monitoring = read_topic(
            runs.bootstrap(stack_settings),
            f"{name}.monitoring",
            until=lambda records: runs.monitored(records) == runs.N_TRANSACTIONS,
            timeout_s=60,
        )
        returncode = bridge.terminate()
    dead = read_topic(
        runs.bootstrap(stack_settings), f"{name}.dlq", until=count_at_least(len(runs.POISON))
    )
    sink = BigQuerySink(bq.project, dataset, "anomalies", endpoint=bq.endpoint)
    anomalies = sink.read()
    sink.close()
    return runs.Reference(
        input_topic=topic,
        name=name,
        scored=scored,
        dead=dead,
        monitoring=monitoring,
        anomalies_in_bigquery=anomalies,
        committed=committed_offsets(runs.bootstrap(stack_settings), name, topic),
        end=end_offsets(runs.bootstrap(stack_settings), topic),
        returncode=returncode,
    )
