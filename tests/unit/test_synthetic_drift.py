"""The generator's drift scenario: nothing changes before the drift day; from it, a fraud kind
never seen before and a spending shift of half the users; the default data as it always was."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from finrisk import schema as S
from finrisk.cli import main
from finrisk.errors import FinriskError
from finrisk.io import read_manifest
from finrisk.synthetic import generate
from finrisk.synthetic.drift import (
    SCAM_EPISODE_RATE,
    SHIFT_FACTOR,
    SHIFTED_CATEGORIES,
    SHIFTED_SHARE,
    draw_scenario,
)
from finrisk.synthetic.labels import synthetic_labels
from finrisk.validation import validate_transactions

USERS, DAYS, SEED, DRIFT_DAY = 400, 60, 13, 30


def _digest(users: int, days: int, seed: int) -> str:
    transactions, population, manifest = generate(users, days, seed)
    digest = hashlib.sha256()
    for frame in (transactions, population):
        digest.update(pd.util.hash_pandas_object(frame, index=True).to_numpy().tobytes())
    digest.update(json.dumps(manifest, sort_keys=True).encode())
    return digest.hexdigest()


def test_the_default_data_is_what_it_was_before_the_scenario() -> None:
    """Pinned: the frames and manifest of a default generation, as made before the drift
    scenario existed (a change here must bump GENERATOR_VERSION)."""
    assert _digest(80, 60, 3) == "ff9a1c8bb565fcfb718335a0bf3f2f039c7f2771d11a8224cec91dbfde24c8be"


@pytest.fixture(scope="module")
def default() -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    return generate(USERS, DAYS, SEED)


@pytest.fixture(scope="module")
def drifted() -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    return generate(USERS, DAYS, SEED, scenario="drift", drift_day=DRIFT_DAY)


def _day(tx: pd.DataFrame) -> pd.Series:
    return (tx[S.TIMESTAMP] - pd.Timestamp("2025-01-01", tz="UTC")).dt.days


def test_nothing_changes_before_the_drift_day(default: tuple, drifted: tuple) -> None:
    before, shifted = default[0], drifted[0]
    pd.testing.assert_frame_equal(
        before[_day(before) < DRIFT_DAY], shifted[_day(shifted) < DRIFT_DAY]
    )
    assert not before[_day(before) >= DRIFT_DAY].equals(shifted[_day(shifted) >= DRIFT_DAY])


def test_the_new_fraud_kind_appears_from_the_drift_day_only(drifted: tuple) -> None:
    tx, _, manifest = drifted
    scam = tx[tx[S.FRAUD_TYPE] == S.GIFT_CARD_SCAM]
    assert len(scam) > 0 and (_day(scam) >= DRIFT_DAY).all()
    assert (scam[S.IS_FRAUD] == 1).all()
    # Its footprint: gift cards bought in person, in the day, for round sums.
    assert set(scam[S.CATEGORY]) == {"gift_cards"} and set(scam[S.CHANNEL]) == {"card_present"}
    assert scam[S.TIMESTAMP].dt.hour.between(9, 23).all()
    assert (scam[S.AMOUNT] % 50 == 0).all() and scam[S.AMOUNT].median() >= 150
    # About SCAM_EPISODE_RATE episodes per user-day from the drift day (the last day has none).
    episodes = manifest["fraud_episodes_by_type"][S.GIFT_CARD_SCAM]
    expected = SCAM_EPISODE_RATE * USERS * (DAYS - 1 - DRIFT_DAY)
    assert 0.5 * expected <= episodes <= 1.6 * expected
    assert manifest["fraud_transactions_by_type"][S.GIFT_CARD_SCAM] == len(scam)
    assert manifest["scenario"]["drift_day"] == DRIFT_DAY
    assert manifest["scenario"]["new_fraud_type"] == S.GIFT_CARD_SCAM
    assert validate_transactions(tx).ok


def test_the_label_stream_covers_the_new_kind(drifted: tuple) -> None:
    tx = drifted[0]
    scam_ids = set(tx.loc[tx[S.FRAUD_TYPE] == S.GIFT_CARD_SCAM, S.TRANSACTION_ID])
    labelled = {r.transaction_id for r in synthetic_labels(tx, SEED) if r.is_fraud}
    assert len(scam_ids & labelled) >= 0.9 * len(scam_ids)


def test_a_share_of_users_spends_more_online_from_the_drift_day(
    default: tuple, drifted: tuple
) -> None:
    scenario = draw_scenario("drift", DRIFT_DAY, SEED, USERS, DAYS)
    assert scenario is not None
    assert abs(scenario.shifted.mean() - SHIFTED_SHARE) < 0.07
    factors = scenario.factor[scenario.shifted].max(axis=1)
    assert factors.min() >= SHIFT_FACTOR[0] and factors.max() <= SHIFT_FACTOR[1]
    shifted_ids = {f"u{i:06d}" for i in np.flatnonzero(scenario.shifted)}

    def everyday(tx: pd.DataFrame) -> pd.DataFrame:
        rows = tx[(tx[S.FRAUD_TYPE] == S.NO_FRAUD) & tx[S.CATEGORY].isin(SHIFTED_CATEGORIES)]
        return rows.assign(shifted=rows[S.USER_ID].isin(shifted_ids), late=_day(rows) >= DRIFT_DAY)

    after = everyday(drifted[0])
    base = everyday(default[0])
    median = after.groupby(["shifted", "late"])[S.AMOUNT].median()
    # Shifted users' purchases grow by about the factor; the others' stay as they were.
    assert 1.7 <= median[(True, True)] / median[(True, False)] <= 3.2
    assert 0.85 <= median[(False, True)] / median[(False, False)] <= 1.15
    online = after.groupby(["shifted", "late"])[S.CHANNEL].apply(lambda c: (c == "online").mean())
    assert online[(True, True)] == 1.0 and online[(False, True)] < 0.5
    assert online[(True, False)] == pytest.approx(
        base[base.shifted & ~base.late][S.CHANNEL].eq("online").mean()
    )


def test_the_scenario_is_seeded(drifted: tuple) -> None:
    again = generate(USERS, DAYS, SEED, scenario="drift", drift_day=DRIFT_DAY)
    pd.testing.assert_frame_equal(drifted[0], again[0])
    assert drifted[2] == again[2]
    other = generate(USERS, DAYS, SEED + 1, scenario="drift", drift_day=DRIFT_DAY)
    assert not drifted[0].equals(other[0])


def test_the_drift_day_defaults_to_half_way() -> None:
    manifest = generate(30, 20, 1, scenario="drift")[2]
    assert manifest["scenario"]["drift_day"] == 10


@pytest.mark.parametrize(
    ("scenario", "drift_day", "message"),
    [
        (None, 5, "needs --scenario drift"),
        ("storm", None, "unknown scenario"),
        ("drift", 20, "must be in"),
        ("drift", -1, "must be in"),
    ],
)
def test_bad_scenarios_are_user_errors(
    scenario: str | None, drift_day: int | None, message: str
) -> None:
    with pytest.raises(FinriskError, match=message):
        generate(10, 20, 1, scenario=scenario, drift_day=drift_day)


def test_cli_generates_the_scenario(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "drift"
    argv = ["data", "generate", "--users", "40", "--days", "20", "--seed", "3"]
    argv += ["--scenario", "drift", "--drift-day", "8", "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    capsys.readouterr()
    assert read_manifest(out)["scenario"]["drift_day"] == 8
    assert main(["data", "validate", str(out)]) == 0
