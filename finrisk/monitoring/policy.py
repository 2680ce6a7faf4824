"""When to retrain: a pure decision from the champion's recent monitoring windows, its realized
(labelled) metrics per day, the last retraining decision and the policy's knobs
(finrisk.settings.MonitorSettings).

Retrain when at least one signal fires and nothing holds it back:

- drift: the worst PSI of a window (features, categories, scores) at or above the threshold in
  each of the last `sustained_windows` windows, so one noisy window retrains nothing;
- recall drop / alert precision drop: the pooled realized metric of the recent days below the
  baseline by at least the drop (baseline: offline test metrics when given, else the champion's
  earlier realized days); judged only on enough confirmed frauds / alerts to mean something.

Held back by:
- too few labels: the retraining learns from the recent labelled window, so fewer than
  `min_labels` labelled transactions there would train on what the champion already saw;
- cooldown: a retrain decided less than `cooldown_hours` ago is still training, gating or
  rolling out, and its effect is not yet in the windows.

Every reason names the threshold and the value it was compared with, fired or not.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Protocol

from finrisk.kinds import CHAMPION
from finrisk.outcomes import Outcomes
from finrisk.settings import MonitorSettings


class Window(Protocol):
    """What the policy reads of one `model_monitoring` row."""

    @property
    def role(self) -> str: ...
    @property
    def window_end(self) -> datetime: ...
    @property
    def max_feature_psi(self) -> float | None: ...
    @property
    def score_psi(self) -> float | None: ...
    @property
    def category_psi(self) -> float | None: ...


class RealizedDay(Protocol):
    """What the policy reads of one day of realized metrics (finrisk.monitoring.realized)."""

    @property
    def role(self) -> str: ...
    @property
    def day(self) -> date: ...
    @property
    def scored(self) -> int: ...
    @property
    def labelled(self) -> int: ...
    @property
    def confirmed_fraud(self) -> int: ...
    @property
    def alerted(self) -> int: ...
    @property
    def true_alerts(self) -> int: ...


@dataclass(frozen=True)
class Baseline:
    """Offline test metrics of the champion (from the registry), when the caller has them."""

    recall: float | None = None
    alert_precision: float | None = None


@dataclass(frozen=True)
class Decision:
    retrain: bool
    reasons: list[str]
    decided_at: datetime
    signals: dict[str, Any] = field(default_factory=dict)

    def to_record(self) -> dict[str, Any]:
        """The JSON-able record: one stdout line and one `monitor_decisions` row."""
        out = asdict(self)
        out["decided_at"] = self.decided_at.isoformat()
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_record(), sort_keys=True)


def window_psi(window: Window) -> float:
    """The worst PSI a window measured (0 when it measured none)."""
    values = [window.max_feature_psi, window.score_psi, window.category_psi]
    return max((float(v) for v in values if v is not None), default=0.0)


def drift_signal(windows: Sequence[Window], policy: MonitorSettings) -> tuple[bool, str, float]:
    """The sustained-drift rule on the champion's windows: (fired, the reason, the worst PSI)."""
    ordered = sorted((w for w in windows if w.role == CHAMPION), key=lambda w: w.window_end)
    threshold, k = policy.psi_threshold, policy.sustained_windows
    if not ordered:
        return False, "no drift signal: no monitoring windows of the champion", 0.0
    worst = max(window_psi(w) for w in ordered)
    last = [window_psi(w) for w in ordered[-k:]]
    over = sum(psi >= threshold for psi in last)
    shown = ", ".join(f"{psi:.2f}" for psi in last)
    if len(last) == k and over == k:
        return True, f"drift: PSI >= {threshold:g} in each of the last {k} windows ({shown})", worst
    if worst < threshold:
        shown = f"max PSI {worst:.2f} < {threshold:g} over {len(ordered)} windows"
        return False, f"no drift: {shown}", worst
    return (
        False,
        f"drift not sustained: {over} of the last {len(last)} windows with PSI >= "
        f"{threshold:g} ({shown}), {k} needed",
        worst,
    )


def _pool(days: Sequence[RealizedDay]) -> Outcomes:
    return Outcomes(
        scored=sum(d.scored for d in days),
        labelled=sum(d.labelled for d in days),
        confirmed_fraud=sum(d.confirmed_fraud for d in days),
        alerted=sum(d.alerted for d in days),
        true_alerts=sum(d.true_alerts for d in days),
    )


def _drop(
    name: str,
    recent: float | None,
    baseline: float | None,
    drop: float,
    support: int,
    minimum: int,
    unit: str,
) -> tuple[bool, str]:
    if recent is None or support < minimum:
        return False, f"{name} not judged: {support} {unit} < {minimum} minimum"
    if baseline is None:
        return False, f"{name} not judged: no baseline (recent {recent:.3f})"
    fell = baseline - recent
    compared = f"{recent:.3f} vs baseline {baseline:.3f}"
    if fell >= drop:
        return True, f"{name} drop: {compared} (-{fell:.3f} >= {drop:g})"
    return False, f"{name} holds: {compared} (drop {fell:.3f} < {drop:g})"


def decide(
    windows: Sequence[Window],
    days: Sequence[RealizedDay],
    last_retrain: datetime | None,
    policy: MonitorSettings,
    *,
    now: datetime,
    baseline: Baseline | None = None,
) -> Decision:
    """The decision at `now` (timezone-aware) for the champion's windows and realized days."""
    today = now.date()
    recent_from = today - timedelta(days=policy.recent_days)
    champion_days = [d for d in days if d.role == CHAMPION]
    recent = _pool([d for d in champion_days if d.day > recent_from])
    earlier = _pool([d for d in champion_days if d.day <= recent_from])
    offline = baseline or Baseline()
    base_recall = offline.recall if offline.recall is not None else earlier.recall
    base_precision = (
        offline.alert_precision if offline.alert_precision is not None else earlier.alert_precision
    )

    drifted, drift_reason, worst = drift_signal(windows, policy)
    recall_fired, recall_reason = _drop(
        "recall", recent.recall, base_recall, policy.recall_drop,
        recent.confirmed_fraud, policy.min_frauds, "confirmed frauds",
    )  # fmt: skip
    precision_fired, precision_reason = _drop(
        "alert precision", recent.alert_precision, base_precision, policy.precision_drop,
        recent.alerted, policy.min_alerts, "labelled alerts",
    )  # fmt: skip
    signals: dict[str, Any] = {
        "windows": sum(1 for w in windows if w.role == CHAMPION),
        "max_psi": round(worst, 6),
        "labels": recent.labelled,
        "recent_recall": recent.recall,
        "baseline_recall": base_recall,
        "recent_alert_precision": recent.alert_precision,
        "baseline_alert_precision": base_precision,
        "last_retrain": last_retrain.isoformat() if last_retrain else None,
    }
    fired = [
        reason
        for ok, reason in (
            (drifted, drift_reason),
            (recall_fired, recall_reason),
            (precision_fired, precision_reason),
        )
        if ok
    ]
    if not fired:
        return Decision(False, [drift_reason, recall_reason, precision_reason], now, signals)
    held: list[str] = []
    if recent.labelled < policy.min_labels:
        held.append(
            f"only {recent.labelled} labels < {policy.min_labels} minimum "
            f"(last {policy.recent_days} days)"
        )
    if last_retrain is not None:
        since = now - last_retrain
        if since < timedelta(hours=policy.cooldown_hours):
            held.append(
                f"cooldown: last retrain {since.total_seconds() / 3600:.1f} h ago < "
                f"{policy.cooldown_hours:g} h"
            )
    if held:
        return Decision(False, held + [f"would retrain on: {r}" for r in fired], now, signals)
    return Decision(True, fired, now, signals)


def windows_since(now: datetime, policy: MonitorSettings) -> datetime:
    """The oldest window end the policy looks at."""
    return now - timedelta(hours=policy.window_hours)


def days_since(now: datetime, policy: MonitorSettings) -> date:
    """The oldest realized day the policy looks at (recent days and the baseline before them)."""
    return now.date() - timedelta(days=policy.recent_days + policy.baseline_days)
