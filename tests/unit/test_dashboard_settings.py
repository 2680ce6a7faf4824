"""`finrisk dashboard`'s wiring: what it binds, what the app's process is told, which tables it
reads, and how a Prometheus endpoint is read; the pages themselves are tested in a real browser
(tests/integration/test_dashboard_states.py, tests/e2e/test_dashboard.py)."""

from __future__ import annotations

import httpx
import pytest

from finrisk.dashboard import stores
from finrisk.dashboard.cli import environment, streamlit_options
from finrisk.settings import DashboardSettings, Settings


def test_it_listens_on_loopback_and_sends_nothing_out() -> None:
    options = streamlit_options(DashboardSettings())
    assert options["server.address"] == "127.0.0.1" and options["server.port"] == 8501
    assert options["browser.gatherUsageStats"] is False
    assert options["server.headless"] is True


def test_the_apps_process_gets_the_settings_that_are_set() -> None:
    env = environment(DashboardSettings(bigquery_dataset="demo_1", port=9000))
    assert env["FINRISK_DASHBOARD__BIGQUERY_DATASET"] == "demo_1"
    assert env["FINRISK_DASHBOARD__PORT"] == "9000"
    assert "FINRISK_DASHBOARD__BIGQUERY_ENDPOINT" not in env  # none: the app's own default
    # An MLflow server out of reach must not hold a page for minutes of retries.
    assert env["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "0"
    # What the app reads back is what was meant.
    parsed = DashboardSettings.model_validate(
        {k.removeprefix("FINRISK_DASHBOARD__").lower(): v for k, v in env.items() if "DASH" in k}
    )
    assert parsed == DashboardSettings(bigquery_dataset="demo_1", port=9000)


def test_tables_come_from_the_dataset_unless_named_whole() -> None:
    local = Settings(dashboard=DashboardSettings(bigquery_dataset="wh"))
    warehouse = stores.Warehouse(local)
    assert warehouse.table("scored_transactions") == "finrisk-local.wh.scored_transactions"
    assert warehouse.anomalies == "finrisk-local.wh.anomalies"
    assert warehouse.endpoint == local.bigquery.endpoint  # the local emulator by default
    whole = stores.Warehouse(
        Settings(
            dashboard=DashboardSettings(
                bigquery_project="bank", anomalies_table="ops.fraud.anomalies"
            )
        )
    )
    assert whole.anomalies == "ops.fraud.anomalies"
    assert whole.endpoint is None and whole.address == "bigquery.googleapis.com"


def test_a_prometheus_endpoint_reads_as_samples_or_is_named_when_down() -> None:
    text = (
        "# TYPE finrisk_bridge_consumer_lag gauge\n"
        'finrisk_bridge_consumer_lag{partition="0"} 12\n'
        'finrisk_bridge_consumer_lag{partition="1"} 30\n'
    )

    def answering(url: str, timeout: float) -> httpx.Response:
        return httpx.Response(200, text=text, request=httpx.Request("GET", url))

    samples = stores.scrape(stores.BRIDGE, "http://bridge/metrics", get=answering)
    assert isinstance(samples, stores.pd.DataFrame)
    assert samples["value"].sum() == 42 and len(samples) == 2

    def refusing(url: str, timeout: float) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused")

    down = stores.scrape(stores.BRIDGE, "http://bridge/metrics", get=refusing)
    assert isinstance(down, stores.Unavailable)
    assert down.message() == (
        "the bridge's metrics at http://bridge/metrics is not available: "
        "[Errno 111] Connection refused"
    )

    def garbage(url: str, timeout: float) -> httpx.Response:
        return httpx.Response(200, text="{not prometheus", request=httpx.Request("GET", url))

    assert isinstance(
        stores.scrape(stores.BRIDGE, "http://x/metrics", get=garbage), stores.Unavailable
    )


@pytest.mark.parametrize("port", [0, 70_000])
def test_a_bad_port_is_refused_by_name(port: int) -> None:
    with pytest.raises(ValueError, match="port"):
        DashboardSettings(port=port)
