"""`finrisk demo --drift`: the closed loop, caught in the act, on this machine.

1. The local pipeline trains and registers the champions; the predictor serves them.
2. New customers stream through Kafka and the bridge, drawn from the generator's drift scenario
   (finrisk.synthetic: from the shift day, a fraud pattern the champion never saw and a
   spending shift for a share of users), up to "now", the retraining moment: the bridge's
   monitoring windows see the shift.
3. The labels that have come in by now (finrisk.synthetic.labels: confirmed frauds a few days
   after, chargebacks weeks after) go to the labels topic; the warehouse loader takes the
   labels, the scored records and the monitoring windows into BigQuery, next to the bank's
   transaction history.
4. `finrisk monitor` (the same `run_once`) applies the retraining policy to those tables and,
   as it decides, starts the retraining pipeline (kfp.local) on the history with the confirmed
   labels; the gate promotes the new detector if it wins, and the predictor loads it.
5. The rest of the stream is scored by the new champion.

The summary: how many transactions after the shift the drift was caught, each decision with
its reasons, and the detector's recall on the old and the new pattern before and after,
computed from the generator's ground truth. Everything the run makes has names of its own (a
BigQuery dataset, topics, groups), so it can run again; the stack stays up.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, TextIO

import httpx
import pandas as pd

from finrisk.demo.drift_summary import DriftSummary, detection, recall
from finrisk.demo.options import DriftOptions
from finrisk.demo.steps import naming_log, output_to, read_json_until, read_scored, step
from finrisk.deploy import cluster
from finrisk.errors import FinriskError
from finrisk.kinds import CHAMPION, DEFAULT_MODEL_NAMES, DETECTOR, RISK
from finrisk.schema import FRAUD_TYPE, IS_FRAUD, IS_RISKY, TIMESTAMP, TRANSACTION_ID, USER_ID
from finrisk.settings import LabelsSettings, MonitorSettings, Settings
from finrisk.stack import Stack
from finrisk.stack.process import free_port

# The bank's history tables the retraining reads (BigQuery types of the canonical columns).
HISTORY_COLUMNS = {
    "transaction_id": "STRING",
    "user_id": "STRING",
    "timestamp": "TIMESTAMP",
    "amount": "FLOAT",
    "direction": "STRING",
    "category": "STRING",
    "merchant": "STRING",
    "channel": "STRING",
    "balance_after": "FLOAT",
    "is_fraud": "INTEGER",
    "fraud_type": "STRING",
}


def run_drift_demo(
    options: DriftOptions, settings: Settings | None = None, out: TextIO = sys.stderr
) -> DriftSummary:
    from finrisk import registry
    from finrisk.bench.local_processes import (
        BridgeProcess,
        PredictorProcess,
        RegisteredModels,
        bridge_environment,
    )
    from finrisk.bigquery_client import bigquery_client
    from finrisk.monitoring.realized import realized_metrics
    from finrisk.pipelines.local import run_local
    from finrisk.pipelines.monitor import local_launcher, run_once
    from finrisk.serving.bridge.producer import produce, wire_records
    from finrisk.serving.labels.loader import load
    from finrisk.synthetic import generate
    from finrisk.synthetic.labels import synthetic_labels

    began = time.monotonic()
    settings = settings or Settings()
    stack = Stack(settings)
    run_id = time.strftime("%Y%m%d%H%M%S") + "-" + uuid.uuid4().hex[:6]
    work = settings.home / "demo" / f"drift-{run_id}"
    work.mkdir(parents=True, exist_ok=True)
    bq = settings.bigquery
    dataset = f"finrisk_drift_{run_id.replace('-', '_')}"
    kafka = {"bootstrap.servers": settings.kafka.bootstrap_servers}
    # Models of the run's own: the loop starts from a champion this run trained (and profiled),
    # whatever an earlier demo left in the registry.
    detector_name = f"finrisk-drift-{run_id}-{DEFAULT_MODEL_NAMES[DETECTOR]}"
    risk_name = f"finrisk-drift-{run_id}-{DEFAULT_MODEL_NAMES[RISK]}"
    models = RegisteredModels(detector_name, risk_name, {})

    with step("local stack: Kafka, MLflow, BigQuery emulator", out):
        stack.up()

    with step(
        f"champions: retraining pipeline (kfp.local) on {options.train_users} users x "
        f"{options.train_days} days",
        out,
    ):
        log = work / "pipeline-champion.log"
        with output_to(log, out), naming_log(log):
            first = run_local(
                {
                    "synthetic_users": options.train_users,
                    "synthetic_days": options.train_days,
                    "seed": options.seed,
                    "detector_model_name": detector_name,
                    "risk_model_name": risk_name,
                },
                pipeline_root=work / "pipeline-champion",
                tracking_uri=settings.mlflow.tracking_uri,
            )
        before = first.champion.get("detector")
        if not before or not first.champion.get("risk"):
            raise FinriskError(f"the pipeline left no champion: {first.gate_reason}")

    predictor = PredictorProcess(models, settings.mlflow.tracking_uri, work / "predictor.log")
    try:
        with step(f"predictor serving the champions at {predictor.url}", out):
            predictor.start()

        # The retraining moment is "now": the stream's days before it happened, those after it are
        # still to come (their event times ahead of the clock: the bridge does not mind).
        now = pd.Timestamp.now(tz="UTC").floor("D")
        retrain_day = options.drift_day + options.days_drifted
        start = now - pd.Timedelta(days=retrain_day)
        shift = start + pd.Timedelta(days=options.drift_day)
        transactions, users, _ = generate(
            options.stream_users,
            retrain_day + options.days_after,
            options.seed + 1,
            start,
            scenario="drift",
            drift_day=options.drift_day,
        )
        prefix = f"{run_id}-"
        frauds = transactions[transactions[IS_FRAUD] == 1]
        truth = dict(zip(prefix + frauds[TRANSACTION_ID], frauds[FRAUD_TYPE], strict=True))
        old_types = set(frauds.loc[frauds[TIMESTAMP] < shift, FRAUD_TYPE])
        new_types = set(frauds.loc[frauds[TIMESTAMP] >= shift, FRAUD_TYPE]) - old_types
        before_now = (transactions[TIMESTAMP] < now).to_numpy()
        records = wire_records(transactions, id_prefix=prefix)
        phase_a = [r for r, keep in zip(records, before_now, strict=True) if keep]
        phase_b = [r for r, keep in zip(records, before_now, strict=True) if not keep]
        ids_a = {prefix + t for t in transactions.loc[before_now, TRANSACTION_ID]}
        ids_b = {prefix + t for t in transactions.loc[~before_now, TRANSACTION_ID]}

        topic = f"finrisk.demo.{run_id}.transactions"
        name = f"finrisk-demo-drift-{run_id}"
        env = bridge_environment(
            settings.kafka.bootstrap_servers,
            predictor.url,
            models,
            topic,
            name,
            sink="bigquery",
            bigquery_endpoint=bq.endpoint,
            bigquery_project=bq.project,
            bigquery_dataset=dataset,
            bigquery_table="anomalies",
            monitoring_window_transactions=options.window,
            # Batches no larger than half a window: windows close near their size.
            batch_max_messages=max(options.window // 2, 1),
            # The backlog's last window closes soon after it is scored.
            monitoring_window_s=2.0,
            http_port=free_port(),
        )
        monitoring_topic = f"{name}.monitoring"
        decisions: list[dict[str, Any]] = []
        after: str | None = None
        with BridgeProcess(env, work / "bridge.log") as bridge:
            with step(
                f"stream until now: {len(phase_a):,} transactions of {options.stream_users} new "
                f"customers, the shift {options.days_drifted} days ago",
                out,
            ):
                bridge.start()
                # A live stream, not a backlog: partitions advance together, so the windows
                # follow event time (a backlog is read a partition's chunk at a time).
                produce(kafka, topic, phase_a, rate=options.rate)
                scored_a = read_scored(
                    settings.kafka.bootstrap_servers,
                    f"{name}.scored",
                    ids_a,
                    options.scored_timeout_s,
                    options.progress,
                    bridge.alive,
                )
                windows = _windows_until(
                    settings.kafka.bootstrap_servers, monitoring_topic, detector_name, len(ids_a)
                )

            with step(
                "labels come in; the loader takes labels, scores and windows to BigQuery", out
            ):
                due = [
                    dataclasses.replace(label, transaction_id=prefix + label.transaction_id)
                    for label in synthetic_labels(transactions, options.seed + 1)
                    if label.labelled_at <= now.to_pydatetime()
                ]
                labels_topic = f"finrisk.demo.{run_id}.labels"
                produce(kafka, labels_topic, [(label.key, label.to_json()) for label in due])
                loader = settings.model_copy(
                    update={
                        "labels": LabelsSettings(
                            labels_topic=labels_topic,
                            scored_topic=f"{name}.scored",
                            monitoring_topic=monitoring_topic,
                            dlq_topic=f"finrisk.demo.{run_id}.labels.dlq",
                            group_id=f"{name}-loader",
                            bigquery_project=bq.project,
                            bigquery_dataset=dataset,
                            bigquery_endpoint=bq.endpoint,
                            # Fewer, larger requests: the emulator's cost is per request.
                            batch_max_records=5_000,
                        )
                    }
                )
                loaded = load(loader, once=True)
                client = bigquery_client(bq.project, bq.endpoint)
                history = transactions.loc[before_now].assign(
                    **{TRANSACTION_ID: prefix + transactions.loc[before_now, TRANSACTION_ID]}
                )
                _write_table(client, f"{bq.project}.{dataset}.transactions", history)
                _write_table(
                    client,
                    f"{bq.project}.{dataset}.users",
                    users[[USER_ID, IS_RISKY]],
                    {USER_ID: "STRING", IS_RISKY: "INTEGER"},
                )

            with step("finrisk monitor: the policy on the tables; retraining if it says so", out):
                monitor = MonitorSettings(
                    model=detector_name,
                    bigquery_project=bq.project,
                    bigquery_dataset=dataset,
                    bigquery_endpoint=bq.endpoint,
                    sustained_windows=options.sustained_windows,
                    recent_days=options.recent_days,
                    min_labels=options.min_labels,
                    min_frauds=options.min_frauds,
                    min_alerts=options.min_frauds,
                    cooldown_hours=0,
                )
                params = {
                    "data_source": "bigquery",
                    "bigquery_table": f"{bq.project}.{dataset}.transactions",
                    "bigquery_users_table": f"{bq.project}.{dataset}.users",
                    "bigquery_labels_table": f"{bq.project}.{dataset}.labels",
                    "label_maturity_days": options.label_maturity_days,
                    "seed": options.seed,
                    # The risk model's test set is a few hundred of these customers: its
                    # ROC-AUC moves by ~0.03 between samples, and the pair is promoted together.
                    "min_improvement": options.min_improvement,
                    "detector_model_name": detector_name,
                    "risk_model_name": risk_name,
                }
                log = work / "pipeline-retraining.log"
                launch = local_launcher(work / "pipeline-retraining", settings.mlflow.tracking_uri)
                with (
                    _environment({cluster.BIGQUERY_ENDPOINT_KEY: bq.endpoint}),
                    output_to(log, out),
                    naming_log(log),
                ):
                    row = run_once(
                        settings.model_copy(update={"monitor": monitor}),
                        launch,
                        params,
                        realized=realized_metrics,
                        client=client,
                    )
                decisions.append(_decision(row))
                if row["launch_error"]:
                    raise FinriskError(f"the retraining did not run: {row['launch_error']}")
                found = registry.get_version(
                    detector_name, CHAMPION, tracking_uri=settings.mlflow.tracking_uri
                )
                if found is not None and str(found.version) != str(before):
                    after = str(found.version)
                    for model in (detector_name, risk_name):
                        httpx.post(
                            f"{predictor.url}/v2/repository/models/{model}/load", timeout=120
                        ).raise_for_status()

            with step(
                f"stream the next {options.days_after} days: {len(phase_b):,} transactions", out
            ):
                produce(kafka, topic, phase_b, rate=options.rate)
                scored_b = read_scored(
                    settings.kafka.bootstrap_servers,
                    f"{name}.scored",
                    ids_a | ids_b,
                    options.scored_timeout_s,
                    options.progress,
                    bridge.alive,
                )
                code = bridge.terminate()
                if code != 0:
                    raise FinriskError(f"the bridge exited with {code}; log {work / 'bridge.log'}")
        client.close()
    finally:
        predictor.stop()

    by_id_b = [r for r in scored_b if r["transaction_id"] in ids_b]
    shifted = shift.to_pydatetime()
    before_shift = [r for r in scored_a if datetime.fromisoformat(r["event_time"]) < shifted]
    drifted = [r for r in scored_a if datetime.fromisoformat(r["event_time"]) >= shifted]
    return DriftSummary(
        run_id=run_id,
        scored_topic=f"{name}.scored",
        detector_model=detector_name,
        shift_at=shift.isoformat(),
        retrain_at=now.isoformat(),
        new_fraud_types=sorted(new_types),
        detection=detection(windows, detector_name, shifted, monitor),
        decisions=decisions,
        champion_before=str(before),
        champion_after=after,
        recall_old_before_shift=recall(before_shift, truth, old_types),
        recall_new_before_retraining=recall(drifted, truth, new_types),
        recall_new_after_retraining=recall(by_id_b, truth, new_types),
        recall_old_after_retraining=recall(by_id_b, truth, old_types),
        transactions={
            "before now": len(phase_a),
            "after": len(phase_b),
            "labels in": len(due),
            "loaded": loaded.records,
        },
        seconds=time.monotonic() - began,
        tables={"BigQuery": f"{bq.project}.{dataset} (emulator {bq.endpoint})"},
    )


def _decision(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "retrain": bool(row["retrain"]),
        "reasons": json.loads(row["reasons"]),
        "run": row.get("run"),
        "decided_at": str(row["decided_at"]),
    }


def _windows_until(
    bootstrap: str, topic: str, detector: str, transactions: int, timeout_s: float = 60.0
) -> list[dict[str, Any]]:
    """The monitoring records, once the detector's champion windows count `transactions`
    (the last one closes when the stream has been quiet for its monitoring_window_s)."""

    def counted(records: list[dict[str, Any]]) -> bool:
        mine = (r for r in records if r["model"] == detector and r["role"] == CHAMPION)
        return sum(int(r["transactions"]) for r in mine) >= transactions

    return read_json_until(bootstrap, topic, counted, timeout_s)


def _write_table(
    client: Any, table_id: str, frame: pd.DataFrame, columns: dict[str, str] | None = None
) -> None:
    """A table of the frame's rows (streaming inserts in chunks: the emulator's way in)."""
    from google.cloud import bigquery

    columns = columns or HISTORY_COLUMNS
    schema = [bigquery.SchemaField(name, kind) for name, kind in columns.items()]
    table = client.create_table(bigquery.Table(table_id, schema=schema), exists_ok=True)
    rows = frame[list(columns)].copy()
    for name, kind in columns.items():
        if kind == "TIMESTAMP":
            rows[name] = rows[name].dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    records = rows.to_dict(orient="records")
    for begin in range(0, len(records), 5_000):
        errors = client.insert_rows_json(table, records[begin : begin + 5_000], timeout=60)
        if errors:
            raise FinriskError(f"{table_id} refused rows: {errors[:3]}")


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """The pipeline's tasks read BigQuery's endpoint from the environment (kfp.local runs them
    as subprocesses of this one)."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
