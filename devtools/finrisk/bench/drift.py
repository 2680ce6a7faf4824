"""Drift you can watch being caught: what `finrisk bench drift` prints.

A small detector is trained, with its reference profile, on drift-free synthetic data. Streams
of transactions then go through `finrisk.monitoring.window.ModelWindow` as the bridge counts
them (features computed per user in event order, the detector's scores and alerts, the
category and channel; windows of `window` transactions, every row binned as at the demo's
scale), and each closed window through the retraining policy's sustained-drift rule
(`finrisk.monitoring.policy.drift_signal`, the `MonitorSettings` defaults):

- drift-free: at least a million transactions of the same kind of population as the training
  data: how many windows are `major`, how many times the sustained rule would have fired
  (target: none);
- the drift scenario (`generate(..., scenario="drift")`): transactions after the shift until
  the first major window and until the sustained rule fires (target: within 5,000), and the
  detector's recall on the old fraud kinds and on the new one after the shift.

The streams are a steady population, as a bank's customers are: cohorts of customers join every
`days / COHORTS` days and each stays `days` days, the training data's history length, so at any
time the customers' histories are as long as the training rows' are, spread the same way. A
stream of customers who all joined the same day would be all-new at first and older than any
training row later: drift of the stream, not of the behaviour (see docs/monitoring.md).
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from finrisk.bench.history import AT, COMMIT, LOAD, Column, Headline, Run, load_average_1m
from finrisk.features import TRANSACTION_FEATURES, transaction_features
from finrisk.kinds import CHAMPION
from finrisk.monitoring.policy import drift_signal
from finrisk.monitoring.window import ModelWindow, WindowReport
from finrisk.schema import (
    CATEGORY,
    CHANNEL,
    FRAUD_TYPE,
    GIFT_CARD_SCAM,
    IS_FRAUD,
    NO_FRAUD,
    TIMESTAMP,
    TRANSACTION_ID,
    USER_ID,
)
from finrisk.settings import MonitorSettings
from finrisk.synthetic import generate
from finrisk.synthetic.drift import DRIFT

MODEL = "finrisk-bench-drift-detector"
# The demo's scale (devtools/finrisk/demo/options.py): 300 customers streamed, histories of
# 45 days; its bridge closes a window every 1,000 transactions, a bit more than a day's.
USERS = 300
DAYS = 45
WINDOW = 1_000
TRANSACTIONS = 1_000_000
# Cohorts alive at any time in a steady stream: one joins every DAYS / COHORTS days.
COHORTS = 9
# The drifted stream: this many days of steady traffic, then the shift, then as many again.
DRIFT_STREAM_DAYS = 20
DELAY_TARGET = 5_000


def _log(message: str) -> None:
    print(f"bench drift: {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Watched:
    """One closed window, as the retraining policy reads a `model_monitoring` row."""

    report: WindowReport
    end: int  # stream position after the window's last transaction
    window_end: datetime

    @property
    def role(self) -> str:
        return self.report.role

    @property
    def max_feature_psi(self) -> float | None:
        return self.report.max_feature_psi

    @property
    def score_psi(self) -> float | None:
        return self.report.score_psi

    @property
    def category_psi(self) -> float | None:
        return self.report.category_psi

    @property
    def major(self) -> bool:
        return self.report.drift_level == "major"


@dataclass(frozen=True)
class Stream:
    """A steady stream: `transactions` in event order, the customers' histories from their
    first day; the stream proper (what is watched) starts at row `begin`."""

    transactions: pd.DataFrame
    begin: int


def steady_stream(
    users: int,
    days: int,
    stream_days: int,
    seed: int,
    *,
    cohorts: int = COHORTS,
    drift_day: int | None = None,
    start: str = "2025-01-01",
) -> Stream:
    """`stream_days` of a steady population of about `users` customers: a cohort of
    users/cohorts joins every days/cohorts days and stays `days` days; the first ones joined
    before the stream starts, so it is steady from its first day, and their earlier
    transactions come first (their features need them). With `drift_day`, the drift scenario
    from that day of the stream on, in every cohort alive then or later."""
    step = max(days // cohorts, 1)
    size = max(users // cohorts, 1)
    t0 = pd.Timestamp(start, tz="UTC")
    parts = []
    for c, joined in enumerate(range(-(days - step), stream_days, step)):
        drift: dict[str, Any] = {}
        if drift_day is not None and drift_day < joined + days:
            drift = {"scenario": DRIFT, "drift_day": max(drift_day - joined, 0)}
        tx, _, _ = generate(size, days, seed * 10_000 + c, t0 + pd.Timedelta(days=joined), **drift)
        tx = tx[tx[TIMESTAMP] < t0 + pd.Timedelta(days=stream_days)]
        parts.append(tx.assign(**{USER_ID: f"c{c:04d}-" + tx[USER_ID]}))
    stream = pd.concat(parts, ignore_index=True)
    # Event order, as the stream is replayed (ties: user, then each cohort's own order).
    stream = stream.sort_values([TIMESTAMP, USER_ID], kind="stable", ignore_index=True)
    width = len(str(len(stream)))
    stream[TRANSACTION_ID] = [f"tx{i:0{width}d}" for i in range(len(stream))]
    return Stream(stream, int(np.searchsorted(stream[TIMESTAMP].array.asi8, t0.value)))


def scored(transactions: pd.DataFrame, detector: Any) -> tuple[np.ndarray, np.ndarray]:
    """The detector's feature matrix (TRANSACTION_FEATURES columns, the stream's order) and
    scores: batch features of the whole stream, equal to the bridge's online ones."""
    features = transaction_features(transactions)
    matrix = features[list(TRANSACTION_FEATURES)].to_numpy(dtype=np.float64)
    return matrix, np.asarray(detector.anomaly_score(features), dtype=np.float64)


def watch(
    transactions: pd.DataFrame,
    matrix: np.ndarray,
    scores: np.ndarray,
    profile: dict[str, Any],
    threshold: float,
    window: int,
    begin: int = 0,
) -> list[Watched]:
    """Every full window of `window` transactions of the stream from row `begin`, counted as
    the bridge counts a model version's batches (all rows binned: the demo's are small)."""
    categories = {name: transactions[name].to_numpy() for name in (CATEGORY, CHANNEL)}
    event_ns = transactions[TIMESTAMP].array.asi8
    flagged = scores >= threshold
    out = []
    counter = ModelWindow(MODEL, "1", CHAMPION, profile, TRANSACTION_FEATURES)
    for first in range(begin, len(transactions) - window + 1, window):
        rows = slice(first, first + window)
        counter.reset()
        counter.add(
            matrix[rows],
            scores[rows],
            alerts=int(flagged[rows].sum()),
            categories={name: values[rows] for name, values in categories.items()},
            event_ns=event_ns[rows],
        )
        report = counter.report()
        end = datetime.fromtimestamp(int(event_ns[first + window - 1]) / 1e9, UTC)
        out.append(Watched(report, first + window, end))
    return out


def sustained(windows: Sequence[Watched], policy: MonitorSettings) -> list[bool]:
    """For each window, whether the policy's sustained-drift rule fires once it has closed."""
    k = policy.sustained_windows
    return [
        drift_signal(windows[max(i + 1 - k, 0) : i + 1], policy)[0] for i in range(len(windows))
    ]


def delay(windows: Sequence[Watched], flags: Sequence[bool], shift: int) -> int | None:
    """Transactions from the shift (its stream position) to the end of the first flagged window
    that ends after it; None when none does."""
    for w, flag in zip(windows, flags, strict=True):
        if flag and w.end > shift:
            return w.end - shift
    return None


def recalls(transactions: pd.DataFrame, flagged: np.ndarray, since: int) -> dict[str, Any]:
    """The detector's recall after position `since`, on the old fraud kinds and the new one."""
    kinds = transactions[FRAUD_TYPE].to_numpy()[since:]
    fraud = transactions[IS_FRAUD].to_numpy()[since:] == 1
    hit = flagged[since:]
    new = kinds == GIFT_CARD_SCAM
    old = fraud & ~new & (kinds != NO_FRAUD)
    return {
        "old_kinds_frauds": int(old.sum()),
        "old_kinds_recall": _share(hit[old]),
        "new_kind_frauds": int(new.sum()),
        "new_kind_recall": _share(hit[new]),
    }


def _share(values: np.ndarray) -> float | None:
    return round(float(values.mean()), 4) if len(values) else None


def _levels(windows: Sequence[Watched]) -> dict[str, int]:
    levels = [w.report.drift_level for w in windows]
    return {name: levels.count(name) for name in ("stable", "moderate", "major")}


def _worst(windows: Sequence[Watched]) -> dict[str, int]:
    """Of the major windows, how many each measure was the worst in."""
    out: dict[str, int] = {}
    for w in windows:
        if not w.major:
            continue
        r = w.report
        named: dict[str, float | None] = {**r.judged_psi, "(category)": r.category_psi}
        named["(score)"] = r.score_psi
        name = max(named, key=lambda k: named[k] or 0.0)
        out[name] = out.get(name, 0) + 1
    return dict(sorted(out.items(), key=lambda item: -item[1]))


def drift_free(
    detector: Any, transactions: int, users: int, days: int, window: int, seed: int
) -> dict[str, Any]:
    policy = MonitorSettings()
    started = time.perf_counter()
    # Sized on the generator's rate, with a margin so that at least `transactions` are watched.
    rate = users * transactions_per_user_day(users, days, seed)
    stream_days = math.ceil(1.03 * transactions / rate)
    stream = steady_stream(users, days, stream_days, seed)
    generated = time.perf_counter()
    matrix, scores = scored(stream.transactions, detector)
    featured = time.perf_counter()
    windows = watch(
        stream.transactions, matrix, scores, detector.profile_, detector.threshold_, window,
        stream.begin,
    )  # fmt: skip
    fires = sustained(windows, policy)
    watched = time.perf_counter()
    return {
        "transactions": len(stream.transactions) - stream.begin,
        "days": stream_days,
        "windows": len(windows),
        "levels": _levels(windows),
        "major_windows": sum(w.major for w in windows),
        "sustained_fires": sum(fires),
        "worst_in_major_windows": _worst(windows),
        "seconds": {
            "generate": round(generated - started, 2),
            "features_and_scores": round(featured - generated, 2),
            "windows_and_policy": round(watched - featured, 2),
        },
    }


def drifted(
    detector: Any, users: int, days: int, window: int, seed: int, stream_days: int
) -> dict[str, Any]:
    policy = MonitorSettings()
    shift_day = stream_days // 2
    stream = steady_stream(users, days, stream_days, seed + 1, drift_day=shift_day)
    tx = stream.transactions
    shift_at = tx[TIMESTAMP].iloc[stream.begin].normalize() + pd.Timedelta(days=shift_day)
    shift = int(np.searchsorted(tx[TIMESTAMP].array.asi8, shift_at.value))
    matrix, scores = scored(tx, detector)
    windows = watch(
        tx, matrix, scores, detector.profile_, detector.threshold_, window, stream.begin
    )
    fires = sustained(windows, policy)
    before = [w for w in windows if w.end <= shift]
    flagged = scores >= detector.threshold_
    return {
        "transactions": len(tx) - stream.begin,
        "shift_day": shift_day,
        "transactions_before_shift": shift - stream.begin,
        "windows": len(windows),
        "major_windows_before_shift": sum(w.major for w in before),
        "sustained_fires_before_shift": sum(fires[: len(before)]),
        "delay_to_major_window": delay(windows, [w.major for w in windows], shift),
        "delay_to_sustained_rule": delay(windows, fires, shift),
        "worst_in_major_windows_after_shift": _worst([w for w in windows if w.end > shift]),
        "recall_after_shift": recalls(tx, flagged, shift),
        "recall_before_shift": recalls(tx.iloc[:shift], flagged[:shift], stream.begin),
    }


def transactions_per_user_day(users: int, days: int, seed: int) -> float:
    """The generator's rate, measured on a small sample (to size a stream)."""
    sample, _, _ = generate(min(users, 100), days, seed)
    return len(sample) / (min(users, 100) * days)


def run(
    transactions: int = TRANSACTIONS,
    users: int = USERS,
    days: int = DAYS,
    window: int = WINDOW,
    seed: int = 42,
    drift_stream_days: int = DRIFT_STREAM_DAYS * 2,
) -> dict[str, Any]:
    from finrisk.bench.local_processes import train_detector

    load = load_average_1m()
    started = time.perf_counter()
    _log(f"training a detector on {days} days of {users} users, drift-free")
    training = steady_stream(users, days, days, seed + 2)
    detector = train_detector(training.transactions, seed, training.begin)
    _log(f"at least {transactions:,} drift-free transactions, windows of {window:,}")
    free = drift_free(detector, transactions, users, days, window, seed)
    _log(f"the drift scenario, {drift_stream_days} days, shifted half-way")
    shifted = drifted(detector, users, days, window, seed, drift_stream_days)
    policy = MonitorSettings()
    return {
        "setup": {
            "users": users,
            "days": days,
            "window": window,
            "seed": seed,
            "training_transactions": len(training.transactions) - training.begin,
            "psi_threshold": policy.psi_threshold,
            "sustained_windows": policy.sustained_windows,
        },
        "drift_free": free,
        "drift": shifted,
        "meets_targets": {
            "no_false_alarm": free["sustained_fires"] == 0,
            "caught_within_5000": (shifted["delay_to_sustained_rule"] or math.inf) <= DELAY_TARGET,
        },
        "seconds": round(time.perf_counter() - started, 1),
        "machine": {"cpus": os.cpu_count(), "load_average_1m": load},
    }


def figures(result: dict[str, Any]) -> dict[str, Any]:
    """The figures a run keeps in the benchmark's history."""
    free, shifted = result["drift_free"], result["drift"]
    after = shifted["recall_after_shift"]
    return {
        "drift_free_transactions": free["transactions"],
        "drift_free_windows": free["windows"],
        "drift_free_major_windows": free["major_windows"],
        "drift_free_sustained_fires": free["sustained_fires"],
        "delay_to_major_window": shifted["delay_to_major_window"],
        "delay_to_sustained_rule": shifted["delay_to_sustained_rule"],
        "old_kinds_recall_after_shift": after["old_kinds_recall"],
        "new_kind_recall_after_shift": after["new_kind_recall"],
        "seconds": result["seconds"],
    }


def _count(header: str, key: str) -> Column:
    def cell(run: Run) -> str:
        value = run["figures"][key]
        return "-" if value is None else f"{value:,}"

    return Column(header, cell)


def _recalls(figures: dict[str, Any]) -> str:
    old, new = figures["old_kinds_recall_after_shift"], figures["new_kind_recall_after_shift"]
    return " / ".join("-" if v is None else f"{v:.2f}" for v in (old, new))


HISTORY_COLUMNS = (
    AT,
    COMMIT,
    Column("window", lambda run: f"{run['settings']['window']:,}"),
    _count("drift-free tx", "drift_free_transactions"),
    _count("major windows", "drift_free_major_windows"),
    _count("false alarms", "drift_free_sustained_fires"),
    _count("tx to major window", "delay_to_major_window"),
    _count("tx to alarm", "delay_to_sustained_rule"),
    Column("recall after shift, old / new kind", lambda run: _recalls(run["figures"])),
    Column("seconds", lambda run: f"{run['figures']['seconds']:g}"),
    LOAD,
)

COMPARES = (
    "drift alarms of the monitoring windows and the retraining policy, drift-free and drifted"
)


def headlines(run: Run) -> list[Headline]:
    """A run's figures beside their alternatives, for the summary of every benchmark."""
    figures, settings = run["figures"], run["settings"]
    old, new = figures["old_kinds_recall_after_shift"], figures["new_kind_recall_after_shift"]
    return [
        Headline(
            f"drift alarms (sustained rule) over {figures['drift_free_transactions']:,} "
            f"drift-free transactions, windows of {settings['window']:,}",
            figures["drift_free_sustained_fires"],
            "alarms",
            f"major windows: {figures['drift_free_major_windows']:,} of "
            f"{figures['drift_free_windows']:,}",
        ),
        Headline(
            "transactions from the drift scenario's shift to the alarm",
            figures["delay_to_sustained_rule"],
            "tx",
            "to the first major window",
            figures["delay_to_major_window"],
        ),
        Headline(
            "recall on the new fraud kind after the shift, detector trained before it",
            None if new is None else 100 * new,
            "%",
            "on the old kinds",
            None if old is None else 100 * old,
        ),
    ]
