"""Validation finds every kind of problem, with counts and rows; the CLI exits 0 / 1 / 2."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from finrisk import schema as S
from finrisk.cli import main
from finrisk.validation import validate_transactions, validate_users


def good_frame() -> pd.DataFrame:
    """Six valid transactions of two users, as a CSV would deliver them (all text)."""
    return pd.DataFrame(
        {
            "transaction_id": ["t1", "t2", "t3", "t4", "t5", "t6"],
            "user_id": ["u1", "u2", "u1", "u2", "u1", "u2"],
            "timestamp": [
                "2025-01-01T08:00:00Z",
                "2025-01-01T09:00:00Z",
                "2025-01-02T10:00:00Z",
                "2025-01-02T10:30:00Z",
                "2025-01-03T12:00:00Z",
                "2025-01-03T12:00:00Z",
            ],
            "amount": ["2500", "12.5", "40", "3000", "1.99", "70"],
            "direction": ["credit", "debit", "debit", "credit", "debit", "debit"],
            "category": ["salary", "groceries", "dining", "salary", "shopping", "cash_withdrawal"],
            "merchant": ["Acme", "FreshMart", "Cafe", "Globex", "Shop", "ATM"],
            "channel": ["transfer", "card_present", "card_present", "transfer", "online", "atm"],
            "balance_after": ["2600", "87.5", "2560", "3087.5", "2558.01", "3017.5"],
            "is_fraud": ["0", "0", "0", "0", "1", "0"],
            "fraud_type": ["none", "none", "none", "none", "card_testing", "none"],
        }
    )


def test_good_frame_is_ok() -> None:
    report = validate_transactions(good_frame())
    assert report.ok, report.format()
    assert report.problems == []
    assert report.rows == 6


def test_typed_frame_is_ok_too() -> None:
    frame = good_frame()
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
    for column in ("amount", "balance_after"):
        frame[column] = frame[column].astype(float)
    frame["is_fraud"] = frame["is_fraud"].astype(int)
    assert validate_transactions(frame).ok


Mutation = Callable[[pd.DataFrame], pd.DataFrame]


def _set(column: str, row: int, value: object) -> Mutation:
    def mutate(frame: pd.DataFrame) -> pd.DataFrame:
        frame.loc[row, column] = value
        return frame

    return mutate


CASES: list[tuple[str, Mutation, str, str | None, tuple[int, ...]]] = [
    ("missing column", lambda f: f.drop(columns=["merchant"]), "missing_column", "merchant", ()),
    ("wrong type amount", _set("amount", 2, "12,50"), "wrong_type", "amount", (3,)),
    ("wrong type balance", _set("balance_after", 0, "n/a"), "wrong_type", "balance_after", (1,)),
    ("wrong type timestamp", _set("timestamp", 3, "yesterday"), "wrong_type", "timestamp", (4,)),
    ("wrong type label", _set("is_fraud", 1, "yes"), "wrong_type", "is_fraud", (2,)),
    ("null id", _set("transaction_id", 4, None), "null_value", "transaction_id", (5,)),
    ("empty user", _set("user_id", 1, ""), "null_value", "user_id", (2,)),
    ("null timestamp", _set("timestamp", 5, None), "null_value", "timestamp", (6,)),
    ("negative amount", _set("amount", 1, "-12.5"), "non_positive_amount", "amount", (2,)),
    ("zero amount", _set("amount", 4, "0"), "non_positive_amount", "amount", (5,)),
    ("absurd amount", _set("amount", 3, "2e7"), "absurd_amount", "amount", (4,)),
    ("infinite amount", _set("amount", 3, "inf"), "absurd_amount", "amount", (4,)),
    ("infinite balance", _set("balance_after", 2, "-inf"), "non_finite", "balance_after", (3,)),
    ("duplicate id", _set("transaction_id", 3, "t2"), "duplicate_id", "transaction_id", (4,)),
    (
        "out of order",
        _set("timestamp", 2, "2024-12-31T00:00:00Z"),
        "timestamp_out_of_order",
        "timestamp",
        (3,),
    ),
    ("unknown category", _set("category", 1, "grocery"), "unknown_value", "category", (2,)),
    ("unknown channel", _set("channel", 2, "pigeon"), "unknown_value", "channel", (3,)),
    ("unknown direction", _set("direction", 2, "out"), "unknown_value", "direction", (3,)),
    ("unknown fraud type", _set("fraud_type", 4, "phishing"), "unknown_value", "fraud_type", (5,)),
    (
        "credit category as debit",
        _set("direction", 0, "debit"),
        "direction_mismatch",
        "direction",
        (1,),
    ),
    ("label not 0/1", _set("is_fraud", 2, "2"), "invalid_label", "is_fraud", (3,)),
    ("fraud without type", _set("fraud_type", 4, "none"), "label_mismatch", "fraud_type", (5,)),
    (
        "type without fraud",
        _set("fraud_type", 0, "balance_drain"),
        "label_mismatch",
        "fraud_type",
        (1,),
    ),
    ("no rows", lambda f: f.iloc[0:0], "empty_table", None, ()),
]


@pytest.mark.parametrize(
    ("name", "mutate", "kind", "column", "rows"), CASES, ids=[c[0] for c in CASES]
)
def test_each_problem_kind_is_an_error(
    name: str, mutate: Mutation, kind: str, column: str | None, rows: tuple[int, ...]
) -> None:
    report = validate_transactions(mutate(good_frame()))
    assert not report.ok
    found = [p for p in report.errors if p.kind == kind and p.column == column]
    assert len(found) == 1, report.format()
    assert found[0].rows == rows
    assert found[0].count == (len(rows) if rows else found[0].count)
    assert kind in report.format()


def test_every_problem_is_reported_at_once() -> None:
    frame = good_frame()
    for _, mutate, *_ in CASES[1:-1]:
        frame = mutate(frame)
    report = validate_transactions(frame)
    kinds = {p.kind for p in report.errors}
    assert kinds == {c[2] for c in CASES[1:-1]}


def test_counts_and_examples_cover_all_rows() -> None:
    frame = pd.concat([good_frame()] * 4, ignore_index=True)
    frame["transaction_id"] = [f"t{i}" for i in range(len(frame))]
    frame["timestamp"] = pd.date_range("2025-01-01", periods=len(frame), freq="h", tz="UTC")
    frame.loc[[3, 9, 10, 20], "category"] = "grocery"
    frame.loc[[3, 9, 10, 20], "direction"] = "debit"
    (problem,) = validate_transactions(frame).errors
    assert (problem.kind, problem.count) == ("unknown_value", 4)
    assert problem.rows == (4, 10, 11, 21)
    assert problem.values == ("grocery",)


def test_extra_columns_and_half_labels_are_warnings() -> None:
    frame = good_frame().drop(columns=["fraud_type"])
    frame["note"] = "x"
    report = validate_transactions(frame)
    assert report.ok
    assert {p.kind for p in report.warnings} == {"extra_column", "label_incomplete"}
    assert "'note'" in report.format()


def test_labels_are_optional() -> None:
    assert validate_transactions(good_frame().drop(columns=list(S.LABEL_COLUMNS))).ok


def test_equal_timestamps_of_a_user_are_in_order() -> None:
    frame = good_frame()
    frame.loc[2, "timestamp"] = frame.loc[0, "timestamp"]
    assert validate_transactions(frame).ok


def test_report_dict_is_json() -> None:
    report = validate_transactions(_set("amount", 1, "-1")(good_frame()), source="x.csv")
    data = json.loads(json.dumps(report.to_dict()))
    assert data["ok"] is False and data["source"] == "x.csv" and data["rows"] == 6
    assert data["errors"][0]["kind"] == "non_positive_amount"
    assert data["errors"][0]["rows"] == [2]


def test_out_of_order_is_vectorised_on_a_large_frame() -> None:
    n = 200_000
    rng = np.random.default_rng(0)
    users = rng.integers(0, 1000, n).astype(str)
    ts = pd.Series(pd.date_range("2025-01-01", periods=n, freq="s", tz="UTC"))
    swapped = [1000, 50_000]
    for i in swapped:
        users[i - 1] = users[i]
        ts[i - 1], ts[i] = ts[i], ts[i - 1]
    frame = good_frame().iloc[[0]].loc[[0] * n].reset_index(drop=True)
    frame["transaction_id"] = np.arange(n).astype(str)
    frame["user_id"] = users
    frame["timestamp"] = ts
    report = validate_transactions(frame)
    (problem,) = report.errors
    assert problem.kind == "timestamp_out_of_order"
    assert problem.count == 2 and problem.rows == tuple(i + 1 for i in swapped)


def test_user_table_problems() -> None:
    users = pd.DataFrame(
        {
            "user_id": ["a", "b", "b", None],
            "is_risky": [0, 1, 2, None],
            "city": ["x", "y", "z", "w"],
            "income": ["1", "x", "2", "3"],
        }
    )
    report = validate_users(users)
    kinds = {(p.kind, p.column) for p in report.errors}
    assert kinds == {
        ("null_value", "user_id"),
        ("duplicate_id", "user_id"),
        ("invalid_label", "is_risky"),
        ("null_value", "is_risky"),
    }
    assert [p.kind for p in report.warnings] == ["non_numeric_column"]
    assert validate_users(users.iloc[:2]).ok


# CLI: in process, files under tmp_path.


def _csv(tmp_path: Path, frame: pd.DataFrame, name: str = "tx.csv") -> Path:
    file = tmp_path / name
    frame.to_csv(file, index=False)
    return file


def test_cli_good_file_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "validate", str(_csv(tmp_path, good_frame()))]) == 0
    assert "OK" in capsys.readouterr().out


def test_cli_parquet_file_exits_0(tmp_path: Path) -> None:
    file = tmp_path / "tx.parquet"
    good_frame().to_parquet(file)
    assert main(["data", "validate", str(file)]) == 0


def test_cli_bad_file_exits_1_with_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = _csv(tmp_path, _set("category", 1, "grocery")(good_frame()))
    assert main(["data", "validate", str(file)]) == 1
    out = capsys.readouterr().out
    assert "INVALID" in out and "unknown_value" in out and "'grocery'" in out


def test_cli_json_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    file = _csv(tmp_path, _set("amount", 0, "-5")(good_frame()))
    assert main(["data", "validate", str(file), "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is False
    assert data["reports"][0]["errors"][0]["kind"] == "non_positive_amount"


def test_cli_schema_file_changes_the_verdict(tmp_path: Path) -> None:
    frame = good_frame().rename(columns={"amount": "value"})
    frame["category"] = frame["category"].replace({"groceries": "food"})
    file = _csv(tmp_path, frame)
    assert main(["data", "validate", str(file)]) == 1
    schema = tmp_path / "schema.yaml"
    schema.write_text(
        "transactions:\n"
        "  column_mapping: {value: amount}\n"
        "  value_mapping: {category: {food: groceries}}\n"
    )
    assert main(["data", "validate", str(file), "--schema", str(schema)]) == 0


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "no such file"),
        (b"PAR1 not really", "cannot read"),
        (b"", "empty"),
        (b"\xff\xfe\x00garbage\xff,\x00\n\x81\x82", "cannot read"),
    ],
)
def test_cli_unreadable_file_exits_2_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes | None, expected: str
) -> None:
    suffix = ".parquet" if content and content.startswith(b"PAR1") else ".csv"
    file = tmp_path / f"broken{suffix}"
    if content is not None:
        file.write_bytes(content)
    assert main(["data", "validate", str(file)]) == 2
    err = capsys.readouterr().err
    assert expected in err and str(file) in err and "Traceback" not in err


def test_cli_unknown_file_type_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    file = tmp_path / "tx.xlsx"
    file.write_bytes(b"x")
    assert main(["data", "validate", str(file)]) == 2
    assert "unknown file type" in capsys.readouterr().err


def test_cli_bad_schema_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    schema = tmp_path / "s.yaml"
    schema.write_text("transactions: {column_mapping: {x: nothing}}\n")
    assert (
        main(["data", "validate", str(_csv(tmp_path, good_frame())), "--schema", str(schema)]) == 2
    )
    assert "'nothing' is not a canonical column" in capsys.readouterr().err


def test_cli_user_table(tmp_path: Path) -> None:
    ok = _csv(tmp_path, pd.DataFrame({"user_id": ["a", "b"], "is_risky": [0, 1]}), "u.csv")
    bad = _csv(tmp_path, pd.DataFrame({"user_id": ["a", "a"], "is_risky": [0, 1]}), "b.csv")
    assert main(["data", "validate", str(ok), "--table", "users"]) == 0
    assert main(["data", "validate", str(bad), "--table", "users"]) == 1


def test_a_value_of_the_wrong_kind_is_reported_not_raised() -> None:
    """A table (a parquet file, say) can hold a list where text belongs: the contract's rules
    report it as outside the vocabulary, and never fail on it."""
    good = {
        "transaction_id": "t1",
        "user_id": "u1",
        "timestamp": "2025-01-01T00:00:00Z",
        "amount": 5.0,
        "direction": "debit",
        "category": "groceries",
        "merchant": "Shop",
        "channel": "online",
        "balance_after": 1.0,
    }
    odd = {**good, "transaction_id": "t2", "category": ["groceries"], "direction": ["debit"]}
    report = validate_transactions(pd.DataFrame([good, odd]))
    kinds = {(p.kind, p.column) for p in report.errors}
    assert ("unknown_value", "category") in kinds and ("unknown_value", "direction") in kinds
