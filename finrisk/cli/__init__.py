"""The `finrisk` command, assembled from the distributions that are installed.

Each distribution in this repository names its sub-commands in its pyproject.toml, under the
`finrisk.commands` entry-point group, as a `register(subparsers)` function: the runtime images
get `serve` and `bridge` (serving) or `pipeline` (pipelines) without the local stack, demo and
benchmarks (devtools), and this module imports none of them.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib.metadata import entry_points

from finrisk.errors import FinriskError
from finrisk.version import __version__

# Each entry: name = "module:register", where register(subparsers) adds sub-commands.
COMMANDS_GROUP = "finrisk.commands"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="finrisk",
        description="Transaction anomaly detection and financial risk scoring.",
    )
    parser.add_argument("--version", action="version", version=f"finrisk {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in sorted(entry_points(group=COMMANDS_GROUP), key=lambda entry: entry.name):
        command.load()(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    args.argv = ["finrisk", *argv]  # the command line as given, for the runs a command records
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
