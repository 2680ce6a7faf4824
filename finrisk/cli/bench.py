"""`finrisk bench <what>`: benchmarks that print JSON figures.

Each entry of BENCHMARKS names a function "module:function" that takes the `bench`
sub-parsers and adds one sub-command (its arguments and handler); add `serving` or `bridge`
by writing such a function next to the code it measures and naming it here. Modules are
imported when the parser is built, so keep heavy imports inside the handlers.
"""

from __future__ import annotations

import argparse
import importlib
import json

from finrisk.errors import FinriskError

BENCHMARKS: tuple[str, ...] = (
    "finrisk.cli.bench:register_features",
    "finrisk.serving.predictor.benchmark:register_serving",
    "finrisk.cli.bridge:register_bench",
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
    sub.set_defaults(handler=_features)


def _features(args: argparse.Namespace) -> int:
    from finrisk.features.benchmark import run

    if args.repeats < 1:
        raise FinriskError(f"--repeats must be at least 1, got {args.repeats}")
    print(json.dumps(run(args.users, args.days, args.seed, args.repeats), indent=2))
    return 0
