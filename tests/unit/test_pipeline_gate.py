"""The promotion gate's decision: floors, margins, metric direction, missing champions."""

from __future__ import annotations

import pytest

from finrisk.errors import FinriskError
from finrisk.gate import DETECTOR, GATE_METRICS, RISK, GatePolicy, decide


def metrics(
    detector: float, risk: float, name_d: str = "pr_auc", name_r: str = "roc_auc"
) -> dict[str, dict[str, float]]:
    return {DETECTOR: {name_d: detector}, RISK: {name_r: risk}}


POLICY = GatePolicy(min_improvement=0.01, detector_floor=0.5, risk_floor=0.6)


def test_first_challenger_is_promoted_on_floors_alone() -> None:
    decision = decide(metrics(0.8, 0.7), None, POLICY)
    assert decision.promote
    assert decision.reason.startswith("promote the challenger")
    assert all(v.champion is None and v.passed for v in decision.verdicts)
    assert "no champion yet" in decision.reason


def test_challenger_below_a_floor_is_kept_out_even_without_champion() -> None:
    decision = decide(metrics(0.45, 0.7), None, POLICY)
    assert not decision.promote
    assert decision.reason == (
        "keep the champion: detector pr_auc 0.4500 is below the floor 0.5000"
    )


def test_challenger_must_beat_the_champion_by_the_margin() -> None:
    champion = metrics(0.80, 0.70)
    assert decide(metrics(0.815, 0.715), champion, POLICY).promote
    just_short = decide(metrics(0.805, 0.75), champion, POLICY)
    assert not just_short.promote
    (failed,) = [v for v in just_short.verdicts if not v.passed]
    assert failed.kind == DETECTOR
    assert "does not beat the champion's 0.8000 by the margin 0.0100" in failed.reason


def test_both_models_must_pass() -> None:
    decision = decide(metrics(0.9, 0.65), metrics(0.8, 0.70), POLICY)
    assert not decision.promote
    assert [v.passed for v in decision.verdicts] == [True, False]
    assert decision.reason.startswith("keep the champion: risk roc_auc")


def test_zero_margin_accepts_a_tie_and_a_negative_one_a_small_regression() -> None:
    tie = GatePolicy(min_improvement=0.0, detector_floor=0.0, risk_floor=0.0)
    assert decide(metrics(0.8, 0.7), metrics(0.8, 0.7), tie).promote
    lenient = GatePolicy(min_improvement=-0.02, detector_floor=0.0, risk_floor=0.0)
    assert decide(metrics(0.79, 0.69), metrics(0.8, 0.7), lenient).promote
    assert not decide(metrics(0.77, 0.69), metrics(0.8, 0.7), lenient).promote


def test_lower_is_better_metrics_flip_both_comparisons() -> None:
    policy = GatePolicy(
        detector_metric="brier",
        risk_metric="brier",
        min_improvement=0.01,
        detector_floor=0.1,
        risk_floor=0.2,
    )
    better = metrics(0.02, 0.15, "brier", "brier")
    worse = metrics(0.05, 0.18, "brier", "brier")
    assert decide(better, worse, policy).promote
    assert not decide(worse, better, policy).promote
    above = decide(metrics(0.2, 0.15, "brier", "brier"), None, policy)
    assert not above.promote and "is above the floor 0.1000" in above.reason


def test_champion_of_one_kind_only() -> None:
    champion = {DETECTOR: {"pr_auc": 0.9}}
    decision = decide(metrics(0.85, 0.7), champion, POLICY)
    assert not decision.promote
    risk = next(v for v in decision.verdicts if v.kind == RISK)
    assert risk.passed and risk.champion is None


def test_nan_metric_never_passes() -> None:
    decision = decide(metrics(float("nan"), 0.7), None, POLICY)
    assert not decision.promote and "not a number" in decision.reason


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"detector_metric": "accuracy"}, "detector_metric 'accuracy' is not a gate metric"),
        ({"risk_metric": "f1"}, "risk_metric 'f1' is not a gate metric"),
        ({"min_improvement": float("inf")}, "min_improvement must be a finite number"),
    ],
)
def test_bad_policy_is_a_clear_error(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(FinriskError, match=message):
        GatePolicy(**kwargs)  # type: ignore[arg-type]


def test_missing_metric_names_what_there_is() -> None:
    with pytest.raises(FinriskError, match=r"the challenger detector has no 'pr_auc' metric"):
        decide({DETECTOR: {"roc_auc": 0.9}, RISK: {"roc_auc": 0.7}}, None, POLICY)
    with pytest.raises(FinriskError, match="the challenger has no risk metrics"):
        decide({DETECTOR: {"pr_auc": 0.9}}, None, POLICY)


def test_markdown_and_dict_carry_every_verdict() -> None:
    decision = decide(metrics(0.81, 0.72), metrics(0.8, 0.7), GatePolicy(detector_floor=0.5))
    data = decision.to_dict()
    assert data["promote"] is True and len(data["verdicts"]) == 2
    text = decision.to_markdown()
    assert text.startswith("# Gate: Promote the challenger")
    assert "| detector | pr_auc | 0.8100 | 0.8000 | 0.5000 | yes |" in text


def test_gate_metrics_are_ones_evaluation_reports() -> None:
    # The gate names metrics without importing evaluation (and sklearn); they must not drift.
    from finrisk.evaluation.metrics import binary_metrics

    reported = binary_metrics([0, 1, 0, 1], [0.1, 0.9, 0.2, 0.8], k=2)
    assert set(GATE_METRICS) <= set(reported)
