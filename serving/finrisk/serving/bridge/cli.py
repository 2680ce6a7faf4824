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
