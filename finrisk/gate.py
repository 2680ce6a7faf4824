"""The promotion gate: does the challenger replace the champion?

Each model (transaction detector, user risk classifier) is judged on its own primary metric,
measured on the same held-out data for challenger and champion:
- the challenger must clear the metric's absolute floor, and
- when a champion exists, beat it by at least `min_improvement` (a negative margin tolerates a
  small regression; zero accepts a tie).
The pair is promoted only when both models pass, because they are served together.

Promotion is `offline` (a pair that passes replaces the champion at once) or `shadow` (a pair
that passes beside a champion stays `challenger`, shadowed on live traffic by the bridge, and
`finrisk monitor` promotes it once the labelled live traffic agrees: `live_verdict`, weighing
the realized metric of both detectors on the same transactions next to the offline verdict).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from finrisk.errors import FinriskError
from finrisk.kinds import DETECTOR, MODEL_KINDS, RISK
from finrisk.outcomes import REALIZED_METRICS, Outcomes

# Metric name -> True when higher is better (names as finrisk.evaluation.metrics reports them).
GATE_METRICS: dict[str, bool] = {
    "roc_auc": True,
    "pr_auc": True,
    "recall_at_1pct_fpr": True,
    "precision_at_k": True,
    "brier": False,
}

Metrics = Mapping[str, Mapping[str, float]]

# What the gate decides (the values are the registered versions' `gate_decision` tags).
PROMOTE = "promote"  # replace the champion now
SHADOW = "shadow"  # passes offline; promoted on live evidence (`finrisk monitor`)
KEEP = "keep_champion"
# How a pair that passes is promoted (GatePolicy.promotion).
PROMOTIONS = ("offline", "shadow")


@dataclass(frozen=True)
class GatePolicy:
    """What a challenger must achieve; every field is a pipeline parameter."""

    detector_metric: str = "pr_auc"
    risk_metric: str = "roc_auc"
    min_improvement: float = 0.0
    detector_floor: float = 0.5
    risk_floor: float = 0.6
    promotion: str = "offline"

    def __post_init__(self) -> None:
        if self.promotion not in PROMOTIONS:
            raise FinriskError(f"promotion {self.promotion!r} must be one of {list(PROMOTIONS)}")
        for flag, metric in (
            ("detector_metric", self.detector_metric),
            ("risk_metric", self.risk_metric),
        ):
            if metric not in GATE_METRICS:
                raise FinriskError(
                    f"{flag} {metric!r} is not a gate metric; choose one of {sorted(GATE_METRICS)}"
                )
        for flag, value in (
            ("min_improvement", self.min_improvement),
            ("detector_floor", self.detector_floor),
            ("risk_floor", self.risk_floor),
        ):
            if not math.isfinite(value):
                raise FinriskError(f"{flag} must be a finite number, got {value}")

    def metric(self, kind: str) -> str:
        return {DETECTOR: self.detector_metric, RISK: self.risk_metric}[kind]

    def floor(self, kind: str) -> float:
        return {DETECTOR: self.detector_floor, RISK: self.risk_floor}[kind]


@dataclass(frozen=True)
class ModelVerdict:
    kind: str
    metric: str
    challenger: float
    champion: float | None
    floor: float | None  # none for a live verdict: it compares, it has no floor
    passed: bool
    reason: str
    judged: bool = True  # False: a live verdict still waiting for enough labels


@dataclass(frozen=True)
class GateDecision:
    action: str  # PROMOTE, SHADOW or KEEP
    reason: str
    verdicts: tuple[ModelVerdict, ...] = field(default_factory=tuple)

    @property
    def promote(self) -> bool:
        return self.action == PROMOTE

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "promote": self.promote,
            "reason": self.reason,
            "verdicts": [asdict(v) for v in self.verdicts],
        }

    def to_markdown(self) -> str:
        head = {
            PROMOTE: "Promote the challenger",
            SHADOW: "Shadow the challenger",
            KEEP: "Keep the champion",
        }[self.action]
        rows = [
            "| model | metric | challenger | champion | floor | passed | why |",
            "|---|---|---|---|---|---|---|",
        ]
        for v in self.verdicts:
            champion = "none" if v.champion is None else f"{v.champion:.4f}"
            floor = "none" if v.floor is None else f"{v.floor:.4f}"
            rows.append(
                f"| {v.kind} | {v.metric} | {v.challenger:.4f} | {champion} | {floor} "
                f"| {'yes' if v.passed else 'no'} | {v.reason} |"
            )
        return f"# Gate: {head}\n\n{self.reason}\n\n" + "\n".join(rows) + "\n"


def _value(metrics: Metrics, kind: str, metric: str, whose: str) -> float | None:
    model = metrics.get(kind)
    if model is None:
        return None
    if metric not in model:
        raise FinriskError(f"the {whose} {kind} has no {metric!r} metric (has {sorted(model)})")
    return float(model[metric])


def _verdict(
    kind: str, challenger: float, champion: float | None, policy: GatePolicy
) -> ModelVerdict:
    metric, floor = policy.metric(kind), policy.floor(kind)
    higher = GATE_METRICS[metric]
    # Work in "higher is better" units so that one comparison serves every metric.
    sign = 1.0 if higher else -1.0
    if not math.isfinite(challenger):
        passed, why = False, f"{metric} is not a number"
    elif sign * (challenger - floor) < 0:
        bound = "below" if higher else "above"
        passed, why = False, f"{metric} {challenger:.4f} is {bound} the floor {floor:.4f}"
    elif champion is None:
        passed, why = (
            True,
            f"{metric} {challenger:.4f} clears the floor {floor:.4f}; no champion yet",
        )
    else:
        gain = sign * (challenger - champion)
        passed = gain >= policy.min_improvement
        verb = "beats" if passed else "does not beat"
        why = (
            f"{metric} {challenger:.4f} {verb} the champion's {champion:.4f} by the margin "
            f"{policy.min_improvement:.4f} (gain {gain:+.4f})"
        )
    return ModelVerdict(kind, metric, challenger, champion, floor, passed, why)


def decide(challenger: Metrics, champion: Metrics | None, policy: GatePolicy) -> GateDecision:
    """Promote when every model clears its floor and beats its champion (when there is one).

    `challenger` and `champion` map a model kind ("detector", "risk") to its test metrics;
    a champion kind that is missing means there is no champion for that model.
    """
    verdicts = []
    for kind in MODEL_KINDS:
        metric = policy.metric(kind)
        value = _value(challenger, kind, metric, "challenger")
        if value is None:
            raise FinriskError(f"the challenger has no {kind} metrics: nothing to judge")
        previous = None if champion is None else _value(champion, kind, metric, "champion")
        verdicts.append(_verdict(kind, value, previous, policy))
    failed = [v for v in verdicts if not v.passed]
    if failed:
        reason = "keep the champion: " + "; ".join(f"{v.kind} {v.reason}" for v in failed)
        return GateDecision(KEEP, reason, tuple(verdicts))
    passes = "; ".join(f"{v.kind} {v.reason}" for v in verdicts)
    if policy.promotion == "shadow" and champion is not None and champion.get(DETECTOR):
        reason = (
            f"shadow the challenger: {passes}; promoted once live traffic agrees (finrisk monitor)"
        )
        return GateDecision(SHADOW, reason, tuple(verdicts))
    return GateDecision(PROMOTE, f"promote the challenger: {passes}", tuple(verdicts))


@dataclass(frozen=True)
class LiveEvidence:
    """The champion detector and its shadowed challenger on the same labelled live traffic
    (finrisk.monitoring.realized.shadowed_outcomes)."""

    champion_version: str
    challenger_version: str
    champion: Outcomes
    challenger: Outcomes


def live_verdict(
    evidence: LiveEvidence, *, metric: str, min_frauds: int, min_improvement: float
) -> ModelVerdict:
    """Does the shadowed challenger detector beat the champion on the same transactions?

    Judged only on at least `min_frauds` confirmed frauds (fewer: wait for labels); a metric
    without a denominator (no alert at all, for alert precision) counts as 0.
    """
    if metric not in REALIZED_METRICS:
        raise FinriskError(f"live metric {metric!r} must be one of {list(REALIZED_METRICS)}")
    name = f"live {metric}"
    ours, theirs = evidence.challenger, evidence.champion
    challenger = ours.metric(metric) or 0.0
    champion = theirs.metric(metric) or 0.0
    traffic = (
        f"on the same {ours.scored:,} shadowed transactions ({ours.labelled:,} labelled, "
        f"{ours.confirmed_fraud:,} confirmed frauds)"
    )
    if ours.confirmed_fraud < min_frauds:
        why = f"not judged yet: {ours.confirmed_fraud} confirmed frauds < {min_frauds} {traffic}"
        return ModelVerdict(DETECTOR, name, challenger, champion, None, False, why, judged=False)
    else:
        gain = challenger - champion
        passed = gain >= min_improvement
        verb = "beats" if passed else "does not beat"
        why = (
            f"{name} {challenger:.4f} {verb} the champion's {champion:.4f} by the margin "
            f"{min_improvement:.4f} (gain {gain:+.4f}) {traffic}"
        )
    return ModelVerdict(DETECTOR, name, challenger, champion, None, passed, why)


def decide_live(offline_reason: str, verdict: ModelVerdict) -> GateDecision:
    """A shadowed pair that passed offline (`offline_reason`, recorded at registration) is
    promoted when the live verdict passes too; otherwise the champion stays."""
    if verdict.passed:
        reason = f"promote the challenger: live: {verdict.reason}; offline: {offline_reason}"
        return GateDecision(PROMOTE, reason, (verdict,))
    if not verdict.judged:  # the champion stays for now, the challenger stays shadowed
        return GateDecision(KEEP, f"keep shadowing: live: {verdict.reason}", (verdict,))
    return GateDecision(KEEP, f"keep the champion: live: {verdict.reason}", (verdict,))
