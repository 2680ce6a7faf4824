"""The transaction contract: what it refuses wherever a transaction comes from, and a table and
a stream judging the same row alike under a user's schema."""

from __future__ import annotations

from typing import Any

import orjson
import pandas as pd
import pytest

from finrisk.errors import FinriskError
from finrisk.schema import load_schema
from finrisk.serving.bridge.messages import SCHEMA_INVALID, BadMessage, MessageParser
from finrisk.transactions import transaction_columns
from finrisk.validation import validate_transactions

GOOD: dict[str, Any] = {
    "transaction_id": "tx1",
    "user_id": "u1",
    "timestamp": "2025-01-01T00:00:00Z",
    "amount": 25.5,
    "direction": "debit",
    "category": "groceries",
    "merchant": "Corner Shop",
    "channel": "card_present",
    "balance_after": -12.0,
}


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"amount": float("nan")}, "amount"),
        ({"amount": float("inf")}, "amount"),
        ({"balance_after": float("nan")}, "balance_after"),
        ({"direction": None}, "direction"),
        ({"category": None}, "category"),
        ({"user_id": ["u1"]}, "user_id"),
        ({"amount": -1.0}, "amount"),
        ({"channel": "pigeon"}, "channel"),
    ],
)
def test_columns_from_mappings_refuse_what_the_stream_refuses(
    changes: dict[str, Any], field: str
) -> None:
    with pytest.raises(FinriskError, match=f"transaction 1: field '{field}'"):
        transaction_columns([GOOD, {**GOOD, **changes}])


def _schema(tmp_path: Any, body: str) -> Any:
    path = tmp_path / "bank.yaml"
    path.write_text("transactions:\n" + body)
    return load_schema(path)


def test_a_message_with_a_field_and_the_field_mapped_onto_it_is_refused(tmp_path: Any) -> None:
    schema = _schema(tmp_path, "  column_mapping: {amt: amount}\n")
    both = {**GOOD, "amt": 999_999.0}
    with pytest.raises(BadMessage, match=r"maps field 'amt' to 'amount'.*also has") as caught:
        MessageParser(schema).parse(orjson.dumps(both))
    assert caught.value.kind == SCHEMA_INVALID
    with pytest.raises(FinriskError, match="maps 'amt' to 'amount'"):
        validate_transactions(pd.DataFrame([both]), schema)
    # A message without the canonical field maps as it should, in the same batch.
    alone = {k: v for k, v in both.items() if k != "amount"}
    parsed = MessageParser(schema).parse_batch([orjson.dumps(both), orjson.dumps(alone)])
    assert isinstance(parsed.transactions[0], BadMessage)
    assert parsed.columns.amount.tolist() == [999_999.0]


@pytest.mark.parametrize(
    ("amount", "direction"), [(-5.0, "credit"), (-5.0, ...), (5.0, ...), (5.0, "debit")]
)
def test_signed_amounts_are_read_alike_by_a_table_and_the_stream(
    tmp_path: Any, amount: float, direction: Any
) -> None:
    schema = _schema(tmp_path, "  signed_amounts: true\n")
    expected = direction if direction is not ... else ("debit" if amount < 0 else "credit")
    category = "groceries" if expected == "debit" else "salary"
    given = {**GOOD, "amount": amount, "direction": direction, "category": category}
    row = {k: v for k, v in given.items() if v is not ...}
    assert validate_transactions(pd.DataFrame([row]), schema).ok
    tx = MessageParser(schema).parse(orjson.dumps(row))
    assert (tx.fields["amount"], tx.fields["direction"]) == (abs(amount), expected)


def test_a_table_with_a_value_of_the_wrong_kind_in_a_mapped_column_is_reported(
    tmp_path: Any,
) -> None:
    schema = _schema(tmp_path, "  value_mapping: {direction: {D: debit, C: credit}}\n")
    rows = [{**GOOD, "direction": "D"}, {**GOOD, "transaction_id": "t2", "direction": ["D"]}]
    report = validate_transactions(pd.DataFrame(rows), schema)
    assert [(p.kind, p.column, p.rows) for p in report.errors] == [
        ("unknown_value", "direction", (2,))
    ]
