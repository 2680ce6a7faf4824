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
import math
import operator
from collections.abc import Mapping, Sequence
from itertools import repeat
from typing import Any, NamedTuple

import numpy as np
import orjson

from finrisk.errors import FinriskError
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
from finrisk.timestamps import MAX_NS, MIN_NS, to_ns
from finrisk.transactions import WIRE_FIELDS, RuleInputs, Rules, TxColumns
from finrisk.transactions import Mapping as FieldMapping

UNPARSEABLE = "unparseable"
SCHEMA_INVALID = "schema_invalid"

_NS_PER_MS = 1_000_000
# Epoch milliseconds whose nanoseconds fit MIN_NS..MAX_NS.
_MIN_MS, _MAX_MS = -(-MIN_NS // _NS_PER_MS), MAX_NS // _NS_PER_MS
_WIRE_VALUES = operator.itemgetter(*WIRE_FIELDS)
_TEXT_FIELDS = (TRANSACTION_ID, USER_ID, MERCHANT, DIRECTION, CATEGORY, CHANNEL)
_MISSING = object()  # a field the message does not have


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


def _only(kind: type, values: Sequence[Any]) -> bool:
    return set(map(type, values)) <= {kind}


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


class _Columns:
    """The wire fields of a batch's documents as columns, and the first decoding problem of
    each row (in the order of WIRE_FIELDS' checks below)."""

    def __init__(self, documents: list[dict[str, Any]]) -> None:
        self.n = len(documents)
        self.problems: dict[int, str] = {}
        # Every document holding exactly the wire fields (the producers' form): the whole
        # batch's columns at once, and each document is its own transaction's fields.
        self.exact = set(map(len, documents)) <= {len(WIRE_FIELDS)}
        values: dict[str, Sequence[Any]] | None = None
        if self.exact and documents:
            try:
                rows = zip(*map(_WIRE_VALUES, documents), strict=True)
                values = dict(zip(WIRE_FIELDS, rows, strict=True))
            except KeyError:
                self.exact = False
        if values is None:
            values = {name: [d.get(name, _MISSING) for d in documents] for name in WIRE_FIELDS}
        self.values = {name: list(column) for name, column in values.items()}
        # A value was converted or a field failed: the documents are not the fields as they are.
        self.converted = False

    @property
    def canonical(self) -> bool:
        """Whether every document holds exactly the wire fields in their canonical types (float
        amounts and balances, epoch-ms timestamps): each is its transaction's fields as is."""
        return self.exact and not self.converted

    def fail(self, row: int, reason: str) -> None:
        self.problems.setdefault(row, reason)

    def numbers(self, name: str) -> np.ndarray:
        column = self.values[name]
        if not _only(float, column):
            self.converted = True
            for row, value in enumerate(column):
                if value is _MISSING or value is None:
                    self.fail(row, f"field {name!r} is missing")
                elif type(value) is bool or not isinstance(value, int | float):
                    self.fail(row, f"field {name!r} must be a number, not {value!r}")
                    column[row] = math.nan
                elif not math.isfinite(value):
                    self.fail(row, f"field {name!r} must be finite, not {value!r}")
                else:
                    column[row] = float(value)
            column = [v if type(v) is float else math.nan for v in column]
            self.values[name] = column
        return np.array(column, dtype=np.float64)

    def texts(self, name: str) -> None:
        column = self.values[name]
        if _only(str, column) and all(column):
            return
        for row, value in enumerate(column):
            if value is _MISSING or value is None:
                self.fail(row, f"field {name!r} is missing")
            elif not isinstance(value, str) or not value:
                self.fail(row, f"field {name!r} must be a non-empty string, not {value!r}")

    def timestamps(self) -> np.ndarray:
        """Event times in ns; a timestamp given as an ISO string becomes epoch ms in the
        transaction when it is whole milliseconds (the cheap form for the feature code)."""
        column = self.values[TIMESTAMP]
        if _only(int, column):
            try:
                stamps = np.array(column, dtype=np.int64)
            except OverflowError:
                stamps = None
            if stamps is not None and ((stamps >= _MIN_MS) & (stamps <= _MAX_MS)).all():
                return stamps * _NS_PER_MS
        self.converted = True
        event_ns = np.zeros(self.n, dtype=np.int64)
        for row, value in enumerate(column):
            if value is _MISSING or value is None:
                self.fail(row, f"field {TIMESTAMP!r} is missing")
                continue
            if type(value) is not int and not isinstance(value, str):
                self.fail(
                    row,
                    f"field {TIMESTAMP!r} must be epoch milliseconds or ISO-8601, not {value!r}",
                )
                continue
            try:
                ns = to_ns(value)
            except (FinriskError, OverflowError, ValueError) as exc:
                self.fail(row, f"field {TIMESTAMP!r}: {exc}")
                continue
            event_ns[row] = ns
            if type(value) is str and ns % _NS_PER_MS == 0:
                column[row] = ns // _NS_PER_MS
        return event_ns


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
        if len(documents) == len(values) and _only(dict, documents):
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
        columns = _Columns(documents)
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

    def _directions_from_signs(self, columns: _Columns, amount: np.ndarray) -> None:
        """Signed amounts: the amount is the magnitude, and where a message has no direction
        the sign gives it (as a table's are read: finrisk.parsing)."""
        finite = np.isfinite(amount)
        directions = columns.values[DIRECTION]
        _, signed = self.mapping.signed(amount)
        for k, direction in enumerate(directions):
            if direction is _MISSING and finite[k]:
                directions[k] = signed[k]
        amount[finite] = np.abs(amount[finite])
        columns.converted = True
