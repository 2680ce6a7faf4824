"""`finrisk bridge` (the streaming scorer) and `finrisk produce` (a synthetic transaction stream).

Settings come from FINRISK_BRIDGE__* variables or the `bridge:` section of the FINRISK_CONFIG
file; the flags here override the most used ones.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from finrisk.errors import FinriskError
from finrisk.settings import BridgeSettings, Settings

_FLAGS: dict[str, str] = {
    # flag dest -> BridgeSettings field
    "bootstrap_servers": "bootstrap_servers",
    "input_topic": "input_topic",
    "scored_topic": "scored_topic",
    "dlq_topic": "dlq_topic",
    "group_id": "group_id",
    "predictor_url": "predictor_url",
    "detector_model": "detector_model",
    "risk_model": "risk_model",
    "batch_max_messages": "batch_max_messages",
    "batch_max_wait_ms": "batch_max_wait_ms",
    "checkpoint_interval_ms": "checkpoint_interval_ms",
    "sink": "sink",
    "local_sink_path": "local_sink_path",
    "bigquery_endpoint": "bigquery_endpoint",
    "bigquery_dataset": "bigquery_dataset",
    "bigquery_table": "bigquery_table",
    "http_port": "http_port",
    "workers": "workers",
}


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    text = "score the transactions topic through the predictor, continuously"
    bridge = subparsers.add_parser("bridge", help=text, description=text)
    bridge.add_argument("--bootstrap-servers", help="Kafka brokers (default: the local stack)")
    bridge.add_argument("--input-topic", help="transactions topic (default transactions)")
    bridge.add_argument("--scored-topic", help="scored topic (default transactions.scored)")
    bridge.add_argument("--dlq-topic", help="dead-letter topic (default transactions.dlq)")
    bridge.add_argument("--group-id", help="consumer group (default finrisk-bridge)")
    bridge.add_argument("--predictor-url", help="V2 endpoint (default http://127.0.0.1:8080)")
    bridge.add_argument("--detector-model", help="served detector name")
    bridge.add_argument("--risk-model", help="served risk model name ('' for none)")
    bridge.add_argument("--batch-max-messages", type=int, help="micro-batch size bound")
    bridge.add_argument("--batch-max-wait-ms", type=int, help="micro-batch wait bound")
    bridge.add_argument(
        "--checkpoint-interval-ms",
        type=int,
        help="how often state goes to the changelog and offsets are committed (default 1000)",
    )
    bridge.add_argument("--sink", choices=("local", "bigquery", "none"), help="anomaly sink")
    bridge.add_argument("--local-sink-path", type=Path, help="SQLite file of the local sink")
    bridge.add_argument("--bigquery-endpoint", help="BigQuery API URL (the emulator's locally)")
    bridge.add_argument("--bigquery-dataset", help="BigQuery dataset (default finrisk)")
    bridge.add_argument("--bigquery-table", help="BigQuery table (default anomalies)")
    bridge.add_argument(
        "--http-port", type=int, help="health/metrics port (default 9108; 0: any free one)"
    )
    bridge.add_argument(
        "--workers",
        type=int,
        help="bridge processes on this host, one consumer group (default 1; worker i serves "
        "health/metrics on the port + i)",
    )
    bridge.add_argument(
        "--exactly-once",
        action="store_true",
        default=None,
        help="write the scored topic in Kafka transactions (read it with read_committed)",
    )
    bridge.add_argument(
        "--idle-exit",
        type=float,
        metavar="SECONDS",
        help="stop after this long without messages (default: run until SIGTERM)",
    )
    bridge.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    bridge.set_defaults(handler=_bridge)

    text = "stream synthetic transactions to the transactions topic, keyed by user"
    produce = subparsers.add_parser("produce", help=text, description=text)
    produce.add_argument("--count", type=int, default=10_000, help="transactions (default 10000)")
    produce.add_argument(
        "--rate", type=float, default=1000.0, help="per second; 0 for as fast as possible"
    )
    produce.add_argument("--topic", help="topic (default: the bridge's input topic)")
    produce.add_argument("--bootstrap-servers", help="Kafka brokers (default: the local stack)")
    produce.add_argument("--users", type=int, default=1000, help="synthetic users (default 1000)")
    produce.add_argument("--days", type=int, default=60, help="days simulated (default 60)")
    produce.add_argument("--seed", type=int, default=7, help="generator seed (default 7)")
    produce.add_argument(
        "--dataset", type=Path, help="a dataset directory to stream instead of synthetic data"
    )
    produce.add_argument("--id-prefix", default="", help="prefix for transaction ids")
    produce.add_argument(
        "--partitions", type=int, default=6, help="partitions if the topic is created (default 6)"
    )
    produce.set_defaults(handler=_produce)


def bridge_settings(args: argparse.Namespace) -> Settings:
    """Settings with the flags given on the command line laid over env and file."""
    settings = Settings()
    overrides: dict[str, Any] = {
        field: getattr(args, dest)
        for dest, field in _FLAGS.items()
        if getattr(args, dest, None) is not None
    }
    if overrides.get("risk_model") == "":
        overrides["risk_model"] = None
    if getattr(args, "exactly_once", None):
        overrides["exactly_once"] = True
    try:
        bridge = BridgeSettings.model_validate({**settings.bridge.model_dump(), **overrides})
    except ValidationError as exc:
        problems = "; ".join(
            f"--{'-'.join(str(p) for p in err['loc']).replace('_', '-')}: {err['msg']}"
            for err in exc.errors()
        )
        raise FinriskError(f"invalid bridge settings: {problems}") from None
    return settings.model_copy(update={"bridge": bridge})


def _bridge(args: argparse.Namespace) -> int:
    from finrisk.serving.bridge import run_bridge
    from finrisk.serving.bridge.workers import run_workers

    _logging(args.log_level)
    if args.idle_exit is not None and args.idle_exit <= 0:
        raise FinriskError(f"--idle-exit must be positive, got {args.idle_exit}")
    settings = bridge_settings(args)
    run = run_workers if settings.bridge.workers > 1 else run_bridge
    stats = run(settings, idle_exit_s=args.idle_exit)
    print(json.dumps(stats.as_dict()), file=sys.stderr)
    return 0


def _produce(args: argparse.Namespace) -> int:
    from finrisk.serving.bridge import kafka_config
    from finrisk.serving.bridge.producer import produce, synthetic_records, wire_records

    if args.count < 1:
        raise FinriskError(f"--count must be at least 1, got {args.count}")
    if args.rate < 0:
        raise FinriskError(f"--rate must be >= 0 (0: as fast as possible), got {args.rate}")
    settings = bridge_settings(args)
    topic = args.topic or settings.bridge.input_topic
    if args.dataset is not None:
        from finrisk.io import load_transactions

        frame = load_transactions(args.dataset)
        records = wire_records(frame, args.id_prefix)[: args.count]
    else:
        records = synthetic_records(args.count, args.users, args.days, args.seed, args.id_prefix)
    kafka_config.ensure_topic(settings, topic, args.partitions)
    stats = produce(kafka_config.client_config(settings), topic, records, rate=args.rate or None)
    print(json.dumps({"topic": topic, **stats.as_dict()}))
    return 0


def _logging(level: str) -> None:
    try:
        logging.basicConfig(
            level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
    except ValueError:
        raise FinriskError(f"--log-level {level!r} is not a logging level") from None


def register_bench(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    text = (
        "end-to-end throughput and event-to-score latency of the bridge, against a "
        "one-call-per-message consumer, on the real broker and predictor"
    )
    sub = actions.add_parser("bridge", help=text, description=text)
    sub.add_argument("--count", type=int, default=100_000, help="backlog size (default 100000)")
    sub.add_argument("--users", type=int, default=2_000, help="synthetic users (default 2000)")
    sub.add_argument("--days", type=int, default=60, help="days simulated (default 60)")
    sub.add_argument("--seed", type=int, default=42, help="generator seed (default 42)")
    sub.add_argument("--partitions", type=int, default=6, help="input partitions (default 6)")
    sub.add_argument(
        "--batch-max-messages", type=int, default=2_000, help="micro-batch size (default 2000)"
    )
    sub.add_argument(
        "--batch-max-wait-ms", type=int, default=25, help="micro-batch wait (default 25)"
    )
    sub.add_argument(
        "--reasons",
        choices=("all", "elevated", "none"),
        default="elevated",
        help="which scored records carry risk reasons (default elevated)",
    )
    sub.add_argument(
        "--workers",
        type=int,
        default=1,
        help="bridge processes, and as many one-per-message consumers (default 1)",
    )
    sub.add_argument(
        "--baseline-messages", type=int, default=3_000, help="one-per-message cap (default 3000)"
    )
    sub.add_argument(
        "--baseline-seconds", type=float, default=20.0, help="one-per-message time cap (20)"
    )
    sub.add_argument(
        "--latency-rate", type=float, default=5_000.0, help="offered tx/s for latency (5000)"
    )
    sub.add_argument(
        "--latency-seconds", type=float, default=10.0, help="latency run length (default 10)"
    )
    sub.add_argument(
        "--sink",
        choices=("bigquery", "local", "none"),
        default="bigquery",
        help="where both sides store anomalies (default bigquery, as deployed: the local "
        "emulator here, a fresh dataset per run)",
    )
    sub.add_argument(
        "--record",
        type=Path,
        metavar="FILE",
        help="append the run's figures as one JSON line to FILE (the benchmark's history)",
    )
    sub.add_argument(
        "--history",
        type=Path,
        metavar="FILE",
        help="print the latest runs recorded in FILE as a Markdown table, and measure nothing",
    )
    sub.add_argument("--timeout", type=float, default=600.0, help="per phase, seconds (600)")
    sub.add_argument(
        "--predictor-url",
        help="use this running predictor (else models are trained, registered and served here)",
    )
    sub.add_argument("--detector-model", default="finrisk-anomaly-detector")
    sub.add_argument("--risk-model", default="finrisk-risk-classifier")
    sub.set_defaults(handler=_bench)


def _bench(args: argparse.Namespace) -> int:
    from finrisk.serving.bridge import benchmark
    from finrisk.serving.bridge.local_processes import (
        PredictorProcess,
        RegisteredModels,
        register_champions,
        train_models,
    )
    from finrisk.stack import Stack

    if args.history is not None:
        if not args.history.is_file():
            raise FinriskError(f"--history {args.history}: no such file")
        print(benchmark.history_table(args.history), end="")
        return 0
    for flag in ("count", "users", "days", "partitions", "batch_max_messages", "workers"):
        if getattr(args, flag) < 1:
            raise FinriskError(f"--{flag.replace('_', '-')} must be at least 1")
    if args.workers > args.partitions:
        raise FinriskError(
            f"--workers {args.workers} exceeds --partitions {args.partitions}: a worker or "
            "one-per-message consumer would have no partition to read"
        )
    if args.latency_rate <= 0 or args.latency_seconds <= 0 or args.timeout <= 0:
        raise FinriskError("--latency-rate, --latency-seconds and --timeout must be positive")
    settings = Settings()
    stack = Stack(settings)
    services = ["kafka"] if args.predictor_url else ["kafka", "mlflow"]
    if args.sink == "bigquery" and settings.bridge.bigquery_endpoint is None:
        services.append("bigquery")  # the emulator, unless settings name a BigQuery
    started = stack.up(services)
    predictor: PredictorProcess | None = None
    try:
        if args.predictor_url:
            models = RegisteredModels(args.detector_model, args.risk_model, {})
            url = args.predictor_url
        else:
            tracking_uri = settings.mlflow.tracking_uri
            print("training and registering small models ...", file=sys.stderr)
            detector, risk = train_models()
            models = register_champions(
                tracking_uri,
                "finrisk-bench-bridge-detector",
                "finrisk-bench-bridge-risk",
                detector,
                risk,
            )
            log = settings.home / "bench" / "bridge-predictor.log"
            predictor = PredictorProcess(models, tracking_uri, log).start()
            url = predictor.url
        print("measuring ...", file=sys.stderr)
        result = benchmark.run(
            settings,
            benchmark.Endpoint(url, models),
            count=args.count,
            users=args.users,
            days=args.days,
            seed=args.seed,
            partitions=args.partitions,
            bridge_settings={
                "batch_max_messages": args.batch_max_messages,
                "batch_max_wait_ms": args.batch_max_wait_ms,
                "reasons": args.reasons,
                "workers": args.workers,
                **benchmark.sink_settings(settings, args.sink),
            },
            baseline_messages=args.baseline_messages,
            baseline_seconds=args.baseline_seconds,
            latency_rate=args.latency_rate,
            latency_seconds=args.latency_seconds,
            timeout_s=args.timeout,
        )
    finally:
        if predictor is not None:
            predictor.stop()
        # Only what this command started; the others belong to whoever started them (and an
        # empty list would mean every service).
        ours = [name for name, was_started in started.items() if was_started]
        if ours:
            stack.down(ours)
    if args.record is not None:
        benchmark.record(result, args.record)
    print(json.dumps(result, indent=2))
    return 0
