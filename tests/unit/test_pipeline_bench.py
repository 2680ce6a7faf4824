"""`finrisk bench pipeline` prints each stage's time and peak memory per path (the pandas path
here; the BigQuery path needs the emulator)."""

from __future__ import annotations

import json

import pytest

from finrisk.cli import main


def test_bench_pipeline_prints_each_stage(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["bench", "pipeline", "--transactions", "3000", "--source", "pandas"])
    assert code == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    (run,) = report["runs"]
    assert run["source"] == "pandas" and run["rows_read"] == run["transactions"] > 2000
    for stage in ("ingest", "validate", "features"):
        assert run[stage]["seconds"] > 0 and run[stage]["peak_mb"] > 0
    assert "features MB" in captured.err  # the side-by-side table


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--transactions", "many"], "--transactions"),
        (["--transactions", "0"], "--transactions"),
        (["--sample-share", "0"], "--sample-share"),
        (["--sample-rows", "-1"], "--sample-rows"),
    ],
)
def test_bench_pipeline_rejects_bad_flags(
    flags: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["bench", "pipeline", *flags]) == 2
    assert named in capsys.readouterr().err
