"""Session fixtures for the real local services.

Each service fixture uses the service when it already runs (a developer's `finrisk stack up`),
otherwise starts it and ends it when the session ends: a test run leaves nothing behind.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from finrisk.settings import Settings
from finrisk.stack import SERVICE_TYPES, Service


@pytest.fixture(scope="session")
def stack_settings() -> Settings:
    return Settings()


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
    yield from _running("kafka", stack_settings)


@pytest.fixture(scope="session")
def mlflow_server(stack_settings: Settings) -> Iterator[Service]:
    yield from _running("mlflow", stack_settings)


@pytest.fixture(scope="session")
def bigquery_emulator(stack_settings: Settings) -> Iterator[Service]:
    yield from _running("bigquery", stack_settings)
