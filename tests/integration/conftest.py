"""Fixtures of the integration tests outside the bridge: the predictor as a real process.

`served`: `finrisk serve` on two small models registered under unique names with alias
`champion` in the real MLflow server, on free loopback ports (HTTP and gRPC), for every
predictor test module (started once, ended when the last is done). `served_categories`: the
same for a risk model with a categorical input, started only by the tests that use it.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from finrisk.stack import Service
from finrisk.stack.process import free_port, log_tail, spawn, stop_spawned
from tests.support import trained_models
from tests.support.predictor_process import Served, register


def _wait_ready(url: str, child: subprocess.Popen[bytes], log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{url}/v2/health/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if child.poll() is not None:
            raise AssertionError(f"predictor exited with {child.returncode}:\n{log_tail(log, 40)}")
        if time.monotonic() > deadline:
            raise AssertionError(f"predictor not ready after {timeout} s:\n{log_tail(log, 40)}")
        time.sleep(0.2)


@contextlib.contextmanager
def _predictor(
    uri: str, models: list[str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path, str]]:
    """`finrisk serve` on `models` (its model flags) on free loopback ports: (url, log, gRPC
    host:port) while ready, ended on exit."""
    port = free_port(2)  # HTTP, and gRPC on the next port
    grpc_port = port + 1
    log = tmp_path_factory.mktemp("predictor") / "predictor.log"
    argv = [
        sys.executable, "-m", "finrisk", "serve", *models,
        "--tracking-uri", uri, "--http-port", str(port), "--grpc-port", str(grpc_port),
        "--reload-interval", "0.5", "--max-batch-rows", "100",
    ]  # fmt: skip
    child = spawn(argv, log, {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1"})
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, child, log)
        yield url, log, f"127.0.0.1:{grpc_port}"
    finally:
        stop_spawned(child)


@pytest.fixture(scope="package")
def served(mlflow_server: Service, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    uri = mlflow_server.address
    suffix = uuid.uuid4().hex[:8]
    detector, risk = f"test-det-{suffix}", f"test-risk-{suffix}"
    register(trained_models.detector("supervised"), "detector", detector, uri)
    register(trained_models.risk_model("hgb"), "risk", risk, uri)
    models = [
        "--detector-uri", f"models:/{detector}@champion", "--risk-uri", f"models:/{risk}@champion"
    ]  # fmt: skip
    with _predictor(uri, models, tmp_path_factory) as (url, log, grpc_address):
        yield Served(url, uri, detector, risk, log, grpc_address)


@pytest.fixture(scope="package")
def served_categories(
    mlflow_server: Service, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    """A predictor serving only a risk model with a categorical input (trained_models
    "hgb_text"): its own process, so the shared one's models stay as every test knows them."""
    uri = mlflow_server.address
    risk = f"test-risk-text-{uuid.uuid4().hex[:8]}"
    register(trained_models.risk_model("hgb_text"), "risk", risk, uri)
    models = ["--models", "risk", "--risk-uri", f"models:/{risk}@champion"]
    with _predictor(uri, models, tmp_path_factory) as (url, log, grpc_address):
        yield Served(url, uri, "", risk, log, grpc_address)  # no detector here


@pytest.fixture(scope="package")
def client(served: Served) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served.url, timeout=30) as c:
        yield c
