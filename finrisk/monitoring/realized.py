"""Realized metrics: how the models' live verdicts held up against confirmed labels.

Per role (`champion`: the scored record's detector_version and is_anomaly; `challenger`: its
challenger_version and challenger_is_anomaly, when a shadow challenger was scored), model
version and day of the transaction (UTC), over the `scored_transactions` and `labels` tables
(finrisk.monitoring.warehouse), each transaction counted once whatever was replayed:

- scored: transactions the version scored;
- labelled: those with at least one label; confirmed_fraud: those whose labels say fraud;
- alerted: those it flagged; true_alerts: flagged and confirmed fraud;
- recall and alert_precision as finrisk.outcomes defines them (an alert without a fraud label
  counts as false, so a recent day's precision rises as its labels arrive);
- median_label_delay_days: median of (first label's labelled_at − event_time) over the
  labelled transactions: how long the day's numbers take to settle.

Both ratios are None when their denominator is 0.
"""

from __future__ import annotations

import concurrent.futures
import logging
from dataclasses import asdict, dataclass
from datetime import date
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import bigquery

from finrisk.errors import FinriskError
from finrisk.kinds import CHALLENGER, CHAMPION
from finrisk.monitoring.warehouse import (
    LABELS_BY_TRANSACTION,
    LABELS_TABLE,
    SCORED_ONCE,
    SCORED_TABLE,
    Tables,
)
from finrisk.outcomes import Outcomes

log = logging.getLogger(__name__)


_QUERY = f"""
WITH labels AS ({LABELS_BY_TRANSACTION}),
scored AS ({SCORED_ONCE}),
verdicts AS (
  SELECT '{CHAMPION}' AS role, detector_version AS model_version, transaction_id, event_time,
         is_anomaly AS alerted
  FROM scored
  UNION ALL
  SELECT '{CHALLENGER}', challenger_version, transaction_id, event_time,
         COALESCE(challenger_is_anomaly, FALSE)
  FROM scored
  WHERE challenger_version IS NOT NULL
),
joined AS (
  SELECT v.role, v.model_version, DATE(v.event_time) AS day, v.alerted,
         l.transaction_id IS NOT NULL AS labelled,
         COALESCE(l.is_fraud, FALSE) AS fraud,
         TIMESTAMP_DIFF(l.labelled_at, v.event_time, MICROSECOND) / 86400000000.0 AS delay_days
  FROM verdicts AS v LEFT JOIN labels AS l ON l.transaction_id = v.transaction_id
  WHERE (@since IS NULL OR DATE(v.event_time) >= @since)
    AND (@until IS NULL OR DATE(v.event_time) <= @until)
),
with_median AS (
  SELECT *,
         PERCENTILE_CONT(delay_days, 0.5) OVER (PARTITION BY role, model_version, day)
           AS median_delay
  FROM joined
)
SELECT role, model_version, day,
       COUNT(*) AS scored,
       COUNTIF(labelled) AS labelled,
       COUNTIF(fraud) AS confirmed_fraud,
       COUNTIF(alerted) AS alerted,
       COUNTIF(alerted AND fraud) AS true_alerts,
       MAX(median_delay) AS median_label_delay_days
FROM with_median
GROUP BY role, model_version, day
ORDER BY day, role, model_version
"""


# Champion and shadow challenger on the very transactions the challenger shadowed: one row.
_SHADOWED_QUERY = f"""
WITH labels AS ({LABELS_BY_TRANSACTION}),
scored AS ({SCORED_ONCE}),
paired AS (
  SELECT s.is_anomaly AS champion_alert,
         COALESCE(s.challenger_is_anomaly, FALSE) AS challenger_alert,
         l.transaction_id IS NOT NULL AS labelled,
         COALESCE(l.is_fraud, FALSE) AS fraud
  FROM scored AS s LEFT JOIN labels AS l ON l.transaction_id = s.transaction_id
  WHERE s.detector_version = @champion AND s.challenger_version = @challenger
)
SELECT COUNT(*) AS scored,
       COUNTIF(labelled) AS labelled,
       COUNTIF(fraud) AS confirmed_fraud,
       COUNTIF(champion_alert) AS champion_alerted,
       COUNTIF(champion_alert AND fraud) AS champion_true_alerts,
       COUNTIF(challenger_alert) AS challenger_alerted,
       COUNTIF(challenger_alert AND fraud) AS challenger_true_alerts
FROM paired
"""


@dataclass(frozen=True)
class RealizedDay:
    role: str
    model_version: str
    day: date
    scored: int
    labelled: int
    confirmed_fraud: int
    alerted: int
    true_alerts: int
    recall: float | None
    alert_precision: float | None
    median_label_delay_days: float | None

    @classmethod
    def from_counts(
        cls,
        role: str,
        model_version: str,
        day: date,
        *,
        scored: int,
        labelled: int,
        confirmed_fraud: int,
        alerted: int,
        true_alerts: int,
        median_label_delay_days: float | None,
    ) -> RealizedDay:
        """The day with its ratios, from its counts."""
        outcomes = Outcomes(scored, labelled, confirmed_fraud, alerted, true_alerts)
        return cls(
            role=role,
            model_version=model_version,
            day=day,
            scored=scored,
            labelled=labelled,
            confirmed_fraud=confirmed_fraud,
            alerted=alerted,
            true_alerts=true_alerts,
            recall=outcomes.recall,
            alert_precision=outcomes.alert_precision,
            median_label_delay_days=median_label_delay_days,
        )

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["day"] = self.day.isoformat()
        return out


def realized_metrics(
    client: bigquery.Client,
    dataset: str,
    *,
    since: date | None = None,
    until: date | None = None,
    labels_table: str = LABELS_TABLE,
    scored_table: str = SCORED_TABLE,
    timeout_s: float = 120.0,
) -> list[RealizedDay]:
    """Realized metrics per role, model version and transaction day in [since, until] (both
    inclusive, either open), from the tables in `dataset` ("project.dataset", or a dataset of
    the client's project); by day, then role and version; none while the tables do not
    exist yet (nothing loaded)."""
    tables = _tables(client, dataset, labels_table, scored_table)
    rows = _rows(
        client,
        tables,
        _QUERY,
        [
            bigquery.ScalarQueryParameter("since", "DATE", since),
            bigquery.ScalarQueryParameter("until", "DATE", until),
        ],
        "realized metrics",
        timeout_s,
    )
    return [
        RealizedDay.from_counts(
            row["role"],
            row["model_version"],
            row["day"],
            scored=int(row["scored"]),
            labelled=int(row["labelled"]),
            confirmed_fraud=int(row["confirmed_fraud"]),
            alerted=int(row["alerted"]),
            true_alerts=int(row["true_alerts"]),
            median_label_delay_days=_float(row["median_label_delay_days"]),
        )
        for row in rows
    ]


def shadowed_outcomes(
    client: bigquery.Client,
    dataset: str,
    *,
    champion_version: str,
    challenger_version: str,
    labels_table: str = LABELS_TABLE,
    scored_table: str = SCORED_TABLE,
    timeout_s: float = 120.0,
) -> tuple[Outcomes, Outcomes]:
    """(champion, challenger) detector outcomes on the transactions that `challenger_version`
    shadowed while `champion_version` scored them: the same transactions and the same labels,
    so the two compare like for like (all zero while nothing is loaded yet)."""
    tables = _tables(client, dataset, labels_table, scored_table)
    found = _rows(
        client,
        tables,
        _SHADOWED_QUERY,
        [
            bigquery.ScalarQueryParameter("champion", "STRING", champion_version),
            bigquery.ScalarQueryParameter("challenger", "STRING", challenger_version),
        ],
        "shadowed outcomes",
        timeout_s,
    )
    row: Any = found[0] if found else {}

    def outcomes(role: str) -> Outcomes:
        return Outcomes(
            scored=int(row.get("scored") or 0),
            labelled=int(row.get("labelled") or 0),
            confirmed_fraud=int(row.get("confirmed_fraud") or 0),
            alerted=int(row.get(f"{role}_alerted") or 0),
            true_alerts=int(row.get(f"{role}_true_alerts") or 0),
        )

    return outcomes(CHAMPION), outcomes(CHALLENGER)


def _rows(
    client: bigquery.Client,
    tables: Tables,
    query: str,
    params: list[bigquery.ScalarQueryParameter],
    what: str,
    timeout_s: float,
) -> list[Any]:
    """The query's rows over the two tables; none while they do not exist yet (nothing loaded:
    `finrisk labels load` creates them), which callers read as "too few labels", not a
    failure; any other error is a FinriskError saying what was asked of which dataset."""
    config = bigquery.QueryJobConfig(query_parameters=params)
    try:
        sql = query.format(labels=tables.labels_id, scored=tables.scored_id)
        return list(client.query(sql, job_config=config).result(timeout=timeout_s))
    except gexc.NotFound as exc:
        log.info("no %s over %s.%s yet: %s", what, tables.project, tables.dataset, exc)
        return []
    except (gexc.GoogleAPIError, concurrent.futures.TimeoutError, OSError) as exc:
        raise FinriskError(f"{what} over {tables.project}.{tables.dataset}: {exc}") from None


def _tables(client: bigquery.Client, dataset: str, labels: str, scored: str) -> Tables:
    parts = dataset.split(".")
    if len(parts) == 1 and parts[0]:
        return Tables(client.project, parts[0], labels, scored)
    if len(parts) == 2 and all(parts):
        return Tables(parts[0], parts[1], labels, scored)
    raise FinriskError(f"dataset {dataset!r} must be 'dataset' or 'project.dataset'")


def _float(value: object) -> float | None:
    return None if value is None else float(value)  # type: ignore[arg-type]
