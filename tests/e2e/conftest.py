"""One small `finrisk demo` run shared by the tests that check its summary and its dashboard:
the run takes a minute, and both look at the same result. The predictor and the dashboard it
leaves up are ended here."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest

from finrisk.demo.options import DemoOptions
from finrisk.demo.run import run_demo
from finrisk.settings import DashboardSettings, PredictorPortSettings, Settings
from finrisk.stack import Service, Stack
from finrisk.stack.process import free_port
from tests.support.demo_run import STREAM, DemoRun


@pytest.fixture(scope="session")
def demo_run(
    kafka: Service, mlflow_server: Service, bigquery_emulator: Service, stack_settings: Settings
) -> Iterator[DemoRun]:
    rest = free_port(2)  # and gRPC on the next port
    settings = stack_settings.model_copy(
        update={
            "predictor": PredictorPortSettings(port=rest, grpc_port=rest + 1),
            "dashboard": DashboardSettings(port=free_port()),
        }
    )
    options = DemoOptions(
        train_users=400,
        train_days=45,
        stream_users=STREAM["users"],
        stream_days=STREAM["days"],
        seed=STREAM["seed"] - 1,
        progress=False,
    )
    log = io.StringIO()
    try:
        yield DemoRun(settings, run_demo(options, settings, out=log), log.getvalue())
    finally:
        Stack(settings).down(["dashboard", "predictor"])
