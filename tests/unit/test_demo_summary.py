"""The demo's summary arithmetic on hand-made scored records with known answers."""

from __future__ import annotations

import pytest

from finrisk.demo.summary import summarise_stream


def _record(tx: str, user: str, flag: bool, band: str, at_ms: int) -> dict[str, object]:
    return {
        "transaction_id": tx,
        "user_id": user,
        "is_anomaly": flag,
        "risk_band": band,
        "scored_at_ms": at_ms,
        "latency_ms": 10.0,
    }


def test_counts_precision_recall_bands_and_rate() -> None:
    labels = {"t1": 1, "t2": 0, "t3": 1, "t4": 0, "t5": 0}
    scored = [
        _record("t1", "a", True, "LOW", 1_000),
        _record("t2", "a", True, "HIGH", 2_000),  # a false alarm; a's latest band is HIGH
        _record("t3", "b", False, "MEDIUM", 2_000),  # a missed fraud
        _record("t4", "b", False, "LOW", 3_000),
        _record("t4", "b", False, "LOW", 3_000),  # redelivered after a restart
    ]
    s = summarise_stream(scored, labels)
    assert (s.transactions_produced, s.scored, s.missing, s.duplicates) == (5, 4, 1, 1)
    assert (s.flagged, s.true_fraud, s.true_positives) == (2, 2, 1)
    assert s.precision == pytest.approx(0.5) and s.recall == pytest.approx(0.5)
    assert s.risk_bands == {"LOW": 1, "MEDIUM": 0, "HIGH": 1}
    assert s.users == 2
    assert s.scoring_rate_per_s == pytest.approx(4 / 2.0)


def test_nothing_flagged_has_no_precision() -> None:
    s = summarise_stream([_record("t1", "a", False, "LOW", 5)], {"t1": 0})
    assert s.precision is None and s.recall is None and s.scoring_rate_per_s is None
