"""`finrisk demo`: the whole system end to end on embedded defaults."""

from __future__ import annotations

import argparse
import json

from finrisk.demo.options import DemoOptions
from finrisk.errors import FinriskError

_DEFAULTS = DemoOptions()


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    text = (
        "start the local stack, retrain and register champions, serve them, stream new "
        "customers through Kafka and the bridge, and summarise the result"
    )
    parser = subparsers.add_parser("demo", help="run finrisk end to end", description=text)
    for flag, value, what in (
        ("--train-users", _DEFAULTS.train_users, "customers in the training data"),
        ("--train-days", _DEFAULTS.train_days, "days of training history"),
        ("--stream-users", _DEFAULTS.stream_users, "new customers streamed through Kafka"),
        ("--stream-days", _DEFAULTS.stream_days, "days of streamed history"),
        ("--seed", _DEFAULTS.seed, "generator seed (the stream uses seed + 1)"),
    ):
        parser.add_argument(flag, type=int, default=value, help=f"{what} (default {value})")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument(
        "--down", action="store_true", help="stop the stack and the predictor afterwards"
    )
    parser.set_defaults(handler=_demo)


def _demo(args: argparse.Namespace) -> int:
    for flag in ("train_users", "train_days", "stream_users", "stream_days"):
        if getattr(args, flag) < 1:
            raise FinriskError(f"--{flag.replace('_', '-')} must be at least 1")
    from finrisk.demo.run import run_demo
    from finrisk.demo.summary import format_summary

    options = DemoOptions(
        train_users=args.train_users,
        train_days=args.train_days,
        stream_users=args.stream_users,
        stream_days=args.stream_days,
        seed=args.seed,
        progress=not args.no_progress,
    )
    try:
        summary = run_demo(options)
    finally:
        if args.down:
            from finrisk.stack import Stack

            Stack().down()
    if args.json:
        print(json.dumps(summary.as_dict(), indent=2))
    else:
        print(format_summary(summary))
    return 0
