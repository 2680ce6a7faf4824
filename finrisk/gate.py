"""The promotion gate: does the challenger replace the champion?

Each model (transaction detector, user risk classifier) is judged on its own primary metric,
measured on the same held-out data for challenger and champion:
- the challenger must clear the metric's absolute floor, and
- when a champion exists, beat it by at least `min_improvement` (a negative margin tolerates a
  small regression; zero accepts a tie).
The pair is promoted only when both models pass, because they are served together.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from finrisk.errors import FinriskError
from finrisk.kinds import DETECTOR, MODEL_KINDS, RISK

# Metric name -> True when higher is better (names as finrisk.evaluation.metrics reports them).
GATE_METRICS: dict[str, bool] = {
    "roc_auc": True,
    "pr_auc": True,
    "recall_at_1pct_fpr": True,
    "precision_at_k": True,
    "brier": False,
}

Metrics = Mapping[str, Mapping[str, float]]


@dataclass(frozen=True)
class GatePolicy:
    """What a challenger must achieve; every field is a pipeline parameter."""

    detector_metric: str = "pr_auc"
    risk_metric: str = "roc_auc"
    min_improvement: float = 0.0
    detector_floor: float = 0.5
    risk_floor: float = 0.6

    def __post_init__(self) -> None:
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
    floor: float
    passed: bool
    reason: str


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    reason: str
    verdicts: tuple[ModelVerdict, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        return {
            "promote": self.promote,
            "reason": self.reason,
            "verdicts": [asdict(v) for v in self.verdicts],
        }

    def to_markdown(self) -> str:
        head = "Promote the challenger" if self.promote else "Keep the champion"
        rows = [
            "| model | metric | challenger | champion | floor | passed | why |",
            "|---|---|---|---|---|---|---|",
        ]
        for v in self.verdicts:
            champion = "none" if v.champion is None else f"{v.champion:.4f}"
            rows.append(
                f"| {v.kind} | {v.metric} | {v.challenger:.4f} | {champion} | {v.floor:.4f} "
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
    else:
        reason = "promote the challenger: " + "; ".join(f"{v.kind} {v.reason}" for v in verdicts)
    return GateDecision(promote=not failed, reason=reason, verdicts=tuple(verdicts))
