"""`finrisk demo`: the whole system on this machine, on embedded defaults.

Stack up -> retraining pipeline (kfp.local) registers champions in MLflow -> predictor serves
them -> synthetic customers the models never saw stream through Kafka -> the bridge scores them
into the scored topic and logs anomalies to the BigQuery emulator -> their confirmed outcomes,
the scored records and the monitoring windows into the run's warehouse dataset -> the
dashboard on that run -> a summary checked against the injected fraud labels. Each run uses
topics, a consumer group, a table and a dataset of its own, so it can run again and again; the
stack, the predictor and the dashboard stay up for a look around.
"""

from __future__ import annotations

import shutil
import sys
import time
import uuid
from pathlib import Path
from typing import Any, TextIO

from finrisk.demo.options import DemoOptions
from finrisk.demo.steps import naming_log, output_to, progress_bar, read_scored, step
from finrisk.demo.summary import DemoSummary, summarise_stream
from finrisk.errors import FinriskError
from finrisk.kinds import DEFAULT_MODEL_NAMES, DETECTOR, RISK
from finrisk.schema import IS_FRAUD, TRANSACTION_ID
from finrisk.settings import DashboardSettings, LabelsSettings, Settings
from finrisk.stack import Stack
from finrisk.stack.process import free_port

DETECTOR_NAME = DEFAULT_MODEL_NAMES[DETECTOR]
RISK_NAME = DEFAULT_MODEL_NAMES[RISK]
ANOMALY_DATASET = "finrisk_demo"


def run_demo(
    options: DemoOptions, settings: Settings | None = None, out: TextIO = sys.stderr
) -> DemoSummary:
    from finrisk.bench.local_processes import (
        BridgeProcess,
        RegisteredModels,
        bridge_environment,
    )
    from finrisk.pipelines.local import run_local
    from finrisk.serving.bridge.producer import produce, wire_records
    from finrisk.synthetic import generate

    settings = settings or Settings()
    stack = Stack(settings)
    run_id = time.strftime("%Y%m%d%H%M%S") + "-" + uuid.uuid4().hex[:6]
    work = settings.home / "demo" / run_id
    work.mkdir(parents=True, exist_ok=True)

    with step("local stack: Kafka, MLflow, BigQuery emulator", out):
        stack.up()

    with step(
        f"retraining pipeline (kfp.local): {options.train_users} users x "
        f"{options.train_days} days, gate, register, deploy (dry run)",
        out,
    ):
        log = work / "pipeline.log"
        with output_to(log, out), naming_log(log):
            result = run_local(
                {
                    "synthetic_users": options.train_users,
                    "synthetic_days": options.train_days,
                    "seed": options.seed,
                    "detector_model_name": DETECTOR_NAME,
                    "risk_model_name": RISK_NAME,
                },
                pipeline_root=work / "pipeline",
                tracking_uri=settings.mlflow.tracking_uri,
            )
        if not result.champion.get("detector") or not result.champion.get("risk"):
            raise FinriskError(f"the pipeline left no champion: {result.gate_reason}")

    predictor = stack.services["predictor"]
    with step(f"predictor serving the champions at {predictor.address}", out):
        predictor.down()  # a running predictor would still serve the previous champion
        predictor.up()

    with step(
        f"streaming {options.stream_users} new customers x {options.stream_days} days "
        "through Kafka",
        out,
    ):
        transactions, _, _ = generate(
            users=options.stream_users, days=options.stream_days, seed=options.seed + 1
        )
        prefix = f"{run_id}-"
        records = wire_records(transactions, id_prefix=prefix)
        labels = {
            prefix + str(tx): int(flag)
            for tx, flag in zip(transactions[TRANSACTION_ID], transactions[IS_FRAUD], strict=True)
        }
        topic = f"finrisk.demo.{run_id}.transactions"
        with progress_bar(len(records), "produced", options.progress) as advance:
            produce(
                {"bootstrap.servers": settings.kafka.bootstrap_servers},
                topic,
                records,
                on_sent=lambda i: advance(i),
            )

    name = f"finrisk-demo-{run_id}"
    table = f"anomalies_{run_id.replace('-', '_')}"
    env = bridge_environment(
        settings.kafka.bootstrap_servers,
        predictor.address,
        RegisteredModels(DETECTOR_NAME, RISK_NAME, {}),
        topic,
        name,
        sink="bigquery",
        bigquery_endpoint=settings.bigquery.endpoint,
        bigquery_project=settings.bigquery.project,
        bigquery_dataset=ANOMALY_DATASET,
        bigquery_table=table,
        http_port=free_port(),
        # Windows of a few thousand: the dashboard's monitoring page has a drift curve to show.
        monitoring_window_transactions=5_000,
        # What would bring a MEDIUM or HIGH customer down, for the dashboard's customer page.
        recommendations=3,
    )
    with (
        step("bridge: consumer group -> features -> predictor -> scored topic + BigQuery", out),
        BridgeProcess(env, work / "bridge.log") as bridge,
    ):
        bridge.start()
        started = time.monotonic()
        scored = read_scored(
            settings.kafka.bootstrap_servers,
            f"{name}.scored",
            set(labels),
            options.scored_timeout_s,
            options.progress,
            bridge.alive,
        )
        seconds = time.monotonic() - started
        code = bridge.terminate()
        if code != 0:
            raise FinriskError(f"the bridge exited with {code}; log {work / 'bridge.log'}")

    stream = summarise_stream(scored, labels)
    anomaly_table = f"{settings.bigquery.project}.{ANOMALY_DATASET}.{table}"
    dataset = f"{ANOMALY_DATASET}_{run_id.replace('-', '_')}"
    with step(f"warehouse: outcomes, scored records, monitoring windows -> {dataset}", out):
        streamed = transactions.assign(**{TRANSACTION_ID: prefix + transactions[TRANSACTION_ID]})
        _load_warehouse(settings, streamed, name, dataset, options.seed)
    dashboard = _dashboard(settings, dataset, anomaly_table, predictor.address)
    with step(f"dashboard on this run at {dashboard.address}", out):
        dashboard.down()  # a running dashboard would still show another run
        dashboard.up()
    return DemoSummary(
        run_id=run_id,
        scored_topic=f"{name}.scored",
        stream=stream,
        seconds_streaming=seconds,
        throughput_per_s=stream.scored / seconds if seconds else 0.0,
        anomalies_logged=_count_rows(settings, anomaly_table),
        anomaly_table=f"{anomaly_table} (BigQuery emulator {settings.bigquery.endpoint})",
        pipeline=result.to_dict(),
        urls={"dashboard": dashboard.address, **_urls(settings, predictor.address, work)},
        warehouse_dataset=f"{settings.bigquery.project}.{dataset}",
    )


def _load_warehouse(
    settings: Settings, transactions: Any, name: str, dataset: str, seed: int
) -> None:
    """The stream's confirmed outcomes (as a bank would send them, days later) to a labels
    topic; `finrisk labels load` takes them, the scored records and the monitoring windows into
    `dataset`: what the dashboard's customer and monitoring pages read."""
    from finrisk.serving.bridge.producer import produce
    from finrisk.serving.labels.loader import load
    from finrisk.synthetic.labels import synthetic_labels

    labels_topic = f"{name}.labels"
    outcomes = synthetic_labels(transactions, seed)
    produce(
        {"bootstrap.servers": settings.kafka.bootstrap_servers},
        labels_topic,
        [(label.key, label.to_json()) for label in outcomes],
    )
    loader = LabelsSettings(
        labels_topic=labels_topic,
        scored_topic=f"{name}.scored",
        monitoring_topic=f"{name}.monitoring",
        dlq_topic=f"{name}.labels.dlq",
        group_id=f"{name}-loader",
        bigquery_project=settings.bigquery.project,
        bigquery_dataset=dataset,
        bigquery_endpoint=settings.bigquery.endpoint,
        batch_max_records=5_000,  # fewer, larger requests: the emulator's cost is per request
    )
    load(settings.model_copy(update={"labels": loader}), once=True)


def _dashboard(settings: Settings, dataset: str, anomalies: str, predictor: str) -> Any:
    """The stack's dashboard service, reading this run's tables."""
    from finrisk.stack.dashboard import Dashboard

    shown = DashboardSettings(
        port=settings.dashboard.port,
        bigquery_project=settings.bigquery.project,
        bigquery_dataset=dataset,
        bigquery_endpoint=settings.bigquery.endpoint,
        anomalies_table=anomalies,
        predictor_url=predictor,
        mlflow_tracking_uri=settings.mlflow.tracking_uri,
        detector_model=DETECTOR_NAME,
        risk_model=RISK_NAME,
    )
    return Dashboard(settings.model_copy(update={"dashboard": shown}))


def _count_rows(settings: Settings, table: str) -> int:
    from finrisk.bigquery_client import bigquery_client

    client = bigquery_client(settings.bigquery.project, settings.bigquery.endpoint)
    rows = list(client.query(f"SELECT COUNT(*) AS n FROM `{table}`").result(timeout=60))
    return int(rows[0]["n"])


def _urls(settings: Settings, predictor: str, work: Path) -> dict[str, str]:
    urls = {
        "MLflow UI": f"{settings.mlflow.tracking_uri}/#/models/{DETECTOR_NAME}",
        "V1 endpoint": f"{predictor}/v1/models/{DETECTOR_NAME}:predict",
        "V2 endpoint": f"{predictor}/v2/models/{DETECTOR_NAME}/infer",
        "risk endpoint": f"{predictor}/v2/models/{RISK_NAME}/infer",
    }
    # KFP artifacts have no file extension; a copy with one opens in a browser.
    for kind in ("detector", "risk"):
        for report in (work / "pipeline").glob(f"*/evaluate-models/{kind}_report"):
            copy = work / f"{kind}-report.html"
            shutil.copyfile(report, copy)
            urls[f"{kind} report"] = copy.resolve().as_uri()
    return urls
