"""What `finrisk demo --drift` shows: when the drift was caught, what was decided and why, and
the detector's recall on the old and the new fraud pattern before and after retraining.

Recall here is computed from the generator's ground truth (`is_fraud`, `fraud_type`), not from
the confirmed labels the loop itself learns from: an independent check that the loop helped.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from finrisk.monitoring.policy import drift_signal
from finrisk.monitoring.tables import WindowRow
from finrisk.settings import MonitorSettings


@dataclass(frozen=True)
class Recall:
    frauds: int
    caught: int

    @property
    def value(self) -> float | None:
        return self.caught / self.frauds if self.frauds else None


def recall(
    scored: Iterable[Mapping[str, Any]], truth: Mapping[str, str], types: set[str]
) -> Recall:
    """Of the scored transactions whose true fraud type is one of `types`, how many the
    detector flagged (`truth`: transaction id -> fraud type, frauds only)."""
    frauds = caught = 0
    for record in scored:
        if truth.get(record["transaction_id"]) in types:
            frauds += 1
            caught += bool(record["is_anomaly"])
    return Recall(frauds, caught)


def detection(
    windows: Sequence[Mapping[str, Any]],
    detector: str,
    shift: datetime,
    policy: MonitorSettings,
) -> dict[str, Any]:
    """When the policy's sustained-drift rule (finrisk.monitoring.policy.drift_signal) first
    fired on the detector champion's windows, in the order they closed: how many transactions
    the windows from the shift on held until then, and how often it fired before the shift."""
    rows = sorted(
        (_row(w) for w in windows if w["model"] == detector and w["role"] == "champion"),
        key=lambda pair: pair[0].window_end,
    )
    k = policy.sustained_windows
    after = 0
    alarms_before = 0
    for i, (_, window) in enumerate(rows):
        fired, reason, _ = drift_signal([r for r, _ in rows[max(0, i + 1 - k) : i + 1]], policy)
        end = window["event_time_max"]
        if end is not None and datetime.fromisoformat(end) >= shift:
            after += int(window["transactions"])
            if fired:
                return {
                    "transactions_after_shift": after,
                    "reason": reason,
                    "drifted_features": window["drifted_features"],
                    "alarms_before_shift": alarms_before,
                }
        elif fired:
            alarms_before += 1
    return {
        "transactions_after_shift": None,
        "checked_after_shift": after,
        "alarms_before_shift": alarms_before,
        "drifted_features": [],
    }


def _row(window: Mapping[str, Any]) -> tuple[WindowRow, Mapping[str, Any]]:
    return (
        WindowRow(
            window_id=window["window_id"],
            model=window["model"],
            model_version=window["model_version"],
            role=window["role"],
            window_end=datetime.fromisoformat(window["window_end"]),
            max_feature_psi=window["max_feature_psi"],
            score_psi=window["score_psi"],
            category_psi=window["category_psi"],
            drift_level=window["drift_level"],
        ),
        window,
    )


@dataclass
class DriftSummary:
    run_id: str
    scored_topic: str
    detector_model: str
    shift_at: str
    retrain_at: str
    new_fraud_types: list[str]
    detection: dict[str, Any]
    decisions: list[dict[str, Any]]
    champion_before: str
    champion_after: str | None
    recall_old_before_shift: Recall
    recall_new_before_retraining: Recall
    recall_new_after_retraining: Recall
    recall_old_after_retraining: Recall
    transactions: dict[str, int]
    seconds: float
    tables: dict[str, str] = field(default_factory=dict)

    @property
    def recovered(self) -> bool | None:
        """The target: recall on the new pattern after retraining at least 0.9 x recall on
        the old patterns before the shift."""
        old, new = self.recall_old_before_shift.value, self.recall_new_after_retraining.value
        return None if old is None or new is None else new >= 0.9 * old

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for name in (
            "recall_old_before_shift",
            "recall_new_before_retraining",
            "recall_new_after_retraining",
            "recall_old_after_retraining",
        ):
            out[name]["value"] = getattr(self, name).value
        out["recovered"] = self.recovered
        return out


def _pct(r: Recall) -> str:
    return "-" if r.value is None else f"{r.value:.1%} ({r.caught} of {r.frauds})"


def format_summary(s: DriftSummary) -> str:
    caught = s.detection.get("transactions_after_shift")
    early = s.detection.get("alarms_before_shift")
    lines = [
        "finrisk demo --drift: summary",
        "=============================",
        f"shift           {s.shift_at}: new fraud pattern {', '.join(s.new_fraud_types) or '-'} "
        "and a spending shift",
        "drift caught    "
        + (
            f"{caught:,} transactions after the shift: {s.detection['reason']}"
            if caught is not None
            else "not caught"
        ),
        f"                ({early} alarms before the shift: new customers' first days)"
        if early
        else "                (no alarm before the shift)",
    ]
    for decision in s.decisions:
        verdict = "retrain" if decision["retrain"] else "no retrain"
        lines.append(f"decision        {verdict}: {'; '.join(decision['reasons'])}")
        if decision.get("run"):
            lines.append(f"                run: {decision['run']}")
    lines += [
        f"champion        detector v{s.champion_before} -> "
        + (f"v{s.champion_after}" if s.champion_after else "unchanged"),
        f"recall before   old patterns {_pct(s.recall_old_before_shift)}, "
        f"new pattern {_pct(s.recall_new_before_retraining)}",
        f"recall after    new pattern {_pct(s.recall_new_after_retraining)}, "
        f"old patterns {_pct(s.recall_old_after_retraining)}",
        f"recovered       {s.recovered} (target: new after >= 0.9 x old before)",
        "transactions    "
        + ", ".join(f"{name} {count:,}" for name, count in s.transactions.items()),
        f"whole loop      {s.seconds:.0f} s",
    ]
    lines += [f"{name:<15} {where}" for name, where in s.tables.items()]
    return "\n".join(lines)
