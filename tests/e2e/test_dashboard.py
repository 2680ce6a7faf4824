"""The dashboard `finrisk demo` leaves up, used as a person would in a real headless Chromium:
every page loads with no console error, a customer is clicked through, and the numbers shown
are the warehouse's, read here with SQL of the test's own. Screenshots go to
.finrisk/screenshots (the README shows copies)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from google.cloud import bigquery
from playwright.sync_api import expect

from finrisk.bigquery_client import bigquery_client
from tests.support.browser import browser
from tests.support.demo_run import DemoRun

pytestmark = pytest.mark.e2e


def _rows(run: DemoRun, sql: str, **params: str) -> list[dict[str, Any]]:
    bq = run.settings.bigquery
    client = bigquery_client(bq.project, bq.endpoint)
    config = bigquery.QueryJobConfig(
        query_parameters=[bigquery.ScalarQueryParameter(k, "STRING", v) for k, v in params.items()]
    )
    try:
        return [dict(r) for r in client.query(sql, job_config=config).result(timeout=60)]
    finally:
        client.close()


def test_every_page_shows_the_demo_run_without_a_console_error(demo_run: DemoRun) -> None:
    summary = demo_run.summary
    scored = f"{summary.warehouse_dataset}.scored_transactions"
    (warehouse,) = _rows(
        demo_run,
        f"SELECT COUNT(DISTINCT transaction_id) AS scored, "
        f"COUNT(DISTINCT IF(is_anomaly, transaction_id, NULL)) AS flagged, "
        f"COUNT(DISTINCT user_id) AS customers FROM `{scored}`",
    )
    # The warehouse holds what the demo scored and flagged, each once.
    assert warehouse["scored"] == summary.stream.scored
    assert warehouse["flagged"] == summary.stream.flagged
    assert warehouse["customers"] == summary.stream.users
    with browser() as b:
        b.open(summary.urls["dashboard"])
        b.expect_metric("Transactions scored", f"{warehouse['scored']:,}")
        b.expect_metric("Flagged as anomalous", f"{warehouse['flagged']:,}")
        b.expect_metric("Customers", f"{warehouse['customers']:,}")
        b.expect_metric("Anomalies logged", f"{summary.anomalies_logged:,}")
        b.shot("dashboard-live")

        b.go("Models")
        pipeline = summary.pipeline["champion"]
        b.expect_metric("Champion", f"v{pipeline['detector']}", f"v{pipeline['risk']}")
        b.wait_for_text("Gate decisions and reasons")
        b.shot("dashboard-models")

        b.go("Monitoring")
        b.wait_for_text("Worst feature PSI per window")
        b.wait_for_text("Realized quality")
        b.shot("dashboard-monitoring")

        b.go("Customers")
        b.wait_for_text("Riskiest customers now")
        assert not [a for a in b.alerts() if "not available" in a or "Nothing yet" in a]
    assert b.errors == []


def test_a_customer_clicked_through_shows_the_warehouses_numbers(demo_run: DemoRun) -> None:
    summary = demo_run.summary
    with browser() as b:
        b.open(summary.urls["dashboard"])
        b.wait_for_text("Customers behind them")
        link = b.page.get_by_test_id("stPageLink-NavLink").first
        user = link.inner_text().strip()
        scored = f"{summary.warehouse_dataset}.scored_transactions"
        rows = _rows(
            demo_run,
            f"SELECT transaction_id, event_time, is_anomaly, risk_band, risk_probability "
            f"FROM `{scored}` WHERE user_id = @user ORDER BY event_time, transaction_id",
            user=user,
        )
        flagged = sum(1 for r in rows if r["is_anomaly"])
        assert len(rows) > 0 and flagged > 0  # a customer behind an anomaly
        link.click()
        b.title("Customers")
        b.wait_for_text(f"Customer {user}")
        b.expect_metric("Transactions", f"{len(rows):,}")
        b.expect_metric("Flagged", f"{flagged:,}")
        b.expect_metric("Risk band now", rows[-1]["risk_band"])
        b.expect_metric("Risk probability now", f"{rows[-1]['risk_probability']:.3f}")
        b.wait_for_text("Recent transactions")
        b.page.get_by_test_id("stDataFrame").last.wait_for()
        b.shot("dashboard-customer")
    assert b.errors == []


def test_the_riskiest_customer_shows_the_recommendations_the_warehouse_holds(
    demo_run: DemoRun,
) -> None:
    """Reasons and recommendations come from the scored records (the demo's bridge asks the
    risk model for them); each recommendation's promise is checked against the model itself in
    tests/unit/test_models_recommendations.py and test_predictor_recommendations.py."""
    summary = demo_run.summary
    scored = f"{summary.warehouse_dataset}.scored_transactions"
    with browser() as b:
        b.open(summary.urls["dashboard"])
        b.go("Customers")
        b.wait_for_text("Riskiest customers now")
        link = b.page.get_by_test_id("stPageLink-NavLink").first
        user = link.inner_text().strip()
        link.click()
        b.wait_for_text(f"Customer {user}")
        rows = _rows(
            demo_run,
            f"SELECT risk_band, reasons, recommendations FROM `{scored}` WHERE user_id = @user "
            "ORDER BY event_time DESC, transaction_id DESC",
            user=user,
        )
        assert rows[0]["risk_band"] in ("MEDIUM", "HIGH")  # the riskiest is elevated
        b.expect_metric("Risk band now", rows[0]["risk_band"])
        advice = json.loads(rows[0]["recommendations"])  # about the band now
        reasons = json.loads(rows[0]["reasons"])
        assert advice and reasons  # the seeded run's riskiest customer has both
        b.wait_for_text("What would bring the band down")
        shown = b.page.get_by_test_id("stMarkdown").filter(has_text="→ probability")
        expect(shown).to_have_count(len(advice))
        for i, item in enumerate(advice):
            expect(shown.nth(i)).to_contain_text(
                f"→ probability {item['probability']:.3f} ({item['band']})"
            )
        b.wait_for_text("Why (the risk model's top reasons)")
        for reason in reasons:  # cells of a canvas grid: in the page, not "visible" text
            cell = b.page.locator('[role="gridcell"]', has_text=reason["feature"])
            cell.first.wait_for(state="attached")
        b.shot("dashboard-recommendations")
    assert b.errors == []
