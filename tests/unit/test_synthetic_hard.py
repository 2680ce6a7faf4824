"""The generator's hard scenario: every look-alike and every harder fraud kind is there,
labelled right, with its footprint; the default data is what it was before the scenario."""

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
from finrisk.io import load_transactions
from finrisk.synthetic import generate
from finrisk.synthetic.hard import (
    HARD,
    HARD_EPISODE_MIX,
    HOLIDAYS,
    LARGE_PLANNED_PURCHASE,
    LOOK_ALIKES,
    SALARY_DAY_SPIKE,
    TRAVEL_ABROAD,
)

USERS, DAYS, SEED = 500, 75, 5
HARD_KINDS = (S.SLOW_CARD_TESTING, S.MIMICKING_TAKEOVER, S.MERCHANT_COMPROMISE)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_the_default_data_is_what_it_was_before_the_hard_scenario() -> None:
    """Pinned: digests of a small default generation recorded before the scenario existed."""
    tx, users, manifest = generate(60, 30, 11)
    assert _sha(tx.to_csv(index=False)) == (
        "c6c10abd7a9e98e3511b8262a6365d5b7d559a11ae3a998a1b25852fb1b336e3"
    )
    assert _sha(users.to_csv(index=False)) == (
        "02b41b8fa1a4201d6b552d89201fe30f81a089e09eca3f59a76f03bf7eb73bdf"
    )
    assert _sha(json.dumps(manifest, sort_keys=True)) == (
        "cce1b61e0ca336a031c0ac3302acd686d49140412a7fc17f6af85da111f54dfd"
    )
    assert "scenario" not in manifest


@pytest.fixture(scope="module")
def hard() -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    return generate(USERS, DAYS, SEED, scenario=HARD)


def test_every_harder_fraud_kind_appears_labelled(hard: tuple) -> None:
    tx, users, manifest = hard
    assert (tx[S.IS_FRAUD] == (tx[S.FRAUD_TYPE] != S.NO_FRAUD)).all()
    counts = tx[S.FRAUD_TYPE].value_counts()
    for kind in HARD_KINDS:
        assert counts.get(kind, 0) > 0, kind
        assert manifest["fraud_transactions_by_type"][kind] == counts[kind]
        assert manifest["fraud_episodes_by_type"][kind] > 0
    # The harder kinds are most of the fraud; the default kinds a small share.
    assert counts[list(HARD_KINDS)].sum() > 0.6 * tx[S.IS_FRAUD].sum()
    assert set(counts.index) <= {S.NO_FRAUD, *HARD_EPISODE_MIX, S.MERCHANT_COMPROMISE}
    assert users["fraud_episodes"].sum() == sum(manifest["fraud_episodes_by_type"].values())


def test_slow_card_testing_is_tiny_online_charges_over_days(hard: tuple) -> None:
    tx, _, _ = hard
    slow = tx[tx[S.FRAUD_TYPE] == S.SLOW_CARD_TESTING]
    tiny = slow[slow[S.AMOUNT] < 5]
    assert len(tiny) > 0.6 * len(slow)
    assert (slow[S.CHANNEL] == S.ONLINE).all()
    days = tiny.groupby(S.USER_ID)[S.TIMESTAMP].agg(lambda t: t.dt.normalize().nunique())
    assert days.median() >= 4, "low and slow: spread over days, not a burst"
    per_day = tiny.groupby([tiny[S.USER_ID], tiny[S.TIMESTAMP].dt.normalize()]).size()
    assert per_day.max() <= 2


def test_mimicking_takeover_stays_in_the_users_own_categories(hard: tuple) -> None:
    tx, _, _ = hard
    legit = tx[(tx[S.IS_FRAUD] == 0) & (tx[S.DIRECTION] == S.DEBIT)]
    usual = legit.groupby(S.USER_ID)[S.CATEGORY].agg(set)
    ato = tx[tx[S.FRAUD_TYPE] == S.MIMICKING_TAKEOVER]
    pairs = zip(ato[S.USER_ID], ato[S.CATEGORY], strict=True)
    own = [cat in usual.get(user, set()) for user, cat in pairs]
    assert np.mean(own) > 0.9
    # ...at daytime hours, unlike the default kind's small-hours shopping.
    assert (ato[S.TIMESTAMP].dt.hour >= 6).mean() > 0.8


def test_a_compromised_merchant_hits_many_users(hard: tuple) -> None:
    tx, _, manifest = hard
    hit = tx[tx[S.FRAUD_TYPE] == S.MERCHANT_COMPROMISE]
    merchants = manifest["scenario"]["compromised_merchants"]
    assert merchants and set(hit[S.MERCHANT]) <= set(merchants)
    # One merchant, several users (about USERS / 1000 a day for 3-7 days), one or two each.
    assert hit.groupby(S.MERCHANT)[S.USER_ID].nunique().max() >= 3
    # At most two charges a day (a victim may be drawn again on another day).
    per_day = hit.groupby([S.MERCHANT, S.USER_ID, hit[S.TIMESTAMP].dt.normalize()]).size()
    assert per_day.max() <= 2
    # Legitimate customers use the same merchants: the merchant itself is no giveaway.
    legit = tx[(tx[S.IS_FRAUD] == 0) & tx[S.MERCHANT].isin(merchants)]
    assert len(legit) > len(hit)


def test_every_look_alike_appears_and_is_legitimate(hard: tuple) -> None:
    tx, _, manifest = hard
    look_alikes = manifest["scenario"]["look_alikes"]
    assert set(look_alikes) == set(LOOK_ALIKES)
    by_id = tx.set_index(S.TRANSACTION_ID)
    for kind, facts in look_alikes.items():
        assert facts["episodes"] > 0 and facts["transactions"] >= facts["episodes"], kind
        rows = by_id.loc[facts["examples"]]
        assert len(rows) > 0, kind
        assert (rows[S.IS_FRAUD] == 0).all() and (rows[S.FRAUD_TYPE] == S.NO_FRAUD).all(), kind


def test_look_alikes_show_their_footprints(hard: tuple) -> None:
    tx, _, manifest = hard
    by_id = tx.set_index(S.TRANSACTION_ID)
    look_alikes = manifest["scenario"]["look_alikes"]
    # Travel abroad: a booking, then card-present and cash abroad.
    travel = by_id.loc[look_alikes[TRAVEL_ABROAD]["examples"]]
    assert set(travel[S.CHANNEL]) <= {S.ONLINE, S.CARD_PRESENT, S.ATM}
    assert S.CARD_PRESENT in set(travel[S.CHANNEL])
    # Large planned purchases: far above what the user usually spends.
    large = by_id.loc[look_alikes[LARGE_PLANNED_PURCHASE]["examples"]]
    legit = tx[(tx[S.IS_FRAUD] == 0) & (tx[S.DIRECTION] == S.DEBIT)]
    median = legit.groupby(S.USER_ID)[S.AMOUNT].median()
    assert (large[S.AMOUNT].to_numpy() > 3 * median.loc[large[S.USER_ID]].to_numpy()).all()
    # Salary-day spikes: on a day the user's salary came in.
    spikes = by_id.loc[look_alikes[SALARY_DAY_SPIKE]["examples"]]
    salary = tx[tx[S.CATEGORY] == "salary"]
    paid = set(zip(salary[S.USER_ID], salary[S.TIMESTAMP].dt.normalize(), strict=True))
    on_payday = [
        (u, t) in paid
        for u, t in zip(spikes[S.USER_ID], spikes[S.TIMESTAMP].dt.normalize(), strict=True)
    ]
    assert np.mean(on_payday) > 0.8  # a salary is now and then missed
    # Holiday bursts: mostly on the holidays.
    bursts = tx[tx[S.TRANSACTION_ID].isin(look_alikes["holiday_burst"]["examples"])]
    dates = zip(bursts[S.TIMESTAMP].dt.month, bursts[S.TIMESTAMP].dt.day, strict=True)
    assert np.mean([d in HOLIDAYS for d in dates]) > 0.5


def test_hard_scenario_is_seeded_and_refuses_a_drift_day() -> None:
    a, _, _ = generate(80, 30, 3, scenario=HARD)
    b, _, _ = generate(80, 30, 3, scenario=HARD)
    pd.testing.assert_frame_equal(a, b)
    with pytest.raises(FinriskError, match="--drift-day needs --scenario drift"):
        generate(80, 30, 3, scenario=HARD, drift_day=10)


def test_cli_generates_a_valid_hard_dataset(tmp_path: Path) -> None:
    out = tmp_path / "hard"
    argv = ["data", "generate", "--users", "60", "--days", "30", "--scenario", HARD]
    assert main([*argv, "--out", str(out)]) == 0
    tx = load_transactions(out)  # validated against the packaged schema on load
    assert set(tx[S.FRAUD_TYPE]) - {S.NO_FRAUD} <= set(S.FRAUD_TYPES)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["scenario"]["name"] == HARD
