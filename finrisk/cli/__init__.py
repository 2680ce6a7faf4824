"""The `finrisk` command: one sub-command module per area, each with a `register` function."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from finrisk import __version__
from finrisk.errors import FinriskError

# Modules under finrisk.cli that add sub-commands; each defines register(subparsers).
COMMAND_MODULES = (
    "stack",
    "bench",
    "data",
    "bridge",
    "pipeline",
    "demo",
    "serve",
    "train",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="finrisk",
        description="Transaction anomaly detection and financial risk scoring.",
    )
    parser.add_argument("--version", action="version", version=f"finrisk {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(f"finrisk.cli.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result: int | None = args.handler(args)
    except FinriskError as exc:
        print(f"finrisk: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("finrisk: interrupted", file=sys.stderr)
        return 130
    return result or 0


if __name__ == "__main__":
    sys.exit(main())
