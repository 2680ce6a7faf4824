"""Session fixtures for the real local services.

Each service fixture uses the service when it already runs (a developer's `finrisk stack up`),
otherwise starts it and ends it when the session ends: a test run leaves nothing behind.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from finrisk.errors import FinriskError
from finrisk.settings import BigQuerySettings, KafkaSettings, Settings
from finrisk.stack import SERVICE_TYPES, Service
from finrisk.stack.process import free_port
from finrisk.stack.topics import delete_topics

# Every test topic's name starts so; a broker keeps every topic, and thousands of partitions
# left by earlier runs make it take minutes to start.
TEST_TOPICS = "test."


# MLflow's telemetry keeps a session id in os.environ and deletes it at exit of a run; when a
# test started it, the fixture below has already removed it (KeyError in MLflow). Tests send no
# telemetry anyway.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


@pytest.fixture(autouse=True)
def _environment_as_found() -> Iterator[None]:
    """Each test leaves the environment as it found it. Code under test may export settings
    for child processes (MLflow's set_tracking_uri and set_registry_uri write MLFLOW_*_URI to
    os.environ); left there, they would point a later test's services at this test's server."""
    before = dict(os.environ)
    yield
    if os.environ != before:
        os.environ.clear()
        os.environ.update(before)


@pytest.fixture(scope="session")
def stack_settings() -> Settings:
    return Settings()


@contextmanager
def _running(name: str, settings: Settings) -> Iterator[Service]:
    service = SERVICE_TYPES[name](settings)
    started = service.up()
    try:
        yield service
    finally:
        if started:
            service.down()


@pytest.fixture(scope="session")
def kafka(stack_settings: Settings) -> Iterator[Service]:
    """The broker; the tests' topics ("test." and a uuid) are deleted when the session ends."""
    with _running("kafka", stack_settings) as service:
        yield service
        try:
            delete_topics(stack_settings, [TEST_TOPICS])
        except FinriskError as exc:  # housekeeping: say so, but the tests' verdicts stand
            warnings.warn(f"the test topics were not deleted: {exc}", stacklevel=1)


@pytest.fixture(scope="session")
def mlflow_server(stack_settings: Settings) -> Iterator[Service]:
    with _running("mlflow", stack_settings) as service:
        yield service


@pytest.fixture(scope="session")
def bigquery_emulator(stack_settings: Settings) -> Iterator[Service]:
    with _running("bigquery", stack_settings) as service:
        yield service


@pytest.fixture
def own_bigquery(tmp_path: Path) -> Iterator[Service]:
    """A BigQuery emulator of the test's own, on free ports, which the test may stop and start
    again (its data survives: the table the bridge created is still there)."""
    port = free_port(run=2)
    bigquery = BigQuerySettings(port=port, grpc_port=port + 1)
    with _running("bigquery", Settings(home=tmp_path / "stack", bigquery=bigquery)) as service:
        yield service


@pytest.fixture
def own_kafka(tmp_path: Path) -> Iterator[Service]:
    """A Kafka broker of the test's own (its own data and ports), which the test may stop,
    kill and start again on the same data."""
    port = free_port(run=2)
    kafka = KafkaSettings(port=port, controller_port=port + 1)
    with _running("kafka", Settings(home=tmp_path / "stack", kafka=kafka)) as service:
        yield service


@pytest.fixture(scope="session")
def kube(stack_settings: Settings) -> Iterator[Service]:
    """The local Kubernetes API server with the upstream CRDs (built once into the cache)."""
    with _running("kube", stack_settings) as service:
        yield service
