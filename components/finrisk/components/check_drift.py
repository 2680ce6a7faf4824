"""Check drift: whether this run should train at all (finrisk.monitoring.policy), so that a
scheduled run skips training when nothing changed."""

from typing import NamedTuple

from kfp import dsl

from finrisk.components.image import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def check_drift(
    force: bool = True,
    monitor_config: str = "{}",
    pipeline_run_id: str = "",
) -> NamedTuple("CheckOutputs", [("train", bool), ("reason", str)]):  # type: ignore[valid-type]  # KFP output syntax
    """Forced: train without reading anything. Otherwise apply the retraining policy to the
    monitoring tables (settings: MonitorSettings with `monitor_config`, JSON, laid over) and
    record the decision in the decisions table, as `finrisk monitor` does."""
    import json
    import os
    from collections import namedtuple
    from datetime import UTC, datetime

    CheckOutputs = namedtuple("CheckOutputs", ["train", "reason"])
    if force:
        print("forced: training without consulting the policy")
        return CheckOutputs(True, "forced")

    from finrisk.bigquery_client import endpoints_from_env
    from finrisk.monitoring import evaluation, tables
    from finrisk.retraining.data import bigquery_credentials
    from finrisk.settings import MonitorSettings, Settings

    base = Settings()
    settings = MonitorSettings.model_validate(
        {**base.monitor.model_dump(), **json.loads(monitor_config or "{}")}
    )
    endpoint, _ = endpoints_from_env(os.environ)
    if settings.bigquery_endpoint is None and endpoint:
        settings = settings.model_copy(update={"bigquery_endpoint": endpoint})
    where = evaluation.Tables.of(settings, base.bigquery.project)
    with bigquery_credentials():
        client = evaluation.client_for(settings, where)
        decision = evaluation.evaluate(
            client,
            where,
            settings,
            now=datetime.now(UTC),
            realized=evaluation.REALIZED_READER,
        )
        row = tables.decision_row(
            decision, model=settings.model, source="pipeline", run=pipeline_run_id or None
        )
        tables.write_decision(client, where.decisions, row)
    print(decision.to_json())
    return CheckOutputs(decision.retrain, "; ".join(decision.reasons))
