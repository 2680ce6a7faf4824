"""`finrisk bench features` prints JSON figures for the data it generated."""

from __future__ import annotations

import json

import pytest

from finrisk.cli import main


def test_bench_features_prints_json(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        ["bench", "features", "--users", "15", "--days", "8", "--seed", "3", "--repeats", "1"]
    )
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["data"]["users"] == 15
    assert report["data"]["transactions"] > 0
    for path in ("batch", "online", "alternative_pandas_rolling"):
        assert report[path]["tx_per_s"] > 0
        assert report[path]["seconds"] > 0
    assert set(report["meets_targets"]) == {"batch", "online"}


def test_bench_rejects_bad_flags(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "features", "--repeats", "0"]) == 2
    assert "--repeats" in capsys.readouterr().err
