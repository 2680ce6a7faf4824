"""Time and peak memory of the pipeline's data stages, pandas path against BigQuery SQL path:
what `finrisk bench pipeline` prints.

For each size, synthetic transactions (about that many: users x days) are written where each
path reads them: a Parquet file for the pandas path (ingest from a URI, features in pandas on
the whole table), a table of the local BigQuery emulator for the SQL path (features computed
by the emulator, `sample_share` of the users read back, lowered to about `sample_rows`
transactions). The stages (ingest, validate,
features) then run in a fresh process per size and path, so that the figures are the
pipeline's alone: that process never holds the generated table. Peak memory is the resident
high-water mark (VmHWM) of that process, reset before each stage (/proc/self/clear_refs), so
each stage's figure is its own. The emulator's own memory is not the pipeline's and is not
counted (on Google's BigQuery it is slots, not the task's memory).
"""

from __future__ import annotations

import sys
import tempfile
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from finrisk.bench.history import AT, COMMIT, LOAD, Column, Headline, Run, load_average_1m

PANDAS = "pandas"
BIGQUERY = "bigquery"
SOURCES: tuple[str, ...] = (PANDAS, BIGQUERY)
STAGES: tuple[str, ...] = ("ingest", "validate", "features")
DAYS = 30


def _log(message: str) -> None:
    print(f"bench pipeline: {message}", file=sys.stderr, flush=True)


def _peak_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _reset_peak() -> None:
    # Writing 5 resets the process's resident high-water mark (Linux >= 4.0).
    Path("/proc/self/clear_refs").write_text("5")


def run_stages(request_fields: dict[str, Any], env: dict[str, str], work: str) -> dict[str, Any]:
    """In a fresh process: ingest, validate and features, each's wall time and peak RSS."""
    import os

    from finrisk.retraining.data import IngestRequest, ingest, validate
    from finrisk.retraining.training import build_features

    os.environ.update(env)
    folder = Path(work)
    actions: dict[str, Any] = {
        "ingest": lambda: ingest(IngestRequest(**request_fields), folder / "raw"),
        "validate": lambda: validate(folder / "raw", folder / "dataset"),
        "features": lambda: build_features(
            folder / "dataset", folder / "tx.parquet", folder / "users.parquet"
        ),
    }
    figures: dict[str, Any] = {}
    for stage in STAGES:
        _reset_peak()
        started = time.perf_counter()
        result = actions[stage]()
        figures[stage] = {
            "seconds": round(time.perf_counter() - started, 3),
            "peak_mb": round(_peak_mb(), 1),
        }
        if stage == "ingest":
            figures["rows_read"] = int(result["rows"])
            figures["read"] = result.get("sql_features", {}).get("read", "file")
    return figures


def _users_for(transactions: int, seed: int) -> int:
    """Users that give about `transactions` in DAYS days, from a small generation's rate."""
    from finrisk.synthetic import generate

    probe = 200
    per_user = len(generate(probe, DAYS, seed)[0]) / probe
    return max(1, round(transactions / per_user))


def _in_child(fields: dict[str, Any], env: dict[str, str], work: str) -> dict[str, Any]:
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(run_stages, fields, env, work).result()


def run(
    sizes: list[int],
    sources: list[str],
    seed: int,
    sample_share: float,
    sample_rows: int,
    page_size: int,
) -> dict[str, Any]:
    """Every size through every source; the JSON-able figures."""
    from finrisk.bigquery_client import bigquery_client
    from finrisk.deploy import cluster
    from finrisk.settings import Settings
    from finrisk.stack import SERVICE_TYPES
    from finrisk.stack.tables import HISTORY_COLUMNS, USER_COLUMNS, load_table
    from finrisk.synthetic import generate

    load = load_average_1m()
    settings = Settings()
    runs: list[dict[str, Any]] = []
    emulator = SERVICE_TYPES["bigquery"](settings) if BIGQUERY in sources else None
    started = emulator.up() if emulator is not None else False
    try:
        for size in sizes:
            users = _users_for(size, seed)
            _log(f"generating {users} users x {DAYS} days (about {size:,} transactions)")
            transactions, user_table, _ = generate(users, DAYS, seed)
            with tempfile.TemporaryDirectory(prefix="finrisk-bench-pipeline-") as tmp:
                for source in sources:
                    work = Path(tmp) / source
                    work.mkdir()
                    figure: dict[str, Any] = {"transactions": len(transactions), "source": source}
                    if source == PANDAS:
                        data = work / "input"
                        data.mkdir()
                        transactions.to_parquet(data / "transactions.parquet", index=False)
                        user_table.to_parquet(data / "users.parquet", index=False)
                        fields: dict[str, Any] = {"source": "uri", "uri": str(data)}
                        env: dict[str, str] = {}
                    else:
                        bq = settings.bigquery
                        client = bigquery_client(bq.project, bq.endpoint)
                        dataset = f"{bq.project}.bench_{uuid.uuid4().hex[:10]}"
                        client.create_dataset(dataset)
                        begin = time.perf_counter()
                        load_table(client, f"{dataset}.tx", transactions, HISTORY_COLUMNS)
                        load_table(client, f"{dataset}.users", user_table, USER_COLUMNS)
                        figure["table_load_seconds"] = round(time.perf_counter() - begin, 3)
                        fields = {
                            "source": "bigquery",
                            "bigquery_table": f"{dataset}.tx",
                            "bigquery_users_table": f"{dataset}.users",
                            "bigquery_sample_share": sample_share,
                            "bigquery_sample_rows": sample_rows,
                            "bigquery_page_size": page_size,
                        }
                        # REST pages, not the emulator's Read API: a sample of ~100k rows is
                        # past its 11 MB message limit, and once it has refused a message its
                        # Read API hangs every later read until restarted.
                        env = {cluster.BIGQUERY_ENDPOINT_KEY: bq.endpoint}
                    _log(f"{source}: {len(transactions):,} transactions")
                    try:
                        figure.update(_in_child(fields, env, str(work)))
                    finally:
                        if source == BIGQUERY:
                            client.delete_dataset(dataset, delete_contents=True)
                    figure["peak_mb"] = max(figure[stage]["peak_mb"] for stage in STAGES)
                    figure["seconds"] = round(sum(figure[stage]["seconds"] for stage in STAGES), 3)
                    runs.append(figure)
                    _log(f"{source}: {figure['seconds']} s, peak {figure['peak_mb']} MB")
            del transactions, user_table
    finally:
        if started and emulator is not None:
            emulator.down()
    return {
        "sample_share": sample_share,
        "sample_rows": sample_rows,
        "page_size": page_size,
        "days": DAYS,
        "runs": runs,
        "machine": {"load_average_1m": load},
    }


def table(result: dict[str, Any]) -> str:
    """Both paths side by side: per size, each stage's seconds and peak MB."""
    header = f"{'transactions':>12}  {'source':<8}" + "".join(
        f"  {stage + ' s':>12}  {stage + ' MB':>12}" for stage in STAGES
    )
    lines = [header]
    for run in result["runs"]:
        cells = "".join(
            f"  {run[stage]['seconds']:>12}  {run[stage]['peak_mb']:>12}" for stage in STAGES
        )
        lines.append(f"{run['transactions']:>12,}  {run['source']:<8}{cells}")
    return "\n".join(lines) + "\n"


def figures(result: dict[str, Any]) -> dict[str, Any]:
    """The record's figures: per source and size, seconds and peak MB."""
    return {
        f"{run['source']}_{run['transactions']}": {
            "seconds": run["seconds"],
            "peak_mb": run["peak_mb"],
            "rows_read": run["rows_read"],
        }
        for run in result["runs"]
    }


def _peaks(run: Run) -> str:
    return ", ".join(f"{key} {value['peak_mb']:g} MB" for key, value in run["figures"].items())


HISTORY_COLUMNS = (AT, COMMIT, Column("peak memory per path and size", _peaks), LOAD)


COMPARES = "peak memory and time of ingest to features, BigQuery SQL path against pandas"


def _sizes(run: Run, source: str) -> dict[int, dict[str, Any]]:
    """The run's figures of `source`, by transactions (keys are `<source>_<transactions>`)."""
    prefix = f"{source}_"
    return {
        int(key[len(prefix) :]): value
        for key, value in run["figures"].items()
        if key.startswith(prefix)
    }


def headlines(run: Run) -> list[Headline]:
    """A run's figures beside their alternatives, for the summary of every benchmark: at the
    largest size, the SQL path's peak memory and time beside the pandas path's, and how the
    SQL path's peak grows from the smallest size (the issue's target: at most 1.5x)."""
    ours, theirs = _sizes(run, BIGQUERY), _sizes(run, PANDAS)
    sizes = sorted(ours or theirs)
    if not sizes:
        return []
    largest, smallest = sizes[-1], sizes[0]
    mine, other = ours.get(largest), theirs.get(largest)
    read = f", {mine['rows_read']:,} read back" if mine else ""
    rows = [
        Headline(
            f"peak memory, {largest:,} transactions (SQL path{read})",
            mine["peak_mb"] if mine else None,
            "MB",
            "pandas path",
            other["peak_mb"] if other else None,
        ),
        Headline(
            f"seconds, ingest to features, {largest:,} transactions",
            mine["seconds"] if mine else None,
            "s",
            "pandas path",
            other["seconds"] if other else None,
        ),
    ]
    if mine and smallest != largest and smallest in ours:
        rows.append(
            Headline(
                f"SQL path's peak memory at {largest:,} transactions",
                mine["peak_mb"],
                "MB",
                f"at {smallest:,}",
                ours[smallest]["peak_mb"],
            )
        )
    return rows
