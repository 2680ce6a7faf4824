"""The demo's sizes: a light module, so `finrisk --help` shows them without loading the demo."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DemoOptions:
    train_users: int = 400
    train_days: int = 45
    stream_users: int = 300
    stream_days: int = 45
    seed: int = 7
    scored_timeout_s: float = 300.0
    progress: bool = True


@dataclass(frozen=True)
class DriftOptions:
    """`finrisk demo --drift`: the shift `drift_day` days into the stream, the retraining
    `days_drifted` days after it (now), then `days_after` days scored by the new champion.
    The policy judges the last `recent_days` of labels."""

    train_users: int = 400
    train_days: int = 45
    # Enough customers for dozens of the new pattern's frauds a week (and their labels).
    stream_users: int = 1_000
    # The retraining needs examples of the new pattern: its time split trains on the first 60%
    # of the history, so the shift must come well before that.
    drift_day: int = 15
    days_drifted: int = 35
    days_after: int = 14
    seed: int = 7
    # The bridge's monitoring window, and the policy's knobs at this scale (docs/monitoring.md).
    window: int = 1_000
    rate: float = 10_000.0  # transactions a second, as a live stream
    sustained_windows: int = 2
    recent_days: int = 7
    min_labels: int = 20
    min_frauds: int = 5
    # Confirmed frauds come within 5 days; a chargeback later is missed as legitimate.
    label_maturity_days: float = 5.0
    # The gate's margin: a regression this small is tolerated (the test sets are small).
    min_improvement: float = -0.03
    scored_timeout_s: float = 300.0
    progress: bool = True
