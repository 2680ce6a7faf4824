"""`finrisk demo`: the whole system end to end on embedded defaults."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

from finrisk.demo.options import DemoOptions, DriftOptions
from finrisk.errors import FinriskError

_DEFAULTS = DemoOptions()
_DRIFT = DriftOptions()


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    text = (
        "start the local stack, retrain and register champions, serve them, stream new "
        "customers through Kafka and the bridge, and summarise the result"
    )
    parser = subparsers.add_parser("demo", help="run finrisk end to end", description=text)
    for flag, value, what in (
        ("--train-users", _DEFAULTS.train_users, "customers in the training data"),
        ("--train-days", _DEFAULTS.train_days, "days of training history"),
        ("--stream-days", _DEFAULTS.stream_days, "days of streamed history"),
        ("--seed", _DEFAULTS.seed, "generator seed (the stream uses seed + 1)"),
    ):
        parser.add_argument(flag, type=int, default=value, help=f"{what} (default {value})")
    parser.add_argument(
        "--stream-users",
        type=int,
        help="new customers streamed through Kafka (default "
        f"{_DEFAULTS.stream_users}; with --drift {_DRIFT.stream_users})",
    )
    parser.add_argument(
        "--drift",
        action="store_true",
        help="the closed loop instead: a stream that drifts (a new fraud pattern, a spending "
        "shift), caught by monitoring, retrained on confirmed labels, promoted, reloaded "
        "(docs/monitoring.md)",
    )
    parser.add_argument(
        "--drift-day",
        type=int,
        default=_DRIFT.drift_day,
        help=f"with --drift: the shift, days into the stream (default {_DRIFT.drift_day})",
    )
    parser.add_argument(
        "--window",
        type=int,
        default=_DRIFT.window,
        help=f"with --drift: transactions per monitoring window (default {_DRIFT.window})",
    )
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument(
        "--down",
        action="store_true",
        help="stop the stack, the predictor and the dashboard afterwards",
    )
    parser.set_defaults(handler=_demo)


def _demo(args: argparse.Namespace) -> int:
    if args.stream_users is None:
        args.stream_users = (_DRIFT if args.drift else _DEFAULTS).stream_users
    for flag in ("train_users", "train_days", "stream_users", "stream_days"):
        if getattr(args, flag) < 1:
            raise FinriskError(f"--{flag.replace('_', '-')} must be at least 1")
    if args.drift:
        from finrisk.demo import drift_summary
        from finrisk.demo.drift import run_drift_demo

        if args.drift_day < 1 or args.window < 100:
            raise FinriskError("--drift-day must be at least 1 and --window at least 100")
        drift = DriftOptions(
            train_users=args.train_users,
            train_days=args.train_days,
            stream_users=args.stream_users,
            drift_day=args.drift_day,
            window=args.window,
            seed=args.seed,
            progress=not args.no_progress,
        )
        return _run_and_show(args, lambda: run_drift_demo(drift), drift_summary.format_summary)
    from finrisk.demo import summary
    from finrisk.demo.run import run_demo

    options = DemoOptions(
        train_users=args.train_users,
        train_days=args.train_days,
        stream_users=args.stream_users,
        stream_days=args.stream_days,
        seed=args.seed,
        progress=not args.no_progress,
    )
    return _run_and_show(args, lambda: run_demo(options), summary.format_summary)


def _run_and_show(
    args: argparse.Namespace, run: Callable[[], Any], show: Callable[[Any], str]
) -> int:
    """Run a demo, the stack stopped after it with --down; print its summary (or JSON)."""
    try:
        result = run()
    finally:
        if args.down:
            from finrisk.stack import Stack

            Stack().down()
    if args.json:
        print(json.dumps(result.as_dict(), indent=2, default=str))
    else:
        print(show(result))
    return 0
