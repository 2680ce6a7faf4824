"""The schema file, its user overrides, and loading files through the column mapping."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from finrisk import schema as S
from finrisk.errors import FinriskError
from finrisk.io import DataValidationError, load_transactions, load_users
from finrisk.schema import load_schema


def test_constants_match_the_packaged_file() -> None:
    doc = yaml.safe_load(
        (Path(S.__file__).parent / "config" / "schema.yaml").read_text(encoding="utf-8")
    )["transactions"]
    assert tuple(doc["columns"]) == S.TRANSACTION_COLUMNS
    assert tuple(doc["categories"]["credit"]) == S.CREDIT_CATEGORIES
    assert tuple(doc["categories"]["credit"] + doc["categories"]["debit"]) == S.CATEGORIES
    assert tuple(doc["channels"]) == S.CHANNELS
    assert tuple(doc["fraud_types"]) == S.FRAUD_TYPES
    assert set(S.DIRECTIONS) == set(doc["directions"])
    kinds = {S.CARD_TESTING, S.ACCOUNT_TAKEOVER, S.BALANCE_DRAIN, S.VELOCITY_SPIKE}
    hard = {S.SLOW_CARD_TESTING, S.MIMICKING_TAKEOVER, S.MERCHANT_COMPROMISE}
    assert kinds | {S.GIFT_CARD_SCAM} | hard == set(S.FRAUD_TYPES)
    assert {S.CARD_PRESENT, S.ONLINE, S.ATM, S.TRANSFER, S.DIRECT_DEBIT} == set(S.CHANNELS)


def test_required_columns_exclude_labels() -> None:
    required = load_schema().required_columns
    assert S.IS_FRAUD not in required and S.FRAUD_TYPE not in required
    assert S.TRANSACTION_ID in required and S.BALANCE_AFTER in required


def _write(tmp_path: Path, content: dict | str, name: str = "schema.yaml") -> Path:
    file = tmp_path / name
    file.write_text(content if isinstance(content, str) else yaml.safe_dump(content))
    return file


def test_user_schema_overrides_only_what_it_sets(tmp_path: Path) -> None:
    file = _write(
        tmp_path,
        {
            "transactions": {
                "amount": {"max": 500},
                "categories": {"debit": ["food", "fun"]},
                "column_mapping": {"ref": "transaction_id"},
                "timestamp": {"format": "%d/%m/%Y %H:%M"},
            },
            "users": {"label_column": "defaulted"},
        },
    )
    schema = load_schema(file)
    assert schema.transactions.amount.max == 500
    assert schema.debit_categories == ("food", "fun")
    assert schema.credit_categories == S.CREDIT_CATEGORIES  # untouched sibling kept
    assert schema.channels == S.CHANNELS
    assert schema.transactions.column_mapping == {"ref": "transaction_id"}
    assert schema.transactions.timestamp.format == "%d/%m/%Y %H:%M"
    assert schema.transactions.timestamp.timezone == "UTC"
    assert schema.users.label_column == "defaulted"
    assert schema.users.user_id_column == S.USER_ID


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ({"transactions": {"column_mapping": {"ref": "txn"}}}, "'txn' is not a canonical"),
        ({"transactions": {"column_mapping": {"a": "amount", "b": "amount"}}}, "maps both"),
        ({"transactions": {"amuont": {"max": 5}}}, "amuont"),
        ({"transactions": {"amount": {"max": -1}}}, "amount.max"),
        ({"transactions": {"columns": {"country": {"type": "string"}}}}, "unknown ['country']"),
        ({"transactions": {"categories": {"debit": ["salary"]}}}, "both credit and debit"),
        ({"transactions": {"fraud_types": ["none"]}}, "must not list 'none'"),
        ("transactions: [unclosed", "not valid YAML"),
        ("- a list", "must hold a mapping"),
        ({"transactions": {"timestamp": {"timezone": "Mars/Olympus"}}}, "unknown time zone"),
    ],
)
def test_bad_schema_files_name_the_problem(
    tmp_path: Path, content: dict | str, expected: str
) -> None:
    file = _write(tmp_path, content)
    with pytest.raises(FinriskError, match="schema file") as info:
        load_schema(file)
    assert expected in str(info.value)


def test_missing_schema_file(tmp_path: Path) -> None:
    with pytest.raises(FinriskError, match="cannot read schema file"):
        load_schema(tmp_path / "nope.yaml")


def _bank_csv(tmp_path: Path) -> Path:
    file = tmp_path / "bank.csv"
    pd.DataFrame(
        {
            "txn_ref": ["a1", "a2", "a3"],
            "customer": ["007", "007", "042"],
            "booked_at": ["31/01/2025 09:15:00", "31/01/2025 18:00:00", "01/02/2025 08:00:00"],
            "value": ["-12.50", "2500", "-40"],
            "mcc_group": ["Groceries", "salary", "dining"],
            "counterparty": ["FreshMart", "Acme", "Cafe"],
            "method": ["POS", "SEPA", "ECOM"],
            "running_balance": ["100.5", "2600.5", "2560.5"],
        }
    ).to_csv(file, index=False)
    return file


def _bank_schema(tmp_path: Path) -> Path:
    return _write(
        tmp_path,
        {
            "transactions": {
                "column_mapping": {
                    "txn_ref": "transaction_id",
                    "customer": "user_id",
                    "booked_at": "timestamp",
                    "value": "amount",
                    "mcc_group": "category",
                    "counterparty": "merchant",
                    "method": "channel",
                    "running_balance": "balance_after",
                },
                "value_mapping": {
                    "channel": {"POS": "card_present", "ECOM": "online", "SEPA": "transfer"},
                    "category": {"Groceries": "groceries"},
                },
                "signed_amounts": True,
                "timestamp": {"format": "%d/%m/%Y %H:%M:%S", "timezone": "Europe/Berlin"},
            },
        },
        "bank.yaml",
    )


def test_column_mapping_loads_a_foreign_csv(tmp_path: Path) -> None:
    frame = load_transactions(_bank_csv(tmp_path), load_schema(_bank_schema(tmp_path)))
    assert list(frame.columns) == [c for c in S.TRANSACTION_COLUMNS if c not in S.LABEL_COLUMNS]
    assert frame[S.USER_ID].tolist() == ["007", "007", "042"]  # leading zeros kept
    assert frame[S.AMOUNT].tolist() == [12.5, 2500.0, 40.0]
    assert frame[S.DIRECTION].tolist() == ["debit", "credit", "debit"]
    assert frame[S.CHANNEL].tolist() == ["card_present", "transfer", "online"]
    assert frame[S.CATEGORY].tolist() == ["groceries", "salary", "dining"]
    assert str(frame[S.TIMESTAMP].dtype) == "datetime64[ns, UTC]"
    # 09:15 in Berlin (UTC+1 in winter) is 08:15 UTC.
    assert frame[S.TIMESTAMP].iloc[0] == pd.Timestamp("2025-01-31 08:15:00", tz="UTC")
    assert frame[S.BALANCE_AFTER].dtype == "float64"


def test_without_the_mapping_the_same_file_is_rejected_with_every_problem(
    tmp_path: Path,
) -> None:
    with pytest.raises(DataValidationError) as info:
        load_transactions(_bank_csv(tmp_path))
    missing = {p.column for p in info.value.report.errors if p.kind == "missing_column"}
    assert missing == {
        S.TRANSACTION_ID,
        S.USER_ID,
        S.TIMESTAMP,
        S.AMOUNT,
        S.DIRECTION,
        S.CATEGORY,
        S.MERCHANT,
        S.CHANNEL,
        S.BALANCE_AFTER,
    }
    assert "missing_column" in str(info.value)


def test_mapped_column_missing_from_the_file_names_both(tmp_path: Path) -> None:
    file = tmp_path / "t.csv"
    pd.read_csv(_bank_csv(tmp_path)).drop(columns=["value"]).to_csv(file, index=False)
    with pytest.raises(DataValidationError) as info:
        load_transactions(file, load_schema(_bank_schema(tmp_path)))
    text = str(info.value)
    assert "amount" in text and "mapped from 'value'" in text


def test_problems_on_mapped_columns_name_the_file_column(tmp_path: Path) -> None:
    file = tmp_path / "t.csv"
    frame = pd.read_csv(_bank_csv(tmp_path), dtype=str)
    frame.loc[1, "value"] = "lots"
    frame.to_csv(file, index=False)
    with pytest.raises(DataValidationError) as info:
        load_transactions(file, load_schema(_bank_schema(tmp_path)))
    (problem,) = [p for p in info.value.report.errors if p.kind == "wrong_type"]
    assert problem.column == "amount (file column 'value')"
    assert problem.rows == (2,)
    assert problem.values == ("lots",)


def test_user_table_with_its_own_names(tmp_path: Path) -> None:
    file = tmp_path / "users.csv"
    pd.DataFrame(
        {"customer": ["007", "042"], "defaulted": ["1", "0"], "score": ["3.5", "1"]}
    ).to_csv(file, index=False)
    schema = load_schema(
        _write(tmp_path, {"users": {"user_id_column": "customer", "label_column": "defaulted"}})
    )
    users = load_users(file, schema)
    assert users[S.USER_ID].tolist() == ["007", "042"]
    assert users[S.IS_RISKY].tolist() == [1, 0]
    assert "score" in users.columns
    with pytest.raises(DataValidationError, match="label column is missing"):
        load_users(file)  # default names: no user_id / is_risky columns


def test_mapping_onto_a_column_the_file_already_has_is_refused(tmp_path: Path) -> None:
    file = tmp_path / "t.csv"
    frame = pd.read_csv(_bank_csv(tmp_path), dtype=str)
    frame["amount"] = "1"
    frame.to_csv(file, index=False)
    with pytest.raises(FinriskError, match="also has a column 'amount'"):
        load_transactions(file, load_schema(_bank_schema(tmp_path)))


def test_loaded_frame_has_the_contract_dtypes(tmp_path: Path) -> None:
    file = tmp_path / "t.csv"
    pd.DataFrame(
        {
            "transaction_id": ["1", "2"],
            "user_id": ["10", "10"],
            "timestamp": ["2025-03-01 10:00:00", "2025-03-01T11:00:00+01:00"],
            "amount": ["5", "7.25"],
            "direction": ["debit", "debit"],
            "category": ["dining", "groceries"],
            "merchant": ["Cafe", "Shop"],
            "channel": ["online", "atm"],
            "balance_after": ["-5", "-12.25"],
            "is_fraud": ["0", "1"],
            "fraud_type": ["none", "velocity_spike"],
        }
    ).to_csv(file, index=False)
    frame = load_transactions(file)
    assert frame.dtypes.astype(str).to_dict() == {
        "transaction_id": "object",
        "user_id": "object",
        "timestamp": "datetime64[ns, UTC]",
        "amount": "float64",
        "direction": "object",
        "category": "object",
        "merchant": "object",
        "channel": "object",
        "balance_after": "float64",
        "is_fraud": "int64",
        "fraud_type": "object",
    }
    assert frame[S.TIMESTAMP].tolist() == [pd.Timestamp("2025-03-01 10:00", tz="UTC")] * 2
    assert frame[S.TRANSACTION_ID].tolist() == ["1", "2"]
