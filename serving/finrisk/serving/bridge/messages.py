"""The wire format of the transactions topic, and the check every message passes before scoring.

A message is a UTF-8 JSON object with the canonical transaction fields (finrisk.transactions),
keyed by user id. `timestamp` is epoch milliseconds (int) or an ISO-8601 string. A user schema
file's column and value mappings apply, so a bank's own field names can be read as they are.

A batch is checked in two passes over its columns: decoding (each field present and of its
JSON type; the value's own reason when not), then the schema's rules (finrisk.transactions),
once per row. A message that fails is a `BadMessage` with a kind ("unparseable" or
"schema_invalid") and a reason naming the field; the bridge sends it to the dead-letter topic
and carries on.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from itertools import repeat
from typing import Any, NamedTuple

import numpy as np
import orjson

from finrisk.schema import (
    AMOUNT,
    BALANCE_AFTER,
    CATEGORY,
    CHANNEL,
    DEBIT,
    DIRECTION,
    MERCHANT,
    TIMESTAMP,
    TRANSACTION_ID,
    USER_ID,
    Schema,
    default_schema,
)
from finrisk.serving.bridge.wire_columns import MISSING, WireColumns, only
from finrisk.transactions import WIRE_FIELDS, RuleInputs, Rules, TxColumns
from finrisk.transactions import Mapping as FieldMapping

UNPARSEABLE = "unparseable"
SCHEMA_INVALID = "schema_invalid"

_TEXT_FIELDS = (TRANSACTION_ID, USER_ID, MERCHANT, DIRECTION, CATEGORY, CHANNEL)


class BadMessage(Exception):
    """A message that cannot be scored; `kind` is UNPARSEABLE or SCHEMA_INVALID."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


class Transaction(NamedTuple):
    """A valid transaction: canonical fields (as OnlineFeatures reads them) and its event time.

    A tuple, like Score: one is made per message, and a frozen dataclass costs more to build.
    """

    fields: dict[str, Any]
    event_ns: int

    @property
    def transaction_id(self) -> str:
        return str(self.fields[TRANSACTION_ID])

    @property
    def user_id(self) -> str:
        return str(self.fields[USER_ID])


def encode_transaction(tx: Mapping[Any, Any]) -> bytes:
    """The wire form of one canonical transaction (timestamp already in epoch ms or ISO)."""
    return orjson.dumps({name: tx[name] for name in WIRE_FIELDS})


class ParsedBatch(NamedTuple):
    """Message values parsed and checked: for each, its Transaction or what is wrong."""

    transactions: list[Transaction | BadMessage]
    # The valid transactions as the feature engine's columns, in order.
    columns: TxColumns


def _objects(column: list[Any], rows: list[int] | None) -> list[Any]:
    return column if rows is None else [column[k] for k in rows]


def _decoded(value: bytes | None) -> dict[str, Any] | BadMessage:
    if value is None:
        return BadMessage(UNPARSEABLE, "message has no value")
    try:
        document = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        return BadMessage(UNPARSEABLE, f"value is not JSON: {exc}")
    if not isinstance(document, dict):
        return BadMessage(UNPARSEABLE, f"value is JSON {type(document).__name__}, not an object")
    return document


class MessageParser:
    """Parses and checks message values against one schema (the packaged one by default)."""

    def __init__(self, schema: Schema | None = None) -> None:
        schema = schema or default_schema()
        self.rules = Rules(schema)
        self.mapping = FieldMapping(schema)

    def parse(self, value: bytes | None) -> Transaction:
        """The transaction in `value`, or BadMessage saying what is wrong."""
        (parsed,) = self.parse_batch([value]).transactions
        if isinstance(parsed, BadMessage):
            raise parsed
        return parsed

    def parse_batch(self, values: Sequence[bytes | None]) -> ParsedBatch:
        """`parse` of each value, in order, a BadMessage standing for each failure."""
        results: list[Transaction | BadMessage | None] = [None] * len(values)
        documents: list[dict[str, Any]] = []
        # All at once, the common case; a value that fails (None fails too) is named below.
        with contextlib.suppress(orjson.JSONDecodeError):
            documents = list(map(orjson.loads, values))  # type: ignore[arg-type]
        if len(documents) == len(values) and only(dict, documents):
            rows = list(range(len(values)))
        else:
            documents, rows = [], []
            for i, item in enumerate(map(_decoded, values)):
                if isinstance(item, BadMessage):
                    results[i] = item
                else:
                    documents.append(item)
                    rows.append(i)
        mapping = self.mapping
        if mapping.columns:
            kept: list[int] = []
            for k, document in enumerate(documents):
                conflict = mapping.conflict(document)
                if conflict is None:
                    kept.append(k)
                else:
                    results[rows[k]] = BadMessage(SCHEMA_INVALID, conflict)
            if len(kept) != len(documents):
                documents, rows = [documents[k] for k in kept], [rows[k] for k in kept]
        if mapping:
            documents = [mapping.document(document) for document in documents]
        columns = WireColumns(documents)
        amount = columns.numbers(AMOUNT)
        if mapping.signed_amounts:
            self._directions_from_signs(columns, amount)
        balance = columns.numbers(BALANCE_AFTER)
        for name in _TEXT_FIELDS:
            columns.texts(name)
        event_ns = columns.timestamps()
        v, problems = columns.values, columns.problems
        decoded = [k for k in range(columns.n) if k not in problems] if problems else None
        reasons = self.rules.first_broken(
            RuleInputs(
                amount if decoded is None else amount[decoded],
                balance if decoded is None else balance[decoded],
                *(_objects(v[name], decoded) for name in (DIRECTION, CATEGORY, CHANNEL)),
            )
        )
        for j, reason in reasons.items():
            problems[j if decoded is None else decoded[j]] = reason
        for k, reason in problems.items():
            results[rows[k]] = BadMessage(SCHEMA_INVALID, reason)
        good = [k for k in range(columns.n) if k not in problems]
        if columns.canonical and not mapping and not problems:
            # Each document as it came is its transaction's fields (the common case):
            # tuple.__new__ makes the Transactions without a Python-level call per message.
            made = map(
                tuple.__new__, repeat(Transaction), zip(documents, event_ns.tolist(), strict=True)
            )
            if len(rows) == len(results):
                results = list(made)
            else:
                for k, transaction in zip(rows, made, strict=True):
                    results[k] = transaction
        else:
            for k in good:
                if columns.exact and not mapping:
                    fields = documents[k]
                else:
                    fields = {name: v[name][k] for name in WIRE_FIELDS}
                fields[AMOUNT], fields[BALANCE_AFTER] = float(amount[k]), float(balance[k])
                fields[TIMESTAMP] = v[TIMESTAMP][k]
                results[rows[k]] = Transaction(fields, int(event_ns[k]))
        every = len(good) == columns.n
        index = np.asarray(good, dtype=np.intp)

        def texts(name: str) -> list[Any]:
            return v[name] if every else [v[name][k] for k in good]

        return ParsedBatch(
            results,  # type: ignore[arg-type]  # every slot is filled by now
            TxColumns(
                user_id=texts(USER_ID),
                timestamp_ns=event_ns if every else event_ns[index],
                amount=amount if every else amount[index],
                is_debit=np.array([d == DEBIT for d in texts(DIRECTION)], dtype=np.bool_),
                category=texts(CATEGORY),
                merchant=texts(MERCHANT),
                channel=texts(CHANNEL),
                balance_after=balance if every else balance[index],
            ),
        )

    def _directions_from_signs(self, columns: WireColumns, amount: np.ndarray) -> None:
        """Signed amounts: the amount is the magnitude, and where a message has no direction
        the sign gives it (as a table's are read: finrisk.parsing)."""
        finite = np.isfinite(amount)
        directions = columns.values[DIRECTION]
        _, signed = self.mapping.signed(amount)
        for k, direction in enumerate(directions):
            if direction is MISSING and finite[k]:
                directions[k] = signed[k]
        amount[finite] = np.abs(amount[finite])
        columns.converted = True
