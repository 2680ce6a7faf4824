"""The synthetic generator: deterministic, schema-valid, labelled, and carrying real signal."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from finrisk import schema as S
from finrisk.cli import main
from finrisk.errors import FinriskError
from finrisk.io import load_transactions, load_users, read_manifest
from finrisk.synthetic import generate
from finrisk.synthetic.fraud import EPISODE_MIX
from finrisk.validation import validate_transactions, validate_users


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    return generate(600, 90, seed=11)


def test_same_seed_same_data_other_seed_other_data() -> None:
    a = generate(40, 30, seed=5)
    b = generate(40, 30, seed=5)
    c = generate(40, 30, seed=6)
    pd.testing.assert_frame_equal(a[0], b[0])
    pd.testing.assert_frame_equal(a[1], b[1])
    assert a[2] == b[2]
    assert not a[0].equals(c[0])
    assert not a[1].equals(c[1])


def test_cli_writes_identical_files_for_the_same_seed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("one", "two"):
        assert (
            main(
                [
                    "data",
                    "generate",
                    "--users",
                    "30",
                    "--days",
                    "20",
                    "--seed",
                    "9",
                    "--out",
                    str(tmp_path / name),
                    "--no-progress",
                ]
            )
            == 0
        )
    summary, _ = json.JSONDecoder().raw_decode(capsys.readouterr().out)
    assert summary["users"] == 30 and summary["transactions"] > 0
    for file in ("transactions.parquet", "users.parquet", "manifest.json"):
        assert (tmp_path / "one" / file).read_bytes() == (tmp_path / "two" / file).read_bytes()
    manifest = read_manifest(tmp_path / "one")
    assert manifest["files"]["transactions.parquet"]["rows"] == summary["transactions"]
    # The written dataset loads and validates as a directory.
    assert len(load_transactions(tmp_path / "one")) == summary["transactions"]
    assert len(load_users(tmp_path / "one")) == 30
    assert main(["data", "validate", str(tmp_path / "one")]) == 0


def test_cli_refuses_to_clobber_other_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    assert (
        main(
            [
                "data",
                "generate",
                "--users",
                "5",
                "--days",
                "5",
                "--out",
                str(tmp_path),
                "--no-progress",
            ]
        )
        == 2
    )
    assert "notes.txt" in capsys.readouterr().err
    assert (tmp_path / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize(
    ("users", "days", "start"),
    [(0, 5, "2025-01-01"), (5, 0, "2025-01-01"), (5, 5, "the first of may")],
)
def test_bad_arguments_are_user_errors(users: int, days: int, start: str) -> None:
    with pytest.raises(FinriskError):
        generate(users, days, seed=1, start=start)


def test_output_fits_the_schema(data: tuple[pd.DataFrame, pd.DataFrame, dict]) -> None:
    tx, users, _ = data
    report = validate_transactions(tx)
    assert report.ok and not report.warnings, report.format()
    assert validate_users(users).ok
    assert list(tx.columns) == list(S.TRANSACTION_COLUMNS)
    assert str(tx[S.TIMESTAMP].dtype) == "datetime64[ns, UTC]"
    assert tx[S.AMOUNT].dtype == np.float64 and tx[S.BALANCE_AFTER].dtype == np.float64
    assert tx[S.IS_FRAUD].dtype == np.int64
    assert tx[S.TRANSACTION_ID].is_unique
    assert set(users[S.USER_ID]) == set(tx[S.USER_ID])


def test_sorted_by_time_and_balances_add_up(
    data: tuple[pd.DataFrame, pd.DataFrame, dict],
) -> None:
    tx, users, _ = data
    assert tx[S.TIMESTAMP].is_monotonic_increasing
    signed = np.where(tx[S.DIRECTION] == S.CREDIT, tx[S.AMOUNT], -tx[S.AMOUNT])
    previous = tx.groupby(S.USER_ID)[S.BALANCE_AFTER].shift()
    opening = tx[S.USER_ID].map(users.set_index(S.USER_ID)["opening_balance"])
    expected = previous.fillna(opening) + signed
    np.testing.assert_allclose(tx[S.BALANCE_AFTER], expected, atol=0.011)


def test_fraud_labels(data: tuple[pd.DataFrame, pd.DataFrame, dict]) -> None:
    tx, users, manifest = data
    # The default kinds only: not the drift or hard scenarios' (their own test files).
    assert set(tx[S.FRAUD_TYPE]) == {S.NO_FRAUD, *EPISODE_MIX}
    assert (tx[S.IS_FRAUD] == (tx[S.FRAUD_TYPE] != S.NO_FRAUD)).all()
    assert 0.003 <= tx[S.IS_FRAUD].mean() <= 0.01
    assert manifest["fraud_transactions"] == tx[S.IS_FRAUD].sum()
    by_type = tx.loc[tx[S.IS_FRAUD] == 1, S.FRAUD_TYPE].value_counts().to_dict()
    assert manifest["fraud_transactions_by_type"] == by_type
    victims = tx.loc[tx[S.IS_FRAUD] == 1, S.USER_ID].unique()
    assert (users.set_index(S.USER_ID).loc[victims, "fraud_episodes"] > 0).all()


def test_fraud_kinds_have_their_footprints(data: tuple[pd.DataFrame, pd.DataFrame, dict]) -> None:
    tx, _, _ = data
    kind = tx[S.FRAUD_TYPE]
    legit = tx[kind == S.NO_FRAUD]
    testing = tx[kind == S.CARD_TESTING]
    assert (testing[S.CHANNEL] == S.ONLINE).all()
    assert (testing[S.AMOUNT] < 5).mean() > 0.8
    assert (legit[S.AMOUNT] < 5).mean() < 0.3

    takeover = tx[kind == S.ACCOUNT_TAKEOVER]
    assert takeover[S.TIMESTAMP].dt.hour.between(0, 7).mean() > 0.8
    assert takeover[S.AMOUNT].median() > 3 * legit[S.AMOUNT].median()

    drain = tx[kind == S.BALANCE_DRAIN]
    assert drain[S.CATEGORY].isin(["transfer_out", "cash_withdrawal"]).all()
    assert drain[S.BALANCE_AFTER].median() < legit[S.BALANCE_AFTER].quantile(0.1)

    spike = tx[kind == S.VELOCITY_SPIKE]
    gaps = spike.groupby(S.USER_ID)[S.TIMESTAMP].diff().dropna()
    normal_gaps = legit.groupby(S.USER_ID)[S.TIMESTAMP].diff().dropna()
    assert gaps.median() < pd.Timedelta(minutes=5) < normal_gaps.median()

    # Fraudsters mostly use merchants the victim had never used before.
    fraud = tx[tx[S.IS_FRAUD] == 1]
    seen_before = [
        m in set(legit.loc[(legit[S.USER_ID] == u) & (legit[S.TIMESTAMP] < t), S.MERCHANT])
        for u, t, m in fraud[[S.USER_ID, S.TIMESTAMP, S.MERCHANT]].head(200).itertuples(index=False)
    ]
    assert np.mean(seen_before) < 0.2


def test_everyday_behaviour(data: tuple[pd.DataFrame, pd.DataFrame, dict]) -> None:
    tx, _, _ = data
    legit = tx[tx[S.IS_FRAUD] == 0]
    salaries = legit[legit[S.CATEGORY] == "salary"].groupby(S.USER_ID).size()
    assert salaries.reindex(tx[S.USER_ID].unique()).fillna(0).ge(2).mean() > 0.9
    rent = legit[legit[S.CATEGORY] == "rent"]
    assert (rent.groupby(S.USER_ID)[S.AMOUNT].nunique() == 1).mean() > 0.99  # same each month
    # Everyday spending concentrates on a user's favourite merchants.
    spend = legit[legit[S.CATEGORY].isin(["groceries", "dining"])]
    top_share = spend.groupby([S.USER_ID, S.MERCHANT]).size().groupby(S.USER_ID).max() / (
        spend.groupby(S.USER_ID).size()
    )
    assert top_share.median() > 0.15
    assert (tx[S.BALANCE_AFTER] < 0).mean() > 0.01  # some overdrafts happen


def test_risk_outcome_follows_health_but_not_perfectly(
    data: tuple[pd.DataFrame, pd.DataFrame, dict],
) -> None:
    tx, users, manifest = data
    risky = users[S.IS_RISKY]
    assert 0.1 <= risky.mean() <= 0.4
    assert manifest["risky_rate"] == pytest.approx(risky.mean(), abs=1e-6)
    auc = roc_auc_score(risky, -users["latent_health_end"])
    assert 0.7 < auc < 0.97
    # Behaviour carries the signal: overdrafts go with risky outcomes.
    overdrawn = (tx[S.BALANCE_AFTER] < 0).groupby(tx[S.USER_ID]).mean()
    assert roc_auc_score(risky, overdrawn.reindex(users[S.USER_ID]).to_numpy()) > 0.6
