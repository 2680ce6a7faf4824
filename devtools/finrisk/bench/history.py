"""The benchmarks' history: one JSON object a line per recorded run, and Markdown tables of it.

A run is {"at": UTC time, "commit": the checkout's short hash ("+" when the code had
uncommitted changes), "command": the argv that ran, "settings": the parameters, "figures":
the measured values, "load_average_1m": the machine's load as the run started}. Runs are data;
the docs show tables generated from them, and unit tests hold the docs to the files. (The
bridge's runs of 2026-12-06 were recorded before the command and most settings were: their
"command" is null and their "settings" hold what they did record.)
"""

from __future__ import annotations

import argparse
import os
import subprocess
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from finrisk.errors import FinriskError

Run = dict[str, Any]

NO_RUN = "no run recorded yet"


@dataclass(frozen=True)
class Column:
    """A column of a history table: its header, and its cell for a run."""

    header: str
    cell: Callable[[Run], str]


@dataclass(frozen=True)
class Headline:
    """A figure of a run beside the alternative's, measured in the same run (None: not
    measured)."""

    measures: str
    ours: float | None
    unit: str
    alternative: str = ""
    theirs: float | None = None


def when(run: Run) -> str:
    return str(run["at"])[:16].replace("T", " ")


# The columns every history table starts and ends with.
AT = Column("run (UTC)", when)
COMMIT = Column("commit", lambda run: run.get("commit") or "-")
LOAD = Column("load", lambda run: f"{run['load_average_1m']:g}")


def load_average_1m() -> float:
    return round(os.getloadavg()[0], 2)


def add_flags(parser: argparse.ArgumentParser, example: str) -> None:
    """--record and --history, `example` being the benchmark's file in the repository."""
    parser.add_argument(
        "--record",
        type=Path,
        metavar="FILE",
        help=f"append the run as one JSON line to FILE (the benchmark's history: {example})",
    )
    parser.add_argument(
        "--history",
        type=Path,
        metavar="FILE",
        help="print the latest runs recorded in FILE as a Markdown table, and measure nothing",
    )


def record(
    path: Path,
    *,
    command: Sequence[str],
    settings: Mapping[str, Any],
    figures: Mapping[str, Any],
    load: float,
) -> None:
    """Append a run measured now by the code of this checkout (the history file's own change
    does not count as a change of the code)."""
    run = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": commit(path),
        "command": list(command),
        "settings": dict(settings),
        "figures": dict(figures),
        "load_average_1m": load,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("ab") as out:
        out.write(orjson.dumps(run) + b"\n")


def read(path: Path) -> list[Run]:
    """The runs of a history file, oldest first."""
    if not path.is_file():
        raise FinriskError(f"{path}: no such benchmark history file")
    runs = []
    for number, line in enumerate(path.read_bytes().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            runs.append(orjson.loads(line))
        except orjson.JSONDecodeError as exc:
            raise FinriskError(f"{path}, line {number}: not a JSON object ({exc})") from None
    return runs


def table(runs: Sequence[Run], columns: Sequence[Column], last: int = 10) -> str:
    """The latest `last` runs as a Markdown table, one row a run."""
    if not runs:
        return "No run recorded yet.\n"
    return markdown(
        [column.header for column in columns],
        ([column.cell(run) for column in columns] for run in runs[-last:]),
    )


def markdown(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def commit(history: Path, checkout: Path = Path(__file__).parent) -> str | None:
    """The short hash of the checkout (by default, the one this code runs from), "+" when its
    tracked files other than `history` have uncommitted changes; None outside git."""
    try:
        top, short = _git(checkout, "rev-parse", "--show-toplevel", "--short", "HEAD").splitlines()
        status = _git(checkout, "status", "--porcelain", "-z", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):  # no git, not a checkout, no commit
        return None
    # Porcelain entries are "XY path", paths from the top of the checkout.
    changed = {(Path(top) / entry[3:]).resolve() for entry in status.split("\0") if entry}
    return short + ("+" if changed - {history.resolve()} else "")


def _git(where: Path, *argv: str) -> str:
    done = subprocess.run(
        ["git", *argv], cwd=where, capture_output=True, text=True, timeout=10, check=True
    )
    return done.stdout
