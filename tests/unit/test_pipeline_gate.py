"""The promotion gate's decision: floors, margins, metric direction, missing champions; the
shadow promotion and the live verdict on shadowed traffic."""

from __future__ import annotations

import pytest

from finrisk.errors import FinriskError
from finrisk.gate import (
    DETECTOR,
    GATE_METRICS,
    KEEP,
    PROMOTE,
    RISK,
    SHADOW,
    GatePolicy,
    LiveEvidence,
    decide,
    decide_live,
    live_verdict,
)
from finrisk.outcomes import Outcomes


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
        ({"promotion": "canary"}, r"promotion 'canary' must be one of \['offline', 'shadow'\]"),
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


def test_shadow_promotion_shadows_a_winner_beside_a_champion() -> None:
    shadow = GatePolicy(promotion="shadow")
    decision = decide(metrics(0.81, 0.72), metrics(0.8, 0.7), shadow)
    assert decision.action == SHADOW and not decision.promote
    assert decision.reason.startswith("shadow the challenger: detector pr_auc 0.8100 beats")
    assert decision.to_markdown().startswith("# Gate: Shadow the challenger")
    # Nothing serves yet: no traffic to shadow against, the first pair is promoted.
    assert decide(metrics(0.81, 0.72), None, shadow).action == PROMOTE
    # A loser is kept either way.
    assert decide(metrics(0.7, 0.72), metrics(0.8, 0.7), shadow).action == KEEP


def test_realized_ratios_are_defined_once() -> None:
    counts = Outcomes(scored=1000, labelled=300, confirmed_fraud=40, alerted=50, true_alerts=30)
    assert counts.recall == 0.75 and counts.alert_precision == 0.6
    assert counts.f1 == pytest.approx(2 * 0.75 * 0.6 / (0.75 + 0.6))  # the usual F1
    assert counts.metric("f1") == counts.f1
    empty = Outcomes(10, 0, 0, 0, 0)
    assert (empty.recall, empty.alert_precision, empty.f1) == (None, None, None)
    with pytest.raises(ValueError, match="'accuracy' is not a realized metric"):
        counts.metric("accuracy")


def _evidence(champion: tuple[int, int], challenger: tuple[int, int], frauds: int) -> LiveEvidence:
    """(alerted, true_alerts) of each on the same 5,000 shadowed transactions."""
    return LiveEvidence(
        "3",
        "4",
        Outcomes(5000, 900, frauds, *champion),
        Outcomes(5000, 900, frauds, *challenger),
    )


def test_live_verdict_compares_both_on_the_same_traffic() -> None:
    better = _evidence((50, 20), (52, 36), frauds=40)
    verdict = live_verdict(better, metric="f1", min_frauds=30, min_improvement=0.0)
    assert verdict.passed and verdict.kind == DETECTOR and verdict.metric == "live f1"
    assert verdict.challenger == pytest.approx(72 / 92) and verdict.champion == pytest.approx(
        40 / 90
    )
    assert verdict.floor is None
    assert "on the same 5,000 shadowed transactions (900 labelled, 40 confirmed frauds)" in (
        verdict.reason
    )
    # The same evidence against a stricter margin, and the other way round.
    assert not live_verdict(better, metric="f1", min_frauds=30, min_improvement=0.5).passed
    worse = _evidence((52, 36), (50, 20), frauds=40)
    assert not live_verdict(worse, metric="recall", min_frauds=30, min_improvement=0.0).passed
    # Alerting on everything wins recall, not F1 or precision.
    noisy = _evidence((50, 20), (5000, 40), frauds=40)
    assert live_verdict(noisy, metric="recall", min_frauds=30, min_improvement=0.0).passed
    assert not live_verdict(noisy, metric="f1", min_frauds=30, min_improvement=0.0).passed
    assert not live_verdict(
        noisy, metric="alert_precision", min_frauds=30, min_improvement=0.0
    ).passed


def test_live_verdict_waits_for_enough_confirmed_frauds() -> None:
    verdict = live_verdict(
        _evidence((5, 2), (5, 5), frauds=6), metric="f1", min_frauds=30, min_improvement=0.0
    )
    assert not verdict.passed and not verdict.judged
    assert verdict.reason.startswith("not judged yet: 6 confirmed frauds < 30")
    decision = decide_live("offline reason", verdict)
    assert decision.action == KEEP and decision.reason.startswith("keep shadowing: live:")
    # Judged and lost: the champion stays for good.
    lost = live_verdict(
        _evidence((52, 36), (50, 20), frauds=40), metric="f1", min_frauds=30, min_improvement=0.0
    )
    assert lost.judged and not lost.passed
    assert decide_live("offline", lost).reason.startswith("keep the champion: live:")


def test_a_tie_promotes_nothing_with_the_default_margin() -> None:
    from finrisk.settings import MonitorSettings

    margin = MonitorSettings().live_min_improvement
    silent = _evidence((0, 0), (0, 0), frauds=40)  # neither ever alerts: F1 0 and 0
    assert not live_verdict(silent, metric="f1", min_frauds=30, min_improvement=margin).passed


def test_a_live_pass_promotes_with_both_reasons() -> None:
    verdict = live_verdict(
        _evidence((50, 20), (52, 36), frauds=40), metric="f1", min_frauds=30, min_improvement=0.0
    )
    decision = decide_live("shadow the challenger: detector pr_auc 0.81 beats ...", verdict)
    assert decision.promote
    assert decision.reason.startswith("promote the challenger: live: live f1 0.7826 beats")
    assert decision.reason.endswith(
        "offline: shadow the challenger: detector pr_auc 0.81 beats ..."
    )
    assert "| detector | live f1 | 0.7826 | 0.4444 | none | yes |" in decision.to_markdown()
    with pytest.raises(FinriskError, match="live metric 'auc' must be one of"):
        live_verdict(_evidence((1, 1), (1, 1), 40), metric="auc", min_frauds=1, min_improvement=0)
