"""The benchmarks' history files: a run a line, read back, shown as tables, summarised; and the
docs, whose tables are generated from the files in benchmarks/."""

from __future__ import annotations

import itertools
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from finrisk.bench import bridge, drift, history, serving
from finrisk.bench.history import AT, COMMIT, LOAD, Column
from finrisk.bench.summary import summary_table
from finrisk.cli import build_parser, main
from finrisk.errors import FinriskError

TINY = ["--users", "15", "--days", "8", "--seed", "3", "--repeats", "1"]
ROOT = Path(__file__).resolve().parents[2]


def _record(path: Path, figure: float) -> None:
    history.record(
        path, command=["finrisk", "x"], settings={"n": 1}, figures={"f": figure}, load=0.5
    )


def test_each_run_is_one_line_saying_when_what_and_on_which_code(tmp_path: Path) -> None:
    path = tmp_path / "new" / "x.jsonl"
    _record(path, 1.0)
    _record(path, 2.0)
    assert len(path.read_bytes().splitlines()) == 2
    first, second = history.read(path)
    assert first["at"].endswith("+00:00") and first["command"] == ["finrisk", "x"]
    assert (first["settings"], first["figures"]) == ({"n": 1}, {"f": 1.0})
    assert first["load_average_1m"] == 0.5 and second["figures"] == {"f": 2.0}
    assert first["commit"] == history.commit(path)  # this checkout's


def _git(where: Path, *argv: str) -> None:
    identity = ["-c", "user.name=test", "-c", "user.email=test@example.com"]
    subprocess.run(["git", *identity, *argv], cwd=where, check=True, capture_output=True)


def test_only_changes_other_than_the_history_file_make_the_commit_dirty(tmp_path: Path) -> None:
    for name in ("code.py", "runs.jsonl"):
        (tmp_path / name).write_text("one\n")
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-q", "-m", "start")
    clean = history.commit(tmp_path / "runs.jsonl", tmp_path)
    assert clean is not None and not clean.endswith("+")
    (tmp_path / "runs.jsonl").write_text("two\n")
    assert history.commit(tmp_path / "runs.jsonl", tmp_path) == clean
    (tmp_path / "code.py").write_text("two\n")
    assert history.commit(tmp_path / "runs.jsonl", tmp_path) == clean + "+"


def test_outside_git_a_run_has_no_commit(tmp_path: Path) -> None:
    assert history.commit(tmp_path / "runs.jsonl", tmp_path) is None


def test_a_line_that_is_not_json_is_named(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    _record(path, 1.0)
    with path.open("a") as out:
        out.write("{half\n")
    with pytest.raises(FinriskError, match=r"x\.jsonl, line 2"):
        history.read(path)
    with pytest.raises(FinriskError, match="no such benchmark history file"):
        history.read(tmp_path / "missing.jsonl")


def test_the_table_shows_the_latest_runs_in_the_given_columns(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    for figure in (1.0, 2.0, 3.0):
        _record(path, figure)
    columns = (AT, COMMIT, Column("f", lambda run: f"{run['figures']['f']:g}"), LOAD)
    lines = history.table(history.read(path), columns, last=2).splitlines()
    assert lines[:2] == ["| run (UTC) | commit | f | load |", "|---|---|---|---|"]
    assert [line.split(" | ")[2] for line in lines[2:]] == ["2", "3"]
    assert history.table([], columns) == "No run recorded yet.\n"


def test_bench_features_records_its_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "features.jsonl"
    assert main(["bench", "features", *TINY, "--record", str(path)]) == 0
    printed = json.loads(capsys.readouterr().out)
    (run,) = history.read(path)
    assert run["command"] == ["finrisk", "bench", "features", *TINY, "--record", str(path)]
    assert run["settings"] == {
        "users": 15, "days": 8, "seed": 3, "repeats": 1, "micro_batch": 2_000,
        "one_at_a_time": 10_000,
    }  # fmt: skip
    assert run["figures"]["online_tx_per_s"] == printed["online"]["tx_per_s"]
    assert run["figures"]["transactions"] == printed["data"]["transactions"]
    assert run["load_average_1m"] == printed["machine"]["load_average_1m"]
    assert main(["bench", "features", "--history", str(path)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].startswith("| run (UTC) | commit | transactions | batch tx/s |")
    assert len(table) == 3


def test_history_of_a_benchmark_never_run_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "serving.jsonl").touch()
    assert main(["bench", "serving", "--history", str(tmp_path / "serving.jsonl")]) == 0
    assert capsys.readouterr().out == "No run recorded yet.\n"


def test_the_summary_shows_each_benchmarks_latest_run_beside_the_alternative(
    tmp_path: Path,
) -> None:
    assert main(["bench", "features", *TINY, "--record", str(tmp_path / "features.jsonl")]) == 0
    (tmp_path / "serving.jsonl").touch()
    bridge = (ROOT / "benchmarks" / "bridge.jsonl").read_text()
    (tmp_path / "bridge.jsonl").write_text(bridge)
    (tmp_path / "drift.jsonl").touch()
    pipeline_runs = (ROOT / "benchmarks" / "pipeline.jsonl").read_text()
    (tmp_path / "pipeline.jsonl").write_text(pipeline_runs)
    lines = summary_table(tmp_path).splitlines()
    # header, rule; features 2 rows, serving 1, bridge 4 (monitoring on and off, REST and
    # gRPC), drift 1, pipeline 3 (memory and time beside pandas, the SQL path's memory at both
    # sizes)
    assert len(lines) == 2 + 2 + 1 + 4 + 1 + 3
    features_row, online_row, serving_row, bridge_row = lines[2], lines[3], lines[4], lines[5]
    assert lines[9].startswith("| `finrisk bench drift` | no run recorded yet")
    assert features_row.startswith("| `finrisk bench features` | ")
    assert "pandas" in features_row and features_row.endswith("x |")
    assert online_row.startswith("|  |  | online") and "one transaction per call" in online_row
    assert "no run recorded yet" in serving_row and serving_row.endswith("| - | - | - |")
    latest = history.read(tmp_path / "bridge.jsonl")[-1]["figures"]
    assert f"{latest['tx_per_s']:,.0f} tx/s" in bridge_row
    assert f"{latest['one_call_per_message_tx_per_s']:,.0f} tx/s" in bridge_row
    memory_row, seconds_row, growth_row = lines[10:13]
    assert memory_row.startswith("| `finrisk bench pipeline` | ")
    pipeline = history.read(tmp_path / "pipeline.jsonl")[-1]["figures"]
    largest = max(int(key.split("_")[1]) for key in pipeline)
    smallest = min(int(key.split("_")[1]) for key in pipeline)
    sql, pandas = pipeline[f"bigquery_{largest}"], pipeline[f"pandas_{largest}"]
    assert f"{sql['peak_mb']:,.0f} MB | pandas path: {pandas['peak_mb']:,.0f} MB" in memory_row
    assert f"{sql['seconds']:,.0f} s | pandas path: {pandas['seconds']:,.0f} s" in seconds_row
    growth = sql["peak_mb"] / pipeline[f"bigquery_{smallest}"]["peak_mb"]
    assert growth_row.endswith(f"| {growth:.3g}x |")


def _serving_result() -> dict[str, Any]:
    """The shape of `finrisk bench serving`'s output (made-up values: the run needs MLflow)."""

    def per_batch(p50_ms: float, rows_per_s: float) -> dict[str, Any]:
        return {
            "batch_1": {"p50_ms": p50_ms, "p99_ms": 2 * p50_ms, "rows_per_s": 1000 / p50_ms},
            "batch_1000": {"p50_ms": 10.0, "p99_ms": 20.0, "rows_per_s": rows_per_s},
        }

    return {
        "model": {
            "uri": "models:/m/1",
            "kind": "detector",
            "class": "Detector",
            "features": 28,
            "trained_for_this_run": True,
            "tracking_uri": "http://127.0.0.1:5000",
        },
        "setup": {"cpus": 2, "load_average_1m": 0.7},
        "max_abs_score_diff_finrisk_vs_mlflow": 0.0,
        "in_process": {"compiled": per_batch(0.01, 300_000.0)},
        "finrisk_v2": per_batch(0.8, 150_000.0),
        "finrisk_v2_binary": per_batch(0.5, 200_000.0),
        "finrisk_grpc": per_batch(0.25, 250_000.0),
        "finrisk_v1": per_batch(0.9, 120_000.0),
        "mlflow": per_batch(6.4, 30_000.0),
        "summary": {},
    }


def test_a_serving_run_is_kept_and_shown_beside_mlflow() -> None:
    result = _serving_result()
    args = build_parser().parse_args(["bench", "serving", "--batches", "1,1000"])
    run = {
        "at": "2026-12-07T00:00:00+00:00",
        "commit": "abc1234",
        "command": ["finrisk", "bench", "serving"],
        "settings": serving.run_settings(args, (1, 1000), result["model"]),
        "figures": serving.figures(result),
        "load_average_1m": result["setup"]["load_average_1m"],
    }
    assert run["settings"]["model_uri"] == "models:/m/1" and run["settings"]["batches"] == [1, 1000]
    assert run["figures"]["mlflow"]["batch_1000"]["rows_per_s"] == 30_000.0
    row = history.table([run], serving.HISTORY_COLUMNS).splitlines()[2]
    cells = (
        "2026-12-07 00:00 | abc1234 | Detector | 0.8 ms | 0.5 ms | 0.25 ms | 6.4 ms | 1,000 "
        "| 150,000 | 200,000 | 250,000 | 30,000"
    )
    assert row == f"| {cells} | 0.7 |"
    latency, throughput, grpc_latency, grpc_throughput = serving.headlines(run)
    assert (latency.ours, latency.theirs) == (0.8, 6.4)
    assert (throughput.ours, throughput.theirs) == (150_000.0, 30_000.0)
    assert (grpc_latency.ours, grpc_latency.theirs) == (0.25, 6.4)
    assert (grpc_throughput.ours, grpc_throughput.theirs) == (250_000.0, 30_000.0)


def test_a_serving_run_before_grpc_shows_no_grpc_figures() -> None:
    result = _serving_result()
    del result["finrisk_grpc"], result["finrisk_v2_binary"]
    args = build_parser().parse_args(["bench", "serving", "--batches", "1,1000"])
    figures = {k: v for k, v in result.items() if k in ("finrisk_v2", "finrisk_v1", "mlflow")}
    run = {
        "at": "2026-12-07T00:00:00+00:00",
        "commit": "abc1234",
        "settings": serving.run_settings(args, (1, 1000), result["model"]),
        "figures": figures,
        "load_average_1m": 0.7,
    }
    row = history.table([run], serving.HISTORY_COLUMNS).splitlines()[2]
    assert "| 0.8 ms | - | - | 6.4 ms |" in row
    assert serving.headlines(run)[2].ours is None


def _generated(page: str, marker: str) -> str:
    """The text of `page` between `<!-- marker: ... -->` and `<!-- /marker -->`."""
    text = (ROOT / page).read_text()
    start = text.index("\n", text.index(f"<!-- {marker}:")) + 1
    return text[start : text.index(f"<!-- /{marker} -->")]


@pytest.mark.parametrize(
    ("page", "marker", "file", "columns"),
    [
        ("docs/bridge.md", "bench-bridge-history", "bridge.jsonl", bridge.HISTORY_COLUMNS),
        ("docs/serving.md", "bench-serving-history", "serving.jsonl", serving.HISTORY_COLUMNS),
        ("docs/monitoring.md", "bench-drift-history", "drift.jsonl", drift.HISTORY_COLUMNS),
    ],
)
def test_the_docs_show_the_latest_runs_of_the_history_file(
    page: str, marker: str, file: str, columns: tuple[Column, ...]
) -> None:
    """The page's table is what `--history` makes of the benchmark's file."""
    runs = history.read(ROOT / "benchmarks" / file)
    assert _generated(page, marker) == history.table(runs, columns)


def test_the_readme_shows_the_latest_run_of_each_benchmark() -> None:
    """README.md's table is what `finrisk bench summary` makes of benchmarks/*.jsonl."""
    assert _generated("README.md", "bench-summary") == summary_table(ROOT / "benchmarks")
    assert history.read(ROOT / "benchmarks" / "features.jsonl")  # measured, not only promised


def test_in_process_calls_score_fresh_rows_each_time() -> None:
    from finrisk.bench.serving import IN_PROCESS_WARMUP, _fresh_spans, _time_fresh

    spans = _fresh_spans(n_rows=1000, batch=100, calls=12)
    assert all(stop - start == 100 and start >= 0 and stop <= 1000 for start, stop in spans)
    # Consecutive calls never repeat the rows of the call before (the pool wraps round).
    assert all(a != b for a, b in itertools.pairwise(spans))
    assert spans[:3] == [(0, 100), (100, 200), (200, 300)]
    seen: list[list[int]] = []
    figures = _time_fresh(seen.append, [[k] for k in range(10)])
    assert seen == [[k] for k in range(10)]  # every input once, the warm-up ones first
    assert IN_PROCESS_WARMUP < 10 and {"p50_ms", "rows_per_s", "cpu_rows_per_s"} <= set(figures)
