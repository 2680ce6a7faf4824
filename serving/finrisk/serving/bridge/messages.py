"""The wire format of the transactions topic, and the check every message passes before scoring.

A message is a UTF-8 JSON object with the canonical transaction fields (`finrisk.schema`),
keyed by user id. `timestamp` is epoch milliseconds (int) or an ISO-8601 string. The rules are
the schema's: required fields present and typed, amount within its bounds, direction, category
and channel from the schema's vocabularies, category consistent with direction. A user schema
file's column and value mappings apply, so a bank's own field names can be read as they are.

A message that fails is a `BadMessage` with a kind ("unparseable" or "schema_invalid") and a
reason naming the field; the bridge sends it to the dead-letter topic and carries on.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Mapping, Sequence
from itertools import repeat
from typing import Any, NamedTuple

import numpy as np
import orjson

from finrisk.errors import FinriskError
from finrisk.features.online_columns import TxColumns
from finrisk.features.timestamps import MAX_NS, MIN_NS, to_ns
from finrisk.schema import (
    AMOUNT,
    BALANCE_AFTER,
    CATEGORY,
    CHANNEL,
    CREDIT,
    DEBIT,
    DIRECTION,
    MERCHANT,
    OBSERVED_COLUMNS,
    TIMESTAMP,
    TRANSACTION_ID,
    USER_ID,
    Schema,
    default_schema,
)

UNPARSEABLE = "unparseable"
SCHEMA_INVALID = "schema_invalid"

# The fields scoring needs; labels (is_fraud, fraud_type) and unknown fields are ignored.
WIRE_FIELDS: tuple[str, ...] = OBSERVED_COLUMNS
_NS_PER_MS = 1_000_000
# Epoch milliseconds whose nanoseconds fit MIN_NS..MAX_NS.
_MIN_MS, _MAX_MS = -(-MIN_NS // _NS_PER_MS), MAX_NS // _NS_PER_MS
_NUMBERS = (int, float)  # not bool, which is an int subclass
_WIRE_VALUES = operator.itemgetter(*WIRE_FIELDS)
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


def _number(fields: Mapping[str, Any], name: str) -> float:
    value = fields.get(name)
    if value is None:
        raise BadMessage(SCHEMA_INVALID, f"field {name!r} is missing")
    if type(value) is bool or not isinstance(value, int | float):
        raise BadMessage(SCHEMA_INVALID, f"field {name!r} must be a number, not {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise BadMessage(SCHEMA_INVALID, f"field {name!r} must be finite, not {value!r}")
    return number


def _text(fields: Mapping[str, Any], name: str) -> str:
    value = fields.get(name)
    if value is None:
        raise BadMessage(SCHEMA_INVALID, f"field {name!r} is missing")
    if not isinstance(value, str) or not value:
        raise BadMessage(
            SCHEMA_INVALID, f"field {name!r} must be a non-empty string, not {value!r}"
        )
    return value


class ParsedBatch(NamedTuple):
    """Message values parsed and checked: for each, its Transaction or what is wrong."""

    transactions: list[Transaction | BadMessage]
    # The transactions as the feature engine's columns, when none is bad.
    columns: TxColumns | None


def _only(kind: type, values: Sequence[Any]) -> bool:
    return set(map(type, values)) <= {kind}


class MessageParser:
    """Parses and checks message values against one schema (the packaged one by default)."""

    def __init__(self, schema: Schema | None = None) -> None:
        schema = schema or default_schema()
        spec = schema.transactions
        self._column_mapping = dict(spec.column_mapping)
        self._value_mapping = {col: dict(m) for col, m in spec.value_mapping.items()}
        self._signed_amounts = spec.signed_amounts
        self._directions = frozenset(spec.directions)
        self._credit = frozenset(schema.credit_categories)
        self._debit = frozenset(schema.debit_categories)
        self._channels = frozenset(schema.channels)
        self._amount_min = spec.amount.min_exclusive
        self._amount_max = spec.amount.max
        # (direction, category) pairs that pass: the direction known, the category its own.
        self._pairs = frozenset(
            (direction, category)
            for direction in self._directions
            for category in (self._debit if direction == DEBIT else self._credit)
        )

    def parse(self, value: bytes | None) -> Transaction:
        """The transaction in `value`, or BadMessage saying what is wrong."""
        if value is None:
            raise BadMessage(UNPARSEABLE, "message has no value")
        try:
            document = orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            raise BadMessage(UNPARSEABLE, f"value is not JSON: {exc}") from None
        if not isinstance(document, dict):
            raise BadMessage(UNPARSEABLE, f"value is JSON {type(document).__name__}, not an object")
        return self.check(document)

    def parse_batch(self, values: Sequence[bytes | None]) -> ParsedBatch:
        """`parse` of each value, in order, a BadMessage standing for each failure. A batch of
        well-formed messages (the common case) is checked column by column, several times
        cheaper than message by message, and comes with its columns for the features."""
        if not (self._column_mapping or self._value_mapping or self._signed_amounts):
            try:
                # A None value raises JSONDecodeError too.
                documents = list(map(orjson.loads, values))  # type: ignore[arg-type]
            except orjson.JSONDecodeError:
                pass  # which one, and why, is for `parse` to say
            else:
                checked = self._well_formed_batch(documents)
                if checked is not None:
                    return checked
        return ParsedBatch([self._parse_or_bad(value) for value in values], None)

    def _parse_or_bad(self, value: bytes | None) -> Transaction | BadMessage:
        try:
            return self.parse(value)
        except BadMessage as bad:
            return bad

    def _well_formed_batch(self, documents: list[Any]) -> ParsedBatch | None:
        """`_well_formed` on whole columns: the batch when every document passes as it is
        (exactly the wire fields, amounts and balances floats), else None (`parse` then
        names what is wrong, message by message). A test holds it to `parse` on every
        variant."""
        n = len(documents)
        if not n or not _only(dict, documents) or set(map(len, documents)) != {len(WIRE_FIELDS)}:
            return None
        try:
            columns = dict(
                zip(WIRE_FIELDS, zip(*map(_WIRE_VALUES, documents), strict=True), strict=True)
            )
        except KeyError:
            return None
        tx_ids, users, merchants = columns[TRANSACTION_ID], columns[USER_ID], columns[MERCHANT]
        directions, categories = columns[DIRECTION], columns[CATEGORY]
        if not (
            _only(float, columns[AMOUNT])
            and _only(float, columns[BALANCE_AFTER])
            and _only(int, columns[TIMESTAMP])
            and all(_only(str, columns[name]) for name in _TEXT_FIELDS)
            and all(tx_ids)
            and all(users)
            and all(merchants)
            and set(zip(directions, categories, strict=True)) <= self._pairs
            and set(columns[CHANNEL]) <= self._channels
        ):
            return None
        amount = np.array(columns[AMOUNT], dtype=np.float64)
        balance = np.array(columns[BALANCE_AFTER], dtype=np.float64)
        try:
            stamp_ms = np.array(columns[TIMESTAMP], dtype=np.int64)
        except OverflowError:
            return None
        if not (
            ((amount > self._amount_min) & (amount <= self._amount_max) & (amount < math.inf)).all()
            and np.isfinite(balance).all()
            and ((stamp_ms >= _MIN_MS) & (stamp_ms <= _MAX_MS)).all()
        ):
            return None
        event_ns = stamp_ms * _NS_PER_MS
        # tuple.__new__: the Transactions without a Python-level call per message.
        transactions: list[Transaction | BadMessage] = list(
            map(
                tuple.__new__,
                repeat(Transaction, n),
                zip(documents, event_ns.tolist(), strict=True),
            )
        )
        return ParsedBatch(
            transactions,
            TxColumns(
                user_id=list(users),
                timestamp_ns=event_ns,
                amount=amount,
                is_debit=np.fromiter(map(DEBIT.__eq__, directions), dtype=np.bool_, count=n),
                category=list(categories),
                merchant=list(merchants),
                channel=list(columns[CHANNEL]),
                balance_after=balance,
            ),
        )

    def check(self, document: dict[str, Any]) -> Transaction:
        """The transaction in a decoded message (whose dict it may reuse), or BadMessage naming
        what is wrong."""
        if self._column_mapping or self._value_mapping or self._signed_amounts:
            return self.check_each_rule(self._mapped(document))
        return self._well_formed(document) or self.check_each_rule(document)

    def _mapped(self, document: dict[str, Any]) -> dict[str, Any]:
        if self._column_mapping:
            document = {self._column_mapping.get(k, k): v for k, v in document.items()}
        for column, mapping in self._value_mapping.items():
            if column in document and document[column] in mapping:
                document[column] = mapping[document[column]]
        return document

    def _well_formed(self, document: dict[str, Any]) -> Transaction | None:
        """The transaction when every rule holds, tested the cheapest way (most messages);
        None sends the message through `check_each_rule`, which names what is wrong. The two
        agree on every message (a test holds them to it)."""
        get: Any = document.get  # the values' types are what is tested here
        amount, balance, timestamp = get(AMOUNT), get(BALANCE_AFTER), get(TIMESTAMP)
        tx_id, user, merchant = get(TRANSACTION_ID), get(USER_ID), get(MERCHANT)
        direction, category, channel = get(DIRECTION), get(CATEGORY), get(CHANNEL)
        if not (
            type(amount) in _NUMBERS
            and self._amount_min < amount <= self._amount_max
            and amount < math.inf
            and type(balance) in _NUMBERS
            and -math.inf < balance < math.inf
            and type(timestamp) is int
            and MIN_NS <= timestamp * _NS_PER_MS <= MAX_NS
            and type(tx_id) is str
            and type(user) is str
            and type(merchant) is str
            and type(direction) is str
            and type(category) is str
            and type(channel) is str
            and tx_id
            and user
            and merchant
            and direction in self._directions
            and category in (self._debit if direction == DEBIT else self._credit)
            and channel in self._channels
        ):
            return None
        if len(document) == len(WIRE_FIELDS):  # exactly the wire fields: keep the dict
            if type(amount) is not float:
                document[AMOUNT] = float(amount)
            if type(balance) is not float:
                document[BALANCE_AFTER] = float(balance)
            return Transaction(document, timestamp * _NS_PER_MS)
        return Transaction(
            fields={
                TRANSACTION_ID: tx_id,
                USER_ID: user,
                TIMESTAMP: timestamp,
                AMOUNT: float(amount),
                DIRECTION: direction,
                CATEGORY: category,
                MERCHANT: merchant,
                CHANNEL: channel,
                BALANCE_AFTER: float(balance),
            },
            event_ns=timestamp * _NS_PER_MS,
        )

    def check_each_rule(self, document: dict[str, Any]) -> Transaction:
        """`check`, rule by rule, the first broken one named (after any schema mapping)."""
        amount = _number(document, AMOUNT)
        if self._signed_amounts and DIRECTION not in document:
            document[DIRECTION] = DEBIT if amount < 0 else CREDIT
            amount = abs(amount)
        if not amount > self._amount_min:
            raise BadMessage(
                SCHEMA_INVALID, f"field {AMOUNT!r} must be > {self._amount_min}, not {amount}"
            )
        if amount > self._amount_max:
            raise BadMessage(
                SCHEMA_INVALID, f"field {AMOUNT!r} exceeds the maximum {self._amount_max}"
            )
        balance = _number(document, BALANCE_AFTER)
        tx_id = _text(document, TRANSACTION_ID)
        user = _text(document, USER_ID)
        merchant = _text(document, MERCHANT)
        direction = _text(document, DIRECTION)
        if direction not in self._directions:
            raise BadMessage(SCHEMA_INVALID, f"field {DIRECTION!r} has unknown value {direction!r}")
        category = _text(document, CATEGORY)
        allowed = self._debit if direction == DEBIT else self._credit
        if category not in allowed:
            known = category in self._debit or category in self._credit
            raise BadMessage(
                SCHEMA_INVALID,
                f"field {CATEGORY!r} value {category!r} "
                + (f"is not a {direction} category" if known else "is not a known category"),
            )
        channel = _text(document, CHANNEL)
        if channel not in self._channels:
            raise BadMessage(SCHEMA_INVALID, f"field {CHANNEL!r} has unknown value {channel!r}")

        timestamp = document.get(TIMESTAMP)
        if timestamp is None:
            raise BadMessage(SCHEMA_INVALID, f"field {TIMESTAMP!r} is missing")
        if type(timestamp) is not int and not isinstance(timestamp, str):
            raise BadMessage(
                SCHEMA_INVALID,
                f"field {TIMESTAMP!r} must be epoch milliseconds or ISO-8601, not {timestamp!r}",
            )
        try:
            event_ns = to_ns(timestamp)
        except (FinriskError, OverflowError, ValueError) as exc:
            raise BadMessage(SCHEMA_INVALID, f"field {TIMESTAMP!r}: {exc}") from None
        if type(timestamp) is str and event_ns % _NS_PER_MS == 0:
            timestamp = event_ns // _NS_PER_MS  # the cheap form for the feature code

        return Transaction(
            fields={
                TRANSACTION_ID: tx_id,
                USER_ID: user,
                TIMESTAMP: timestamp,
                AMOUNT: amount,
                DIRECTION: direction,
                CATEGORY: category,
                MERCHANT: merchant,
                CHANNEL: channel,
                BALANCE_AFTER: balance,
            },
            event_ns=event_ns,
        )
