"""The latest recorded run of every benchmark in one Markdown table, each figure beside the
alternative measured in the same run: what README.md shows, and `finrisk bench summary` prints."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from finrisk.bench import bridge, drift, features, history, pipeline, serving
from finrisk.bench.history import Headline, Run

# (sub-command, its history file, what it compares, its run's headline figures)
BENCHMARKS: tuple[tuple[str, str, str, Callable[[Run], list[Headline]]], ...] = (
    ("features", "features.jsonl", features.COMPARES, features.headlines),
    ("serving", "serving.jsonl", serving.COMPARES, serving.headlines),
    ("bridge", "bridge.jsonl", bridge.COMPARES, bridge.headlines),
    ("drift", "drift.jsonl", drift.COMPARES, drift.headlines),
    ("pipeline", "pipeline.jsonl", pipeline.COMPARES, pipeline.headlines),
)

HEADERS = (
    "benchmark", "latest run (UTC), commit, load", "measures", "finrisk", "alternative, same run",
    "finrisk ÷ alternative",
)  # fmt: skip


def summary_table(directory: Path) -> str:
    """The table of the history files in `directory`."""
    rows: list[list[str]] = []
    for name, file, compares, headlines in BENCHMARKS:
        runs = history.read(directory / file)
        benchmark = f"`finrisk bench {name}`"
        if not runs:
            rows.append([benchmark, history.NO_RUN, compares, "-", "-", "-"])
            continue
        latest = runs[-1]
        run = f"{history.when(latest)}, {history.COMMIT.cell(latest)}, "
        run += f"load {history.LOAD.cell(latest)}"
        for index, headline in enumerate(headlines(latest)):
            named = index == 0  # the run's first row names the benchmark and the run
            rows.append([benchmark if named else "", run if named else "", *_cells(headline)])
    return history.markdown(HEADERS, rows)


def _cells(headline: Headline) -> list[str]:
    ours, theirs = headline.ours, headline.theirs
    alternative = headline.alternative or "-"
    if theirs is not None:
        alternative += f": {_figure(theirs, headline.unit)}"
    ratio = "-" if ours is None or not theirs else f"{ours / theirs:.3g}x"
    return [headline.measures, _figure(ours, headline.unit), alternative, ratio]


def _figure(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    # Three significant digits for latencies: some are below a millisecond.
    return f"{value:.3g} ms" if unit == "ms" else f"{value:,.0f} {unit}"
