"""One evaluation of the retraining policy against the tables: what `finrisk monitor` and the
pipeline's check-drift step both run, so they decide alike.

Realized metrics come through `RealizedReader`, a function with the signature of
`finrisk.monitoring.realized.realized_metrics(client, dataset, *, since, until)`: the callers
pass it in (and tests pass rows of their own).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from finrisk.bigquery_client import bigquery_client
from finrisk.monitoring import policy, tables
from finrisk.monitoring.realized import realized_metrics
from finrisk.settings import MonitorSettings

RealizedReader = Callable[..., Sequence[policy.RealizedDay]]


@dataclass(frozen=True)
class Tables:
    project: str
    dataset: str
    monitoring: str
    decisions: str

    @classmethod
    def of(cls, settings: MonitorSettings, default_project: str) -> Tables:
        project = settings.bigquery_project or default_project
        return cls(
            project,
            settings.bigquery_dataset,
            tables.table_id(project, settings.bigquery_dataset, settings.monitoring_table),
            tables.table_id(project, settings.bigquery_dataset, settings.decisions_table),
        )


def client_for(settings: MonitorSettings, where: Tables) -> Any:
    return bigquery_client(where.project, settings.bigquery_endpoint)


def evaluate(
    client: Any,
    where: Tables,
    settings: MonitorSettings,
    *,
    now: datetime,
    realized: RealizedReader,
    baseline: policy.Baseline | None = None,
) -> policy.Decision:
    """Read the windows, the realized days and the last retrain; decide."""
    tables.ensure_decisions_table(client, where.decisions)
    windows = tables.read_windows(
        client,
        where.monitoring,
        model=settings.model,
        since=policy.windows_since(now, settings),
    )
    first_day: date = policy.days_since(now, settings)
    days = realized(client, f"{where.project}.{where.dataset}", since=first_day, until=now.date())
    last = tables.last_retrain(client, where.decisions, model=settings.model)
    return policy.decide(windows, days, last, settings, now=now, baseline=baseline)


# The reader `finrisk monitor` and the check-drift step use (tests pass their own).
REALIZED_READER: RealizedReader = realized_metrics
