"""`finrisk bench <what>`: benchmarks that print JSON figures, and with --record keep each run
in the benchmark's history file (finrisk.bench.history); `finrisk bench summary` shows the
latest run of each.

Each entry of BENCHMARKS names a function "module:function" that takes the `bench`
sub-parsers and adds one sub-command (its arguments and handler); add `serving` or `bridge`
by writing such a function next to the code it measures and naming it here. Modules are
imported when the parser is built, so keep heavy imports inside the handlers.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path
from typing import Any

from finrisk.bench import history
from finrisk.cli.settings_flags import add_flags, given, overlaid
from finrisk.errors import FinriskError
from finrisk.settings import BridgeSettings, Settings

# The bridge settings `bench bridge` takes as flags; the sink is its own (--sink, default
# bigquery: the benchmark measures as deployed, where the setting's default is local).
BRIDGE_FLAGS = (
    "batch_max_messages", "batch_max_wait_ms", "reasons", "workers", "monitoring", "transport",
    "predictor_grpc_port",
)  # fmt: skip
# The benchmark's own flags that a recorded run keeps as its settings.
BRIDGE_RUN_FLAGS = (
    "count", "users", "days", "seed", "partitions", "sink", "baseline_messages",
    "baseline_seconds", "latency_rate", "latency_seconds", "predictor_url",
)  # fmt: skip

BENCHMARKS: tuple[str, ...] = (
    "finrisk.bench.cli:register_features",
    "finrisk.bench.serving:register_serving",
    "finrisk.bench.cli:register_bridge",
    "finrisk.bench.cli:register_drift",
    "finrisk.bench.cli:register_pipeline",
    "finrisk.bench.cli:register_summary",
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    text = "measure throughput and print the figures as JSON"
    parser = subparsers.add_parser("bench", help=text, description=text)
    actions = parser.add_subparsers(dest="benchmark", metavar="BENCHMARK", required=True)
    for entry in BENCHMARKS:
        module, function = entry.split(":")
        getattr(importlib.import_module(module), function)(actions)


def register_features(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    text = "batch and online feature throughput on synthetic data"
    sub = actions.add_parser("features", help=text, description=text)
    sub.add_argument("--users", type=int, default=2000, help="synthetic users (default 2000)")
    sub.add_argument("--days", type=int, default=180, help="days of history (default 180)")
    sub.add_argument("--seed", type=int, default=42, help="generator seed (default 42)")
    sub.add_argument("--repeats", type=int, default=3, help="batch runs; best counts (default 3)")
    history.add_flags(sub, "benchmarks/features.jsonl")
    sub.set_defaults(handler=_features)


def _features(args: argparse.Namespace) -> int:
    from finrisk.bench import features as benchmark

    if args.history is not None:
        print(history.table(history.read(args.history), benchmark.HISTORY_COLUMNS), end="")
        return 0
    if args.repeats < 1:
        raise FinriskError(f"--repeats must be at least 1, got {args.repeats}")
    result = benchmark.run(args.users, args.days, args.seed, args.repeats)
    if args.record is not None:
        history.record(
            args.record,
            command=args.argv,
            settings={
                **{flag: getattr(args, flag) for flag in ("users", "days", "seed", "repeats")},
                "micro_batch": benchmark.MICRO_BATCH,
                "one_at_a_time": benchmark.ONE_AT_A_TIME,
            },
            figures=benchmark.figures(result),
            load=result["machine"]["load_average_1m"],
        )
    print(json.dumps(result, indent=2))
    return 0


def register_pipeline(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    text = (
        "time and peak memory of the pipeline's data stages, pandas against BigQuery SQL "
        "(the local emulator), side by side"
    )
    sub = actions.add_parser("pipeline", help=text, description=text)
    sub.add_argument(
        "--transactions",
        default="1000000,5000000",
        help="comma-separated sizes, about that many transactions (default 1000000,5000000)",
    )
    sub.add_argument(
        "--source",
        choices=("pandas", "bigquery", "both"),
        default="both",
        help="which path (default both, side by side)",
    )
    sub.add_argument(
        "--sample-share", type=float, default=1.0, help="users read back (default 1.0)"
    )
    sub.add_argument(
        "--sample-rows",
        type=int,
        default=100_000,
        help="about this many transactions read back, whatever the size (default 100000)",
    )
    sub.add_argument(
        "--page-size", type=int, default=10_000, help="rows per REST page (default 10000)"
    )
    sub.add_argument("--seed", type=int, default=42, help="generator seed (default 42)")
    history.add_flags(sub, "benchmarks/pipeline.jsonl")
    sub.set_defaults(handler=_pipeline)


def _pipeline(args: argparse.Namespace) -> int:
    from finrisk.bench import pipeline as benchmark

    if args.history is not None:
        print(history.table(history.read(args.history), benchmark.HISTORY_COLUMNS), end="")
        return 0
    try:
        sizes = [int(size) for size in args.transactions.split(",") if size.strip()]
    except ValueError:
        raise FinriskError(
            f"--transactions must be comma-separated integers, got {args.transactions!r}"
        ) from None
    if not sizes or min(sizes) < 1:
        raise FinriskError(f"--transactions needs sizes >= 1, got {args.transactions!r}")
    if not 0 < args.sample_share <= 1:
        raise FinriskError(f"--sample-share must be in (0, 1], got {args.sample_share}")
    sources = list(benchmark.SOURCES) if args.source == "both" else [args.source]
    if args.sample_rows < 0:
        raise FinriskError(f"--sample-rows must be >= 0 (0: no cap), got {args.sample_rows}")
    result = benchmark.run(
        sizes, sources, args.seed, args.sample_share, args.sample_rows, args.page_size
    )
    if args.record is not None:
        history.record(
            args.record,
            command=args.argv,
            settings={
                "transactions": sizes,
                "sources": sources,
                "sample_share": args.sample_share,
                "sample_rows": args.sample_rows,
                "page_size": args.page_size,
                "seed": args.seed,
                "days": result["days"],
            },
            figures=benchmark.figures(result),
            load=result["machine"]["load_average_1m"],
        )
    print(benchmark.table(result), end="", file=sys.stderr)
    print(json.dumps(result, indent=2))
    return 0


def register_bridge(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
    # The bridge's own settings, declared once in finrisk.settings (defaults as deployed); with
    # --workers N, as many one-per-message consumers run beside.
    add_flags(sub, BridgeSettings, only=BRIDGE_FLAGS, title="bridge settings")
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
    history.add_flags(sub, "benchmarks/bridge.jsonl")
    sub.add_argument("--timeout", type=float, default=600.0, help="per phase, seconds (600)")
    sub.add_argument(
        "--predictor-url",
        help="use this running predictor (else models are trained, registered and served here)",
    )
    sub.add_argument("--detector-model", default="finrisk-anomaly-detector")
    sub.add_argument("--risk-model", default="finrisk-risk-classifier")
    sub.set_defaults(handler=_bridge)


def _bridge(args: argparse.Namespace) -> int:
    from finrisk.bench import bridge as benchmark
    from finrisk.bench.local_processes import (
        PredictorProcess,
        RegisteredModels,
        register_champions,
        train_models,
    )
    from finrisk.stack import Stack

    if args.history is not None:
        print(history.table(history.read(args.history), benchmark.HISTORY_COLUMNS), end="")
        return 0
    for flag in ("count", "users", "days", "partitions"):
        if getattr(args, flag) < 1:
            raise FinriskError(f"--{flag.replace('_', '-')} must be at least 1")
    bridge = overlaid(BridgeSettings(), given(args, BridgeSettings, only=BRIDGE_FLAGS))
    if bridge.workers > args.partitions:
        raise FinriskError(
            f"--workers {bridge.workers} exceeds --partitions {args.partitions}: a worker or "
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
            # Its gRPC port, for the drains over gRPC (the setting's default is KServe's 8081).
            bridge = bridge.model_copy(update={"predictor_grpc_port": predictor.grpc_port})
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
                **{name: getattr(bridge, name) for name in BRIDGE_FLAGS},
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
        history.record(
            args.record,
            command=args.argv,
            settings=bridge_run_settings(args, bridge),
            figures=benchmark.figures(result),
            load=result["machine"]["load_average_1m"],
        )
    print(json.dumps(result, indent=2))
    return 0


def bridge_run_settings(args: argparse.Namespace, bridge: BridgeSettings) -> dict[str, Any]:
    """What a recorded run was asked to do (not the sink's dataset or file: the run's own)."""
    return {
        **{flag: getattr(args, flag) for flag in BRIDGE_RUN_FLAGS},
        **{name: getattr(bridge, name) for name in BRIDGE_FLAGS},
    }


def register_drift(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    text = (
        "drift alarms of the monitoring windows and the retraining policy: false alarms on "
        "drift-free traffic, detection delay and recall on the drift scenario"
    )
    sub = actions.add_parser("drift", help=text, description=text)
    sub.add_argument(
        "--transactions",
        type=int,
        default=1_000_000,
        help="drift-free transactions watched, at least (default 1000000)",
    )
    sub.add_argument(
        "--window", type=int, default=1_000, help="transactions a window (default 1000)"
    )
    sub.add_argument(
        "--users", type=int, default=300, help="customers at any time (default 300, the demo's)"
    )
    sub.add_argument(
        "--days", type=int, default=45, help="days each customer stays (default 45, the demo's)"
    )
    sub.add_argument(
        "--drift-days", type=int, default=40, help="drifted stream, shift half-way (default 40)"
    )
    sub.add_argument("--seed", type=int, default=42, help="generator seed (default 42)")
    history.add_flags(sub, "benchmarks/drift.jsonl")
    sub.set_defaults(handler=_drift)


DRIFT_RUN_FLAGS = ("transactions", "window", "users", "days", "drift_days", "seed")


def _drift(args: argparse.Namespace) -> int:
    from finrisk.bench import drift as benchmark

    if args.history is not None:
        print(history.table(history.read(args.history), benchmark.HISTORY_COLUMNS), end="")
        return 0
    for flag in DRIFT_RUN_FLAGS:
        if getattr(args, flag) < (0 if flag == "seed" else 1):
            raise FinriskError(f"--{flag.replace('_', '-')} must be at least 1")
    result = benchmark.run(
        transactions=args.transactions,
        users=args.users,
        days=args.days,
        window=args.window,
        seed=args.seed,
        drift_stream_days=args.drift_days,
    )
    if args.record is not None:
        history.record(
            args.record,
            command=args.argv,
            settings={flag: getattr(args, flag) for flag in DRIFT_RUN_FLAGS},
            figures=benchmark.figures(result),
            load=result["machine"]["load_average_1m"],
        )
    print(json.dumps(result, indent=2))
    return 0


def register_summary(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    text = "the latest recorded run of each benchmark as one Markdown table (README.md's)"
    sub = actions.add_parser("summary", help=text, description=text)
    sub.add_argument(
        "--directory",
        type=Path,
        default=Path("benchmarks"),
        help="where the history files are (default benchmarks)",
    )
    sub.set_defaults(handler=_summary)


def _summary(args: argparse.Namespace) -> int:
    from finrisk.bench.summary import summary_table

    print(summary_table(args.directory), end="")
    return 0
