"""`finrisk evaluate` without --data: the default and the hard scenario side by side, each
with ours, the seed-style Isolation Forest and the default boosting on raw fields."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from finrisk.cli import main
from finrisk.cli.train import SCENARIO_METRICS
from finrisk.evaluation.split import FRAUD_LABEL_DELAY_DAYS


def test_evaluate_names_both_scenarios_and_baselines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["evaluate", "--users", "150", "--days", "45", "--out", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert result["data"]["scenarios"] == ["default", "hard"]
    assert list(result["scenarios"]) == ["default", "hard"]
    for table in result["scenarios"].values():
        for key in SCENARIO_METRICS:
            # Ours reads merchant risk from the generator's label stream; without it beside.
            assert {"ours", "baseline", "raw_hgb", "ours_no_merchant"} <= set(table[key]), key
        assert table["label_delay_days"] == FRAUD_LABEL_DELAY_DAYS
        assert table["daily_alert_budget"] == 2  # 150 customers: 10 per 1,000
    hard = result["scenarios"]["hard"]
    ratio = hard["pr_auc"]["ours"] / hard["pr_auc"]["raw_hgb"]
    assert result["targets"]["hard_pr_auc_ratio_raw_hgb"] == pytest.approx(ratio)
    # The table on stderr: one row per scenario and model, under the report's model names.
    table = captured.err
    for scenario in ("default", "hard"):
        for model in (
            "ours",
            "seed-style baseline",
            "default boosting on raw fields",
            "ours without merchant risk",
        ):
            assert f"| {scenario} | {model} |" in table
    assert "avg precision" in table and "recall@1%FPR" in table and "cost loss" in table
    # --out keeps each run; the detectors' reports carry the budget metrics and the third model.
    for run in ("anomaly", "anomaly-hard"):
        report = (tmp_path / run / "report.html").read_text()
        assert "default boosting on raw fields" in report
        assert "cost-weighted loss" in report and "daily alert budget" in report
    assert "cost-weighted loss" not in (tmp_path / "risk" / "report.html").read_text()
