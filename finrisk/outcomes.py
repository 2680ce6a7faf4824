"""Live verdicts against confirmed labels: the counts, and the one definition of the realized
recall, alert precision and F1 that the realized metrics report and the live gate weighs.

An alert without a fraud label counts as a false alert, so a recent day's precision rises as
its labels arrive; a fraud no one confirmed is not counted as missed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

# The realized metrics, all "higher is better".
RealizedMetric = Literal["f1", "recall", "alert_precision"]
REALIZED_METRICS: tuple[str, ...] = get_args(RealizedMetric)


@dataclass(frozen=True)
class Outcomes:
    """One model's verdicts on some transactions, against their confirmed labels."""

    scored: int
    labelled: int
    confirmed_fraud: int
    alerted: int
    true_alerts: int

    @property
    def recall(self) -> float | None:
        """Of the frauds someone confirmed, the share flagged (None without any)."""
        return self.true_alerts / self.confirmed_fraud if self.confirmed_fraud else None

    @property
    def alert_precision(self) -> float | None:
        """Of the alerts, the share confirmed as fraud (None without any alert)."""
        return self.true_alerts / self.alerted if self.alerted else None

    @property
    def f1(self) -> float | None:
        """2TP / (2TP + FP + FN) = 2·true_alerts / (alerted + confirmed_fraud): neither
        flagging everything nor flagging nothing scores well (None with neither)."""
        denominator = self.alerted + self.confirmed_fraud
        return 2 * self.true_alerts / denominator if denominator else None

    def metric(self, name: str) -> float | None:
        if name not in REALIZED_METRICS:
            raise ValueError(f"{name!r} is not a realized metric; one of {REALIZED_METRICS}")
        value: float | None = getattr(self, name)
        return value
