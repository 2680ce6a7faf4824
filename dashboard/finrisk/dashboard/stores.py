"""What the dashboard reads, one function per question, none of which raises: each returns its
rows as a DataFrame (empty: nothing there yet) or an `Unavailable` naming the store, its address
and why, which the page shows as a banner.

Stores: the BigQuery warehouse (the bridge's anomaly sink; `finrisk labels load`'s
scored_transactions, model_monitoring and labels; `finrisk monitor`'s monitor_decisions), the
MLflow registry, and the bridge's and predictor's Prometheus endpoints.
"""

from __future__ import annotations

import concurrent.futures
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import pandas as pd
from google.api_core import exceptions as gexc
from google.api_core.retry import Retry
from prometheus_client.parser import text_string_to_metric_families

from finrisk.bigquery_client import bigquery_client
from finrisk.monitoring.warehouse import SCORED_ONCE, SCORED_TABLE
from finrisk.settings import DashboardSettings, Settings

log = logging.getLogger(__name__)

BIGQUERY = "BigQuery"
MLFLOW = "MLflow"
BRIDGE = "the bridge's metrics"
PREDICTOR = "the predictor's metrics"
MONITORING_TABLE = "model_monitoring"
DECISIONS_TABLE = "monitor_decisions"
QUERY_TIMEOUT_S = 30.0
_ONCE = Retry(predicate=lambda _exc: False)


@dataclass(frozen=True)
class Unavailable:
    """A store that did not answer: the page says which, where and why."""

    store: str
    address: str
    reason: str

    def message(self) -> str:
        return f"{self.store} at {self.address} is not available: {self.reason}"


Read = pd.DataFrame | Unavailable


class Warehouse:
    """The BigQuery tables; a table that does not exist yet reads as empty."""

    def __init__(self, settings: Settings) -> None:
        dash = settings.dashboard
        self.project = dash.bigquery_project or settings.bigquery.project
        self.dataset = dash.bigquery_dataset
        self.endpoint = dash.bigquery_endpoint or (
            None if dash.bigquery_project else settings.bigquery.endpoint
        )
        self.address = self.endpoint or "bigquery.googleapis.com"
        parts = dash.anomalies_table.split(".")
        self.anomalies = (
            dash.anomalies_table if len(parts) == 3 else self.table(dash.anomalies_table)
        )
        self._client: Any = None

    def table(self, name: str) -> str:
        return f"{self.project}.{self.dataset}.{name}"

    def client(self) -> Any:
        if self._client is None:
            self._client = bigquery_client(self.project, self.endpoint)
        return self._client

    def query(self, sql: str, params: Sequence[Any] = ()) -> Read:
        from google.cloud import bigquery

        config = bigquery.QueryJobConfig(query_parameters=list(params))
        try:
            # One try each: a page waiting on the client's retries (minutes) would look dead;
            # the next refresh is the retry.
            job = self.client().query(
                sql, job_config=config, retry=_ONCE, job_retry=None, timeout=QUERY_TIMEOUT_S
            )
            rows = job.result(retry=_ONCE, job_retry=None, timeout=QUERY_TIMEOUT_S)
            return pd.DataFrame([dict(row) for row in rows])
        except gexc.NotFound:
            return pd.DataFrame()  # not written yet: the page says "nothing yet"
        except (gexc.GoogleAPIError, concurrent.futures.TimeoutError, OSError) as exc:
            return Unavailable(BIGQUERY, self.address, _short(exc))
        except Exception as exc:  # the client's transport raises its own kinds (requests')
            log.warning("BigQuery query failed: %s", exc)
            return Unavailable(BIGQUERY, self.address, _short(exc))

    # ------------------------------------------------------------------ the stream

    def stream_totals(self) -> Read:
        """Transactions scored (each once), anomalies among them, customers, the time span."""
        return self.query(
            f"""
            SELECT COUNT(*) AS scored, COUNTIF(is_anomaly) AS anomalies,
                   COUNT(DISTINCT user_id) AS customers,
                   MIN(scored_at) AS first_scored, MAX(scored_at) AS last_scored
            FROM ({SCORED_ONCE.format(scored=self.table(SCORED_TABLE))})
            """
        )

    def per_second(self) -> Read:
        """Transactions scored and flagged per second of scoring time."""
        return self.query(
            f"""
            SELECT TIMESTAMP_TRUNC(scored_at, SECOND) AS second, COUNT(*) AS scored,
                   COUNTIF(is_anomaly) AS anomalies
            FROM ({SCORED_ONCE.format(scored=self.table(SCORED_TABLE))})
            GROUP BY second ORDER BY second
            """
        )

    def anomaly_totals(self) -> Read:
        return self.query(
            f"""
            SELECT COUNT(DISTINCT transaction_id) AS logged,
                   APPROX_QUANTILES(latency_ms, 100)[OFFSET(50)] AS latency_p50_ms,
                   APPROX_QUANTILES(latency_ms, 100)[OFFSET(99)] AS latency_p99_ms
            FROM `{self.anomalies}`
            """
        )

    def latest_anomalies(self, limit: int = 50) -> Read:
        return self.query(
            f"""
            SELECT scored_at, transaction_id, user_id, event_time, amount, direction, category,
                   merchant, channel, anomaly_score, threshold, risk_band, latency_ms
            FROM `{self.anomalies}`
            WHERE TRUE
            QUALIFY ROW_NUMBER() OVER (PARTITION BY transaction_id ORDER BY scored_at) = 1
            ORDER BY scored_at DESC, transaction_id LIMIT {int(limit)}
            """
        )

    # ------------------------------------------------------------------ customers

    def riskiest_customers(self, limit: int = 25) -> Read:
        """Each customer's latest answer, riskiest first."""
        return self.query(
            f"""
            SELECT user_id, event_time AS last_seen, risk_band, risk_probability
            FROM ({SCORED_ONCE.format(scored=self.table(SCORED_TABLE))})
            WHERE TRUE
            QUALIFY ROW_NUMBER() OVER (PARTITION BY user_id ORDER BY event_time DESC,
                                       transaction_id DESC) = 1
            ORDER BY risk_probability DESC, user_id LIMIT {int(limit)}
            """
        )

    def customer(self, user_id: str) -> Read:
        """The customer's scored transactions, oldest first (every column the table has)."""
        from google.cloud import bigquery

        return self.query(
            f"""
            SELECT * FROM ({SCORED_ONCE.format(scored=self.table(SCORED_TABLE))})
            WHERE user_id = @user ORDER BY event_time, transaction_id
            """,
            [bigquery.ScalarQueryParameter("user", "STRING", user_id)],
        )

    def customer_anomalies(self, user_id: str) -> Read:
        from google.cloud import bigquery

        return self.query(
            f"""
            SELECT transaction_id, amount, direction, category, merchant, reasons
            FROM `{self.anomalies}` WHERE user_id = @user
            """,
            [bigquery.ScalarQueryParameter("user", "STRING", user_id)],
        )

    # ------------------------------------------------------------------ monitoring

    def windows(self, limit: int = 2000) -> Read:
        return self.query(
            f"""
            SELECT window_end, model, model_version, role, transactions, max_feature_psi,
                   score_psi, category_psi, drift_level, alert_rate, reference_alert_rate,
                   feature_psi, dead_letter_rate, missing_rate
            FROM `{self.table(MONITORING_TABLE)}`
            ORDER BY window_end DESC LIMIT {int(limit)}
            """
        )

    def realized(self) -> Read:
        from finrisk.monitoring.realized import realized_metrics

        try:
            days = realized_metrics(self.client(), f"{self.project}.{self.dataset}")
        except Exception as exc:  # FinriskError names the failure; anything else too
            return Unavailable(BIGQUERY, self.address, _short(exc))
        return pd.DataFrame([day.as_dict() for day in days])

    def decisions(self, limit: int = 50) -> Read:
        return self.query(
            f"""
            SELECT decided_at, source, retrain, reasons, run, launch_error
            FROM `{self.table(DECISIONS_TABLE)}`
            ORDER BY decided_at DESC LIMIT {int(limit)}
            """
        )


# ---------------------------------------------------------------------- the registry


def model_versions(tracking_uri: str, names: Mapping[str, str]) -> Read:
    """Every version of each model: its aliases, gate decision and reason, recorded metrics."""
    from finrisk.registry import registry_client
    from finrisk.registry.names import METRIC_TAG_PREFIX

    rows = []
    try:
        client = registry_client(tracking_uri)
        for kind, name in names.items():
            aliases: dict[str, list[str]] = {}
            try:
                model = client.get_registered_model(name)
            except Exception as exc:
                if "RESOURCE_DOES_NOT_EXIST" in str(exc):
                    continue  # not registered yet
                raise
            for alias, version in (model.aliases or {}).items():
                aliases.setdefault(str(version), []).append(alias)
            for version in client.search_model_versions(f"name = '{name}'"):
                tags = version.tags or {}
                rows.append(
                    {
                        "model": kind,
                        "name": name,
                        "version": int(version.version),
                        "aliases": ", ".join(sorted(aliases.get(str(version.version), []))),
                        "registered": pd.Timestamp(version.creation_timestamp, unit="ms"),
                        "gate": tags.get("gate_decision", ""),
                        "gate_reason": tags.get("gate_reason", ""),
                        **{
                            k.removeprefix(METRIC_TAG_PREFIX): _number(v)
                            for k, v in tags.items()
                            if k.startswith(METRIC_TAG_PREFIX)
                        },
                    }
                )
    except Exception as exc:  # the server down, refusing, or answering nonsense
        return Unavailable(MLFLOW, tracking_uri, _short(exc))
    frame = pd.DataFrame(rows)
    return frame.sort_values(["model", "version"], ascending=[True, False]) if rows else frame


# ---------------------------------------------------------------------- Prometheus endpoints


def scrape(store: str, url: str, get: Callable[..., httpx.Response] = httpx.get) -> Read:
    """Every sample of a Prometheus endpoint: name, labels (a dict), value."""
    try:
        response = get(url, timeout=2.0)
        response.raise_for_status()
        samples = [
            {"name": s.name, "labels": dict(s.labels), "value": float(s.value)}
            for family in text_string_to_metric_families(response.text)
            for s in family.samples
        ]
    except (httpx.HTTPError, ValueError) as exc:
        return Unavailable(store, url, _short(exc))
    return pd.DataFrame(samples, columns=["name", "labels", "value"])


def bridge_metrics_url(settings: Settings) -> str:
    dash: DashboardSettings = settings.dashboard
    return dash.bridge_metrics_url or f"http://127.0.0.1:{settings.bridge.http_port}/metrics"


def predictor_url(settings: Settings) -> str:
    return settings.dashboard.predictor_url or settings.predictor.url


def _number(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:300]
