"""`finrisk bridge` (the streaming scorer) and `finrisk produce` (a synthetic transaction stream).

Settings come from FINRISK_BRIDGE__* variables or the `bridge:` section of the FINRISK_CONFIG
file; each also has a flag, derived from its declaration in finrisk.settings.BridgeSettings.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from finrisk.cli.settings_flags import add_flags, given, overlaid
from finrisk.errors import FinriskError
from finrisk.settings import BridgeSettings, Settings


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    text = "score the transactions topic through the predictor, continuously"
    bridge = subparsers.add_parser("bridge", help=text, description=text)
    add_flags(
        bridge,
        BridgeSettings,
        title="settings (each also FINRISK_BRIDGE__<NAME> or bridge: in the FINRISK_CONFIG file; "
        "'' stands for none)",
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
    add_flags(produce, BridgeSettings, only=("bootstrap_servers",))
    produce.add_argument("--users", type=int, default=1000, help="synthetic users (default 1000)")
    produce.add_argument("--days", type=int, default=60, help="days simulated (default 60)")
    produce.add_argument("--seed", type=int, default=7, help="generator seed (default 7)")
    produce.add_argument(
        "--dataset", type=Path, help="a dataset directory to stream instead of synthetic data"
    )
    produce.add_argument("--id-prefix", default="", help="prefix for transaction ids")
    produce.add_argument(
        "--partitions",
        type=int,
        help="partitions if the topic is created (default: the bridge's input_partitions)",
    )
    produce.set_defaults(handler=_produce)


def bridge_settings(args: argparse.Namespace) -> Settings:
    """Settings with the flags given on the command line laid over env and file."""
    settings = Settings()
    bridge = overlaid(settings.bridge, given(args, BridgeSettings))
    return settings.model_copy(update={"bridge": bridge})


def _bridge(args: argparse.Namespace) -> int:
    from finrisk.serving.bridge.app import run_bridge
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
    partitions = settings.bridge.input_partitions if args.partitions is None else args.partitions
    kafka_config.ensure_topic(settings, topic, partitions)
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
