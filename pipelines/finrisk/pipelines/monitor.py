"""`finrisk monitor`: apply the retraining policy to the monitoring tables and, when it says
retrain, start the retraining pipeline (kfp.Client on a cluster given --host, kfp.local here).

    finrisk monitor --once --local [-p name=value ...]
    finrisk monitor --host https://kfp.example.com [--interval-minutes 60]

Each decision is one JSON line on stdout and one row of the decisions table, with the run it
started (or why it could not). The run is started with `force_training=true`: the monitor has
decided already, and the run's own check would otherwise see this very decision as a cooldown.

Then the live gate (finrisk.retraining.live_promotion): a challenger pair the pipeline's gate
shadowed is promoted once it beats the champion on the labelled shadowed traffic; each judgement
is a line and a row too (source `live-gate`).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from finrisk.cli.settings_flags import add_flags, given, overlaid
from finrisk.errors import FinriskError
from finrisk.settings import MonitorSettings, Settings

if TYPE_CHECKING:  # the BigQuery client loads when a decision is made, not with the parser
    from finrisk.monitoring.evaluation import RealizedReader, Tables
    from finrisk.monitoring.policy import Decision
    from finrisk.outcomes import Outcomes

# Starts the pipeline with these arguments; returns what it started (a run id, an output path).
Launcher = Callable[[Mapping[str, Any]], str]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from finrisk.pipelines.cli import cluster_flags, param_flag

    text = "decide from drift and realized metrics whether to retrain, and start the pipeline"
    parser = subparsers.add_parser("monitor", help=text, description=text)
    parser.add_argument("--once", action="store_true", help="one evaluation, then exit")
    parser.add_argument("--local", action="store_true", help="start retraining with kfp.local here")
    parser.add_argument(
        "--pipeline-root",
        type=Path,
        default=Path("local_outputs"),
        help="local runs: where task outputs go (default ./local_outputs)",
    )
    parser.add_argument(
        "--tracking-uri",
        help="MLflow tracking URI of local runs and the live gate (default MLFLOW_TRACKING_URI, "
        "else the stack's)",
    )
    cluster_flags(parser)
    param_flag(parser)
    add_flags(
        parser,
        MonitorSettings,
        title="settings (each also FINRISK_MONITOR__<NAME> or monitor: in the FINRISK_CONFIG "
        "file; '' stands for none)",
    )
    parser.set_defaults(handler=_monitor)


def monitor_settings(args: argparse.Namespace) -> Settings:
    settings = Settings()
    monitor = overlaid(settings.monitor, given(args, MonitorSettings))
    if monitor.bigquery_endpoint is None and monitor.bigquery_project is None:
        # Nothing says where: the local stack's emulator, as the bridge's sink does locally.
        monitor = monitor.model_copy(update={"bigquery_endpoint": settings.bigquery.endpoint})
    return settings.model_copy(update={"monitor": monitor})


def local_launcher(pipeline_root: Path, tracking_uri: str) -> Launcher:
    def launch(arguments: Mapping[str, Any]) -> str:
        from finrisk.pipelines.local import run_local

        result = run_local(arguments, pipeline_root=pipeline_root, tracking_uri=tracking_uri)
        return f"local {result.pipeline_root} (gate: {result.gate_reason})"

    return launch


def cluster_launcher(args: argparse.Namespace) -> Launcher:
    def launch(arguments: Mapping[str, Any]) -> str:
        from finrisk.pipelines import cluster
        from finrisk.pipelines.cli import client_for, kfp_prints_to_stderr, set_image

        set_image(args)
        name = f"finrisk-retraining-monitor-{datetime.now(UTC):%Y%m%d-%H%M%S}"
        with kfp_prints_to_stderr():
            client = client_for(args)
            uploaded = cluster.upload_current(client, args.package)
            run_id = cluster.run(
                client,
                uploaded,
                experiment=args.experiment,
                run_name=name,
                params=arguments,
                namespace=args.namespace,
                service_account=args.service_account,
            )
        return f"kfp run {run_id} ({name}, version {uploaded.version_name})"

    return launch


def run_once(
    settings: Settings,
    launcher: Launcher,
    params: Mapping[str, Any],
    *,
    realized: RealizedReader,
    now: datetime | None = None,
    client: Any = None,
    tracking_uri: str | None = None,
) -> dict[str, Any]:
    """Decide, start the pipeline if so, record the decision; returns the recorded row. Then
    the live gate, when on, against MLflow at `tracking_uri` (none: MLFLOW_TRACKING_URI, else
    the local stack's)."""
    from finrisk.monitoring import evaluation, tables

    monitor = settings.monitor
    where = evaluation.Tables.of(monitor, settings.bigquery.project)
    client = client or evaluation.client_for(monitor, where)
    decision = evaluation.evaluate(
        client, where, monitor, now=now or datetime.now(UTC), realized=realized
    )
    run = error = None
    if decision.retrain:
        try:
            run = launcher({**params, "force_training": True})
        except FinriskError as exc:
            error = str(exc)
    row = tables.decision_row(
        decision, model=monitor.model, source="monitor", run=run, launch_error=error
    )
    _record(client, where, row, decision)
    if monitor.live_gate:
        _live_gate(settings, client, where, now=decision.decided_at, tracking_uri=tracking_uri)
    return row


def _record(client: Any, where: Tables, row: dict[str, Any], decision: Decision) -> None:
    from finrisk.monitoring import tables

    tables.write_decision(client, where.decisions, row)
    print(
        json.dumps({**row, "reasons": decision.reasons, "signals": decision.signals}, default=str),
        flush=True,
    )


def _live_gate(
    settings: Settings, client: Any, where: Tables, *, now: datetime, tracking_uri: str | None
) -> None:
    """Judge the shadowed challenger, if any; record a judgement (nothing shadowed: nothing)."""
    from finrisk.monitoring import policy, tables
    from finrisk.monitoring.realized import shadowed_outcomes
    from finrisk.retraining.live_promotion import cluster_rollout, judge_shadowed

    monitor = settings.monitor
    dataset = f"{where.project}.{where.dataset}"

    def read(champion: str, challenger: str) -> tuple[Outcomes, Outcomes]:
        return shadowed_outcomes(
            client, dataset, champion_version=champion, challenger_version=challenger
        )

    error = None
    try:
        judgement = judge_shadowed(
            monitor, read, tracking_uri=tracking_uri, rollout=cluster_rollout(monitor)
        )
    except FinriskError as exc:  # MLflow or the tables unreachable: said, and tried next time
        reasons, signals, error = [f"live gate not judged: {exc}"], {}, str(exc)
    else:
        if judgement.decision is None:
            print(json.dumps({"source": "live-gate", "reason": judgement.reason}), flush=True)
            return
        reasons, signals = [judgement.reason], judgement.signals()
    decision = policy.Decision(False, reasons, now, signals)
    row = tables.decision_row(
        decision, model=monitor.model, source="live-gate", run=None, launch_error=error
    )
    _record(client, where, row, decision)


def _monitor(args: argparse.Namespace) -> int:
    from finrisk.monitoring import evaluation
    from finrisk.pipelines.cli import parse_params

    settings = monitor_settings(args)
    params = parse_params(args.param)
    if args.local:
        from finrisk.retraining.registration import tracking_uri

        launcher = local_launcher(args.pipeline_root, args.tracking_uri or tracking_uri())
    else:
        launcher = cluster_launcher(args)
    reader = evaluation.REALIZED_READER
    if args.once:
        row = run_once(settings, launcher, params, realized=reader, tracking_uri=args.tracking_uri)
        return 1 if row["launch_error"] else 0
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.is_set():
        try:
            run_once(settings, launcher, params, realized=reader, tracking_uri=args.tracking_uri)
        except Exception as exc:  # a store unreachable now may answer next time: keep watching
            print(f"finrisk monitor: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        stop.wait(settings.monitor.interval_minutes * 60)
    return 0
