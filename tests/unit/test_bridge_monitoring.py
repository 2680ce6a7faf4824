"""The bridge's monitor: windows per model version, closed by count or time, their records on
the monitoring topic and their gauges; profiles fetched once per version, never stopping the
stream when the predictor has none or is away."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest
from prometheus_client import CollectorRegistry

from finrisk.features import TRANSACTION_FEATURES, USER_FEATURES
from finrisk.monitoring.profile import reference_profile
from finrisk.schema import CATEGORY, CHANNEL
from finrisk.serving.bridge.monitoring import (
    PROFILE_RETRY_S,
    Monitor,
    MonitoringGauges,
    Profiles,
)
from finrisk.serving.bridge.outputs import Score
from finrisk.serving.bridge.v2_client import EndpointUnavailable
from finrisk.settings import BridgeSettings

DET, RISK = "det", "risk"


def _profiles() -> dict[tuple[str, str], dict[str, Any]]:
    rng = np.random.default_rng(0)
    n = 4_000
    tx = pd.DataFrame({name: rng.normal(0, 1, n) for name in TRANSACTION_FEATURES})
    users = pd.DataFrame({name: rng.normal(0, 1, n) for name in USER_FEATURES})
    categories = {CATEGORY: ["food"] * n, CHANNEL: ["card"] * n}
    return {
        (DET, "1"): reference_profile(tx, rng.beta(1, 20, n), categories=categories, threshold=0.5),
        (RISK, "4"): reference_profile(
            users, rng.uniform(0, 1, n), bands=["LOW"] * (n - 400) + ["HIGH"] * 400
        ),
    }


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def _batch(n: int, seed: int, det_version: str = "1", shift: float = 0.0, dead: int = 0) -> Any:
    rng = np.random.default_rng(seed)
    scores = [
        Score(
            float(s),
            bool(s >= 0.5),
            0.5,
            0.1,
            "HIGH" if i % 10 == 0 else "LOW",
            [],
            det_version,
            "4",
        )
        for i, s in enumerate(rng.beta(1, 20, n))
    ]
    txs = [
        SimpleNamespace(fields={CATEGORY: "food", CHANNEL: "card"}, event_ns=10**18 + i)
        for i in range(n)
    ]
    return SimpleNamespace(
        scores=scores,
        rows=[(None, tx) for tx in txs],
        dead=[None] * dead,
        tx_matrix=rng.normal(shift, 1, (n, len(TRANSACTION_FEATURES))),
        user_matrix=rng.normal(0, 1, (n, len(USER_FEATURES))),
    )


def _monitor(clock: Clock, fetched: list[tuple[str, str]], **config: Any) -> Monitor:
    profiles = _profiles()

    def fetch(model: str, version: str, role: str) -> dict[str, Any] | None:
        fetched.append((model, version))
        return profiles.get((model, version))

    settings = BridgeSettings(detector_model=DET, risk_model=RISK, monitoring_topic="mon", **config)
    registry = CollectorRegistry()
    monitor = Monitor(
        settings,
        Profiles(fetch, clock=clock),
        MonitoringGauges(registry),
        instance="pod-0",
        clock=clock,
    )
    monitor.registry = registry  # type: ignore[attr-defined]
    return monitor


def _gauge(monitor: Monitor, name: str, **labels: str) -> float | None:
    return monitor.registry.get_sample_value(name, labels)  # type: ignore[attr-defined]


def test_a_window_closes_after_n_transactions_with_one_record_per_model_version() -> None:
    clock, fetched = Clock(), []
    monitor = _monitor(clock, fetched, monitoring_window_transactions=1_000)
    assert monitor.observe(_batch(600, seed=1, dead=3)) == []
    out = monitor.observe(_batch(600, seed=2, dead=1))
    assert [(topic, key) for topic, key, _, _, _ in out] == [("mon", b"det"), ("mon", b"risk")]
    det, risk = (orjson.loads(value) for _, _, value, _, _ in out)
    assert det["transactions"] == risk["transactions"] == 1_200
    # Busy batches: every 3rd row of 600 binned (at most 256 a batch); alerts counted on all.
    assert det["binned_transactions"] == 400
    flagged = [s.is_anomaly for seed in (1, 2) for s in _batch(600, seed=seed).scores]
    assert det["alert_rate"] == pytest.approx(sum(flagged) / 1_200)
    assert det["model_version"] == "1" and risk["model_version"] == "4"
    assert det["dead_lettered"] == 4 and det["dead_letter_rate"] == pytest.approx(4 / 1_204)
    assert det["drift_level"] == "stable" and set(det["feature_psi"]) == set(TRANSACTION_FEATURES)
    assert risk["band_mix"] == {"HIGH": pytest.approx(0.1), "LOW": pytest.approx(0.9)}
    assert risk["alert_rate"] == pytest.approx(0.1)  # the risk model's alerts: HIGH
    assert fetched == [(DET, "1"), (RISK, "4")]  # once per version
    # The next window starts empty.
    assert monitor.observe(_batch(10, seed=3)) == []
    assert monitor.transactions == 10


def test_a_window_closes_at_the_first_batch_after_its_time() -> None:
    clock, fetched = Clock(), []
    monitor = _monitor(clock, fetched, monitoring_window_s=60)
    assert monitor.observe(_batch(50, seed=1)) == []
    clock.now += 60
    out = monitor.observe(_batch(50, seed=2))
    record = orjson.loads(out[0][2])
    assert record["transactions"] == 100
    assert record["window_id"] == "pod-0/champion/det/1/1000000"
    assert record["window_end"] == "1970-01-01T00:17:40+00:00"


def test_gauges_show_the_last_window_and_drop_a_version_no_longer_scoring() -> None:
    clock, fetched = Clock(), []
    monitor = _monitor(clock, fetched, monitoring_window_transactions=500)
    monitor.observe(_batch(500, seed=1, shift=2.0))
    labels = {"model": DET, "version": "1", "role": "champion"}
    feature = TRANSACTION_FEATURES[0]
    assert _gauge(monitor, "finrisk_monitoring_drift_level", **labels) == 2  # major
    assert _gauge(monitor, "finrisk_monitoring_feature_psi", **labels, feature=feature) > 0.25
    assert _gauge(monitor, "finrisk_monitoring_windows_total", **labels, level="major") == 1
    # Version 2 of the detector (no profile) takes over: version 1 leaves the gauges.
    monitor.observe(_batch(500, seed=2, det_version="2"))
    assert _gauge(monitor, "finrisk_monitoring_drift_level", **labels) is None
    assert _gauge(monitor, "finrisk_monitoring_feature_psi", **labels, feature=feature) is None
    two = {**labels, "version": "2"}
    assert _gauge(monitor, "finrisk_monitoring_drift_level", **two) == 0
    assert _gauge(monitor, "finrisk_monitoring_alert_rate", **two) is not None
    band = {"model": RISK, "version": "4", "role": "champion", "band": "HIGH"}
    assert _gauge(monitor, "finrisk_monitoring_band_share", **band) == pytest.approx(0.1)


def test_a_batch_scored_by_two_versions_counts_each_row_once_in_its_own() -> None:
    clock, fetched = Clock(), []
    monitor = _monitor(clock, fetched, monitoring_window_transactions=100)
    batch = _batch(100, seed=1)
    batch.scores = [
        s._replace(detector_version="1" if i < 30 else "2") for i, s in enumerate(batch.scores)
    ]
    records = [
        orjson.loads(value) for _, key, value, _, _ in monitor.observe(batch) if key == b"det"
    ]
    assert {(r["model_version"], r["transactions"]) for r in records} == {("1", 30), ("2", 70)}


def test_profiles_are_fetched_once_and_asked_again_only_after_an_outage() -> None:
    clock, calls = Clock(), []
    answers: list[Any] = [EndpointUnavailable("down"), {"features": {}}]

    def fetch(model: str, version: str, role: str) -> dict[str, Any] | None:
        calls.append(version)
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    profiles = Profiles(fetch, clock=clock)
    assert profiles.get(DET, "1") is None  # unreachable: watched without drift for now
    assert profiles.get(DET, "1") is None and calls == ["1"]  # not asked again at once
    clock.now += PROFILE_RETRY_S
    assert profiles.get(DET, "1") == {"features": {}}
    assert profiles.get(DET, "1") == {"features": {}} and calls == ["1", "1"]

    none: list[str] = []
    absent = Profiles(lambda _m, v, _r: none.append(v), clock=clock)  # type: ignore[arg-type,func-returns-value]
    assert absent.get(DET, "9") is None and absent.get(DET, "9") is None
    assert none == ["9"]  # a version without a profile is asked once


def test_the_shadow_challenger_has_windows_of_its_own() -> None:
    clock, fetched = Clock(), []
    monitor = _monitor(clock, fetched, monitoring_window_transactions=100)
    batch = _batch(100, seed=1)
    # The challenger (version 9, served elsewhere) answered for this batch; it alerts on 7.
    batch.scores = [
        s._replace(challenger_score=0.9, challenger_is_anomaly=i < 7, challenger_version="9")
        for i, s in enumerate(batch.scores)
    ]
    docs = {
        (d["role"], d["model"]): d
        for d in (orjson.loads(value) for _, _, value, _, _ in monitor.observe(batch))
    }
    assert set(docs) == {("champion", DET), ("champion", RISK), ("challenger", DET)}
    challenger = docs[("challenger", DET)]
    assert challenger["model_version"] == "9" and challenger["transactions"] == 100
    assert challenger["alert_rate"] == pytest.approx(0.07)
    assert (DET, "9") in fetched  # its profile, asked of the challenger's predictor
    # A batch the challenger did not answer counts in no challenger window.
    assert all(
        d["role"] == "champion"
        for d in (orjson.loads(v) for _, _, v, _, _ in monitor.observe(_batch(100, seed=2)))
    )
