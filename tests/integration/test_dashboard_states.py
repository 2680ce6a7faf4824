"""The dashboard before anything was written and with its stores down, in a real headless
Chromium: every page says "nothing yet" for an empty store and names a store it cannot reach,
never a traceback, and the browser logs no error either way."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect

from finrisk.dashboard import stores
from finrisk.settings import DashboardSettings, Settings
from finrisk.stack import Service
from finrisk.stack.dashboard import Dashboard
from finrisk.stack.process import free_port
from tests.support.browser import Browser, browser
from tests.support.closed_port import closed_port

pytestmark = pytest.mark.integration

# Each page's banners with every store empty or down: the live page has four (the stream, the
# bridge, the predictor, the anomalies), the models page two (registry, decisions), the
# monitoring page one or two (the windows; the labels only when the store answered).
BANNERS = {"Live": 4, "Customers": 1, "Models": 2}
PAGES = (*BANNERS, "Monitoring")


def _dashboard(base: Settings, home: Path, **shown: object) -> Iterator[Dashboard]:
    settings = base.model_copy(
        update={"home": home, "dashboard": DashboardSettings(port=free_port(), **shown)}  # type: ignore[arg-type]
    )
    service = Dashboard(settings)
    service.up()
    try:
        yield service
    finally:
        service.down()


def _visit(b: Browser, url: str, monitoring: int) -> dict[str, list[str]]:
    """Each page's banners once all are drawn, and nothing that looks like a traceback."""
    b.open(url)
    shown = {}
    for name in PAGES:
        if name != "Live":
            b.go(name)
        banners = BANNERS.get(name, monitoring)
        try:
            expect(b.page.get_by_test_id("stAlert")).to_have_count(banners, timeout=60_000)
        except AssertionError as exc:
            b.shot(f"dashboard-states-{name}-failed")
            raise AssertionError(f"{name}: {banners} banners expected, shown {b.alerts()}") from exc
        shown[name] = b.alerts()
        text = b.page.locator("body").inner_text()
        assert "Traceback" not in text and b.page.get_by_test_id("stException").count() == 0
    return shown


@pytest.fixture
def down(stack_settings: Settings, tmp_path: Path) -> Iterator[Dashboard]:
    with closed_port() as port, closed_port() as other:
        dead = f"http://127.0.0.1:{port}"
        yield from _dashboard(
            stack_settings,
            tmp_path,
            bigquery_endpoint=dead,
            mlflow_tracking_uri=f"http://127.0.0.1:{other}",
            bridge_metrics_url=f"{dead}/metrics",
            predictor_url=dead,
        )


@pytest.fixture
def empty(
    bigquery_emulator: Service, mlflow_server: Service, stack_settings: Settings, tmp_path: Path
) -> Iterator[Dashboard]:
    suffix = uuid.uuid4().hex[:8]
    with closed_port() as port:  # no bridge or predictor running either
        dead = f"http://127.0.0.1:{port}"
        yield from _dashboard(
            stack_settings,
            tmp_path,
            bridge_metrics_url=f"{dead}/metrics",
            predictor_url=dead,
            bigquery_endpoint=stack_settings.bigquery.endpoint,
            bigquery_dataset=f"never_written_{suffix}",
            mlflow_tracking_uri=mlflow_server.address,
            detector_model=f"never-registered-{suffix}",
            risk_model=f"never-registered-risk-{suffix}",
        )


def test_stores_that_are_down_are_named_on_every_page(down: Dashboard) -> None:
    settings = down.settings.dashboard
    with browser() as b:
        shown = _visit(b, down.address, monitoring=1)
        b.shot("dashboard-stores-down")
    bigquery = f"BigQuery at {settings.bigquery_endpoint} is not available"
    for page in PAGES:
        assert any(bigquery in alert for alert in shown[page]), (page, shown[page])
    mlflow = f"MLflow at {settings.mlflow_tracking_uri}"
    assert any(mlflow in a for a in shown["Models"]), shown["Models"]
    bridge = f"the bridge's metrics at {settings.bridge_metrics_url}"
    assert any(bridge in a for a in shown["Live"]), shown["Live"]
    predictor = f"the predictor's metrics at {settings.predictor_url}"
    assert any(predictor in a for a in shown["Live"]), shown["Live"]
    assert b.errors == []


def test_an_empty_store_says_nothing_yet_on_every_page(empty: Dashboard) -> None:
    with browser() as b:
        shown = _visit(b, empty.address, monitoring=2)
        b.shot("dashboard-empty")
    for page in PAGES:
        assert any(a.startswith("Nothing yet") or "Nothing yet" in a for a in shown[page]), page
        assert not any("not available" in a and "BigQuery" in a for a in shown[page]), page
    assert any("no registered version" in a for a in shown["Models"])
    assert b.errors == []


def test_the_registry_read_is_the_one_configured_not_the_environments(
    mlflow_server: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MLFLOW_REGISTRY_URI (which `mlflow.set_registry_uri` exports to every child process)
    names a live server; the dashboard, configured for a server that is down, must say so
    rather than show the live server's registry as "nothing yet"."""
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", mlflow_server.address)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    with closed_port() as port:
        dead = f"http://127.0.0.1:{port}"
        read = stores.model_versions(dead, {"detector": f"never-registered-{uuid.uuid4().hex}"})
    assert isinstance(read, stores.Unavailable), read
    assert read.store == stores.MLFLOW and read.address == dead
