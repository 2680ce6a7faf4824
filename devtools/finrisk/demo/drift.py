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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TextIO

import httpx
import numpy as np
import numpy.typing as npt
import pandas as pd

from finrisk.demo.drift_summary import DriftSummary, detection, recall
from finrisk.demo.options import DriftOptions
from finrisk.demo.steps import naming_log, output_to, read_json_until, read_scored, step
from finrisk.demo.warehouse import write_table
from finrisk.deploy import cluster
from finrisk.errors import FinriskError
from finrisk.kinds import CHAMPION, DEFAULT_MODEL_NAMES, DETECTOR, RISK
from finrisk.labels import LabelRecord
from finrisk.schema import FRAUD_TYPE, IS_FRAUD, TIMESTAMP, TRANSACTION_ID
from finrisk.settings import LabelsSettings, MonitorSettings, Settings
from finrisk.stack import Stack
from finrisk.stack.process import free_port
from finrisk.stack.tables import HISTORY_COLUMNS, USER_COLUMNS


@dataclass(frozen=True)
class Stream:
    """The drift scenario's transactions, split at "now" (the retraining moment), with the
    ground truth the summary is checked against."""

    transactions: pd.DataFrame
    users: pd.DataFrame
    prefix: str  # the run's prefix of transaction ids, so every run's ids are its own
    now: pd.Timestamp
    shift: pd.Timestamp
    before_now: npt.NDArray[np.bool_]
    truth: dict[str, str]  # fraud transaction id -> fraud type
    old_types: set[str]
    new_types: set[str]

    @classmethod
    def of(cls, options: DriftOptions, prefix: str) -> Stream:
        from finrisk.synthetic import generate

        # "Now" is midnight today: the stream's days before it have happened, those after it
        # are still to come (event times ahead of the clock: the bridge does not mind).
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
        frauds = transactions[transactions[IS_FRAUD] == 1]
        old_types = set(frauds.loc[frauds[TIMESTAMP] < shift, FRAUD_TYPE])
        return cls(
            transactions=transactions,
            users=users,
            prefix=prefix,
            now=now,
            shift=shift,
            before_now=(transactions[TIMESTAMP] < now).to_numpy(),
            truth=dict(zip(prefix + frauds[TRANSACTION_ID], frauds[FRAUD_TYPE], strict=True)),
            old_types=old_types,
            new_types=set(frauds.loc[frauds[TIMESTAMP] >= shift, FRAUD_TYPE]) - old_types,
        )

    def records(self, before_now: bool) -> list[tuple[bytes, bytes]]:
        """The wire records (key, value) of the transactions before now, or from now on."""
        from finrisk.serving.bridge.producer import wire_records

        mask = self.before_now if before_now else ~self.before_now
        return wire_records(self.transactions.loc[mask], id_prefix=self.prefix)

    def ids(self, before_now: bool) -> set[str]:
        mask = self.before_now if before_now else ~self.before_now
        return {self.prefix + t for t in self.transactions.loc[mask, TRANSACTION_ID]}

    def history(self) -> pd.DataFrame:
        """The bank's transaction history at "now", ids as streamed."""
        past = self.transactions.loc[self.before_now]
        return past.assign(**{TRANSACTION_ID: self.prefix + past[TRANSACTION_ID]})

    def labels_by_now(self, seed: int) -> list[LabelRecord]:
        """The confirmed outcomes that have come in by now (finrisk.synthetic.labels)."""
        from finrisk.synthetic.labels import synthetic_labels

        return [
            dataclasses.replace(label, transaction_id=self.prefix + label.transaction_id)
            for label in synthetic_labels(self.transactions, seed)
            if label.labelled_at <= self.now.to_pydatetime()
        ]


class DriftRun:
    """One run's names (models, topics, dataset, work folder) and its steps, in order."""

    def __init__(self, options: DriftOptions, settings: Settings, out: TextIO) -> None:
        from finrisk.bench.local_processes import RegisteredModels

        self.options = options
        self.settings = settings
        self.out = out
        self.run_id = time.strftime("%Y%m%d%H%M%S") + "-" + uuid.uuid4().hex[:6]
        self.work = settings.home / "demo" / f"drift-{self.run_id}"
        self.work.mkdir(parents=True, exist_ok=True)
        self.dataset = f"finrisk_drift_{self.run_id.replace('-', '_')}"
        self.name = f"finrisk-demo-drift-{self.run_id}"
        self.topic = f"finrisk.demo.{self.run_id}.transactions"
        # Models of the run's own: the loop starts from a champion this run trained (and
        # profiled), whatever an earlier demo left in the registry.
        self.models = RegisteredModels(
            f"finrisk-drift-{self.run_id}-{DEFAULT_MODEL_NAMES[DETECTOR]}",
            f"finrisk-drift-{self.run_id}-{DEFAULT_MODEL_NAMES[RISK]}",
            {},
        )
        self.kafka = {"bootstrap.servers": settings.kafka.bootstrap_servers}

    @property
    def scored_topic(self) -> str:
        return f"{self.name}.scored"

    @property
    def monitoring_topic(self) -> str:
        return f"{self.name}.monitoring"

    def table(self, name: str) -> str:
        return f"{self.settings.bigquery.project}.{self.dataset}.{name}"

    def train_champions(self) -> str:
        """The first champions, by the local pipeline; the detector's version."""
        from finrisk.pipelines.local import run_local

        options = self.options
        log = self.work / "pipeline-champion.log"
        with output_to(log, self.out), naming_log(log):
            first = run_local(
                {
                    "synthetic_users": options.train_users,
                    "synthetic_days": options.train_days,
                    "seed": options.seed,
                    "detector_model_name": self.models.detector,
                    "risk_model_name": self.models.risk,
                },
                pipeline_root=self.work / "pipeline-champion",
                tracking_uri=self.settings.mlflow.tracking_uri,
            )
        version = first.champion.get("detector")
        if not version or not first.champion.get("risk"):
            raise FinriskError(f"the pipeline left no champion: {first.gate_reason}")
        return str(version)

    def bridge_environment(self, predictor_url: str) -> dict[str, str]:
        from finrisk.bench.local_processes import bridge_environment

        bq = self.settings.bigquery
        window = self.options.window
        return bridge_environment(
            self.settings.kafka.bootstrap_servers,
            predictor_url,
            self.models,
            self.topic,
            self.name,
            sink="bigquery",
            bigquery_endpoint=bq.endpoint,
            bigquery_project=bq.project,
            bigquery_dataset=self.dataset,
            bigquery_table="anomalies",
            monitoring_window_transactions=window,
            # Batches no larger than half a window: windows close near their size.
            batch_max_messages=max(window // 2, 1),
            # The last window closes soon after the stream pauses.
            monitoring_window_s=2.0,
            http_port=free_port(),
        )

    def stream(
        self, records: list[tuple[bytes, bytes]], expected: set[str], alive: Callable[[], bool]
    ) -> list[dict[str, Any]]:
        """Produce as a live stream, not a backlog (partitions advance together, so windows
        follow event time; a backlog is read a partition's chunk at a time); the scored
        records, read until each expected id has come."""
        from finrisk.serving.bridge.producer import produce

        produce(self.kafka, self.topic, records, rate=self.options.rate)
        return read_scored(
            self.settings.kafka.bootstrap_servers,
            self.scored_topic,
            expected,
            self.options.scored_timeout_s,
            self.options.progress,
            alive,
        )

    def windows(self, transactions: int, timeout_s: float = 60.0) -> list[dict[str, Any]]:
        """The monitoring records, once the detector's champion windows count `transactions`
        (the last closes when the stream has been quiet for its monitoring_window_s)."""
        detector = self.models.detector

        def counted(records: list[dict[str, Any]]) -> bool:
            mine = (r for r in records if r["model"] == detector and r["role"] == CHAMPION)
            return sum(int(r["transactions"]) for r in mine) >= transactions

        return read_json_until(
            self.settings.kafka.bootstrap_servers, self.monitoring_topic, counted, timeout_s
        )

    def load_warehouse(self, stream: Stream, labels: list[LabelRecord], client: Any) -> int:
        """Labels to their topic; the loader takes labels, scored records and monitoring
        windows into the run's dataset; the bank's history and users beside them. The
        records loaded."""
        from finrisk.serving.bridge.producer import produce
        from finrisk.serving.labels.loader import load

        bq = self.settings.bigquery
        labels_topic = f"finrisk.demo.{self.run_id}.labels"
        produce(self.kafka, labels_topic, [(label.key, label.to_json()) for label in labels])
        loader = LabelsSettings(
            labels_topic=labels_topic,
            scored_topic=self.scored_topic,
            monitoring_topic=self.monitoring_topic,
            dlq_topic=f"finrisk.demo.{self.run_id}.labels.dlq",
            group_id=f"{self.name}-loader",
            bigquery_project=bq.project,
            bigquery_dataset=self.dataset,
            bigquery_endpoint=bq.endpoint,
            # Fewer, larger requests: the emulator's cost is per request.
            batch_max_records=5_000,
        )
        loaded = load(self.settings.model_copy(update={"labels": loader}), once=True)
        write_table(client, self.table("transactions"), stream.history(), HISTORY_COLUMNS)
        write_table(client, self.table("users"), stream.users[list(USER_COLUMNS)], USER_COLUMNS)
        return loaded.records

    def monitor_settings(self) -> MonitorSettings:
        options, bq = self.options, self.settings.bigquery
        return MonitorSettings(
            model=self.models.detector,
            risk_model=self.models.risk,
            bigquery_project=bq.project,
            bigquery_dataset=self.dataset,
            bigquery_endpoint=bq.endpoint,
            sustained_windows=options.sustained_windows,
            recent_days=options.recent_days,
            min_labels=options.min_labels,
            min_frauds=options.min_frauds,
            min_alerts=options.min_frauds,
            cooldown_hours=0,
        )

    def monitor(self, client: Any) -> dict[str, Any]:
        """`finrisk monitor`'s run_once on the run's tables: the decision, and the retraining
        (kfp.local) it starts, on the history with the confirmed labels."""
        from finrisk.monitoring.realized import realized_metrics
        from finrisk.pipelines.monitor import local_launcher, run_once

        options, bq = self.options, self.settings.bigquery
        params = {
            "data_source": "bigquery",
            "bigquery_table": self.table("transactions"),
            "bigquery_users_table": self.table("users"),
            "bigquery_labels_table": self.table("labels"),
            "label_maturity_days": options.label_maturity_days,
            # The demo's alarms and figures (docs/monitoring.md) are of the detector without
            # merchant risk; a pipeline that promotes one reading it, and the bridge following
            # it, are tested on their own (test_pipeline_bigquery, test_champion_change).
            "detector_merchant_risk": False,
            "seed": options.seed,
            # The risk model's test set is a few hundred of these customers: its ROC-AUC moves
            # by ~0.03 between samples, and the pair is promoted together.
            "min_improvement": options.min_improvement,
            "detector_model_name": self.models.detector,
            "risk_model_name": self.models.risk,
        }
        log = self.work / "pipeline-retraining.log"
        launch = local_launcher(
            self.work / "pipeline-retraining", self.settings.mlflow.tracking_uri
        )
        with (
            _environment({cluster.BIGQUERY_ENDPOINT_KEY: bq.endpoint}),
            output_to(log, self.out),
            naming_log(log),
        ):
            row = run_once(
                self.settings.model_copy(update={"monitor": self.monitor_settings()}),
                launch,
                params,
                realized=realized_metrics,
                client=client,
                tracking_uri=self.settings.mlflow.tracking_uri,
            )
        if row["launch_error"]:
            raise FinriskError(f"the retraining did not run: {row['launch_error']}")
        return {
            "retrain": bool(row["retrain"]),
            "reasons": json.loads(row["reasons"]),
            "run": row.get("run"),
            "decided_at": str(row["decided_at"]),
        }

    def champion(self) -> str | None:
        from finrisk import registry

        found = registry.get_version(
            self.models.detector, CHAMPION, tracking_uri=self.settings.mlflow.tracking_uri
        )
        return None if found is None else str(found.version)


def run_drift_demo(
    options: DriftOptions, settings: Settings | None = None, out: TextIO = sys.stderr
) -> DriftSummary:
    from finrisk.bench.local_processes import BridgeProcess, PredictorProcess
    from finrisk.bigquery_client import bigquery_client

    began = time.monotonic()
    settings = settings or Settings()
    run = DriftRun(options, settings, out)
    bq = settings.bigquery

    with step("local stack: Kafka, MLflow, BigQuery emulator", out):
        Stack(settings).up()
    with step(
        f"champions: retraining pipeline (kfp.local) on {options.train_users} users x "
        f"{options.train_days} days",
        out,
    ):
        before = run.train_champions()

    stream = Stream.of(options, prefix=f"{run.run_id}-")
    ids_a, ids_b = stream.ids(before_now=True), stream.ids(before_now=False)
    after: str | None = None
    predictor = PredictorProcess(
        run.models, settings.mlflow.tracking_uri, run.work / "predictor.log"
    )
    client = bigquery_client(bq.project, bq.endpoint)
    try:
        with step(f"predictor serving the champions at {predictor.url}", out):
            predictor.start()
        bridge = BridgeProcess(run.bridge_environment(predictor.url), run.work / "bridge.log")
        with bridge:
            with step(
                f"stream until now: {len(ids_a):,} transactions of {options.stream_users} new "
                f"customers, the shift {options.days_drifted} days ago",
                out,
            ):
                bridge.start()
                scored_a = run.stream(stream.records(before_now=True), ids_a, bridge.alive)
                windows = run.windows(len(ids_a))
            with step("labels come in; the loader takes labels, scores and windows in", out):
                labels = stream.labels_by_now(options.seed + 1)
                loaded = run.load_warehouse(stream, labels, client)
            with step("finrisk monitor: the policy on the tables; retraining if it says so", out):
                decision = run.monitor(client)
                champion = run.champion()
                if champion not in (None, before):
                    after = champion
                    for model in (run.models.detector, run.models.risk):
                        httpx.post(
                            f"{predictor.url}/v2/repository/models/{model}/load", timeout=120
                        ).raise_for_status()
            with step(
                f"stream the next {options.days_after} days: {len(ids_b):,} transactions", out
            ):
                scored = run.stream(stream.records(before_now=False), ids_a | ids_b, bridge.alive)
                code = bridge.terminate()
                if code != 0:
                    raise FinriskError(f"the bridge exited with {code}; log {bridge.log}")
    finally:
        client.close()
        predictor.stop()
    return _summary(
        run,
        stream,
        scored_a=scored_a,
        scored_b=[r for r in scored if r["transaction_id"] in ids_b],
        windows=windows,
        decisions=[decision],
        champions=(before, after),
        counts={
            "before now": len(ids_a),
            "after": len(ids_b),
            "labels in": len(labels),
            "loaded": loaded,
        },
        seconds=time.monotonic() - began,
    )


def _summary(
    run: DriftRun,
    stream: Stream,
    *,
    scored_a: list[dict[str, Any]],
    scored_b: list[dict[str, Any]],
    windows: list[dict[str, Any]],
    decisions: list[dict[str, Any]],
    champions: tuple[str, str | None],
    counts: dict[str, int],
    seconds: float,
) -> DriftSummary:
    shift = stream.shift.to_pydatetime()
    before_shift = [r for r in scored_a if datetime.fromisoformat(r["event_time"]) < shift]
    drifted = [r for r in scored_a if datetime.fromisoformat(r["event_time"]) >= shift]
    bq = run.settings.bigquery
    return DriftSummary(
        run_id=run.run_id,
        scored_topic=run.scored_topic,
        detector_model=run.models.detector,
        shift_at=stream.shift.isoformat(),
        retrain_at=stream.now.isoformat(),
        new_fraud_types=sorted(stream.new_types),
        detection=detection(windows, run.models.detector, shift, run.monitor_settings()),
        decisions=decisions,
        champion_before=champions[0],
        champion_after=champions[1],
        recall_old_before_shift=recall(before_shift, stream.truth, stream.old_types),
        recall_new_before_retraining=recall(drifted, stream.truth, stream.new_types),
        recall_new_after_retraining=recall(scored_b, stream.truth, stream.new_types),
        recall_old_after_retraining=recall(scored_b, stream.truth, stream.old_types),
        transactions=counts,
        seconds=seconds,
        tables={"BigQuery": f"{bq.project}.{run.dataset} (emulator {bq.endpoint})"},
    )


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
