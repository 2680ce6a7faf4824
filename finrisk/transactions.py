"""What a transaction is, written once: its wire fields, the mapping from a bank's own names and
values, the rules every transaction passes, and its columns for the feature engine.

Table validation (finrisk.validation), the stream parser (finrisk.serving.bridge.messages) and
the online features (finrisk.features.online) use this module:

- `Rules(schema)`: each rule of the schema is one vectorised test over a batch's columns. A
  table report counts the rows that break each rule; the stream dead-letters a message with
  the reason of the first rule it breaks. Decoding (is the value there, of the right type) is
  the medium's own (JSON types on the stream, parsed text in a table); the rules run on what
  decoded, once per row.
- `Mapping`: a schema's column names, value names and signed amounts, for a message (a dict)
  and for a table (a frame), side by side.
- `TxColumns`: the feature engine's input, from checked stream rows or from mappings
  (`transaction_columns`, which checks the rules too).
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable, Sequence
from collections.abc import Mapping as MappingType
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import pandas as pd

from finrisk.errors import FinriskError
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
    USER_ID,
    Schema,
    default_schema,
)
from finrisk.timestamps import to_ns

# The fields a message carries and scoring needs; labels and unknown fields are ignored.
WIRE_FIELDS: tuple[str, ...] = OBSERVED_COLUMNS

# The report's problem kinds for the rules (finrisk.validation lists the others).
NON_POSITIVE_AMOUNT = "non_positive_amount"
ABSURD_AMOUNT = "absurd_amount"
NON_FINITE = "non_finite"
UNKNOWN_VALUE = "unknown_value"
DIRECTION_MISMATCH = "direction_mismatch"

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
Objects = npt.NDArray[np.object_]
Texts = Sequence[Any] | Objects


# --------------------------------------------------------------------------- the rules


class RuleInputs(NamedTuple):
    """The columns the rules read; a value missing from a table is NaN or None (no rule breaks
    on it: missing values are reported as such)."""

    amount: Floats
    balance_after: Floats
    # Lists (the stream's columns) or object arrays (a table's).
    direction: Texts
    category: Texts
    channel: Texts


@dataclass(frozen=True)
class Rule:
    code: str  # the table report's problem kind
    column: str
    summary: str  # the table report's phrase for the rows that break it
    breaks: Callable[[RuleInputs], npt.NDArray[np.bool_]]
    reason: Callable[[RuleInputs, int], str]  # why one row breaks it (a dead letter's reason)


def _outside(values: Texts, allowed: frozenset[str]) -> npt.NDArray[np.bool_]:
    """Values given and not in `allowed` (a batch's values, most often all allowed: one set
    test decides; a missing value, None or NaN, is no rule's business)."""
    with contextlib.suppress(TypeError):  # an unhashable value (a table's list) is outside
        if allowed.issuperset(values):
            return np.zeros(len(values), dtype=np.bool_)
    return np.fromiter(
        (
            not _missing(value) and not (isinstance(value, str) and value in allowed)
            for value in values
        ),
        np.bool_,
        len(values),
    )


def _texts(pair: tuple[Any, Any]) -> bool:
    return isinstance(pair[0], str) and isinstance(pair[1], str)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _listed(allowed: Sequence[str]) -> str:
    return ", ".join(allowed) if len(allowed) <= 6 else f"{len(allowed)} known values"


def _vocabulary(column: str, allowed: Sequence[str], why: str) -> Rule:
    """The rule that `column` (DIRECTION, CATEGORY or CHANNEL, a RuleInputs field) takes only
    the schema's values; `why` formats the offending value for a dead letter's reason."""
    known = frozenset(allowed)
    return Rule(
        UNKNOWN_VALUE,
        column,
        f"values outside the schema ({_listed(allowed)})",
        lambda x: _outside(getattr(x, column), known),
        lambda x, i: f"field {column!r} " + why.format(getattr(x, column)[i]),
    )


class Rules:
    """The schema's rules, in the order the stream names the first one a message breaks."""

    def __init__(self, schema: Schema | None = None) -> None:
        schema = schema or default_schema()
        spec = schema.transactions
        low, high = spec.amount.min_exclusive, spec.amount.max
        directions, channels = spec.directions, schema.channels
        credit, debit = schema.credit_categories, schema.debit_categories
        categories = schema.categories
        # (direction, category) pairs that contradict each other.
        contradictions = frozenset([(DEBIT, c) for c in credit] + [(CREDIT, c) for c in debit])

        def mismatched(x: RuleInputs) -> npt.NDArray[np.bool_]:
            pairs = list(zip(x.direction, x.category, strict=True))
            with contextlib.suppress(TypeError):  # an unhashable value contradicts nothing
                if contradictions.isdisjoint(pairs):
                    return np.zeros(len(pairs), dtype=np.bool_)
            return np.fromiter(
                (_texts(p) and p in contradictions for p in pairs), np.bool_, len(pairs)
            )

        self.rules: tuple[Rule, ...] = (
            Rule(
                NON_POSITIVE_AMOUNT,
                AMOUNT,
                f"amounts must be > {low:g}",
                lambda x: x.amount <= low,
                lambda x, i: f"field {AMOUNT!r} must be > {low}, not {x.amount[i]}",
            ),
            Rule(
                ABSURD_AMOUNT,
                AMOUNT,
                f"amounts above the maximum {high:g}",
                lambda x: x.amount > high,
                lambda x, i: f"field {AMOUNT!r} exceeds the maximum {high}",
            ),
            Rule(
                NON_FINITE,
                BALANCE_AFTER,
                "balances are infinite",
                lambda x: np.isinf(x.balance_after),
                lambda x, i: f"field {BALANCE_AFTER!r} must be finite, not {x.balance_after[i]}",
            ),
            _vocabulary(DIRECTION, directions, "has unknown value {!r}"),
            _vocabulary(CATEGORY, categories, "value {!r} is not a known category"),
            Rule(
                DIRECTION_MISMATCH,
                DIRECTION,
                f"direction contradicts the category (credit categories: {', '.join(credit)})",
                mismatched,
                lambda x, i: (
                    f"field {CATEGORY!r} value {x.category[i]!r} is not a {x.direction[i]} "
                    f"category (field {DIRECTION!r} is {x.direction[i]!r})"
                ),
            ),
            _vocabulary(CHANNEL, channels, "has unknown value {!r}"),
        )

    def broken(self, inputs: RuleInputs) -> list[tuple[Rule, npt.NDArray[np.bool_]]]:
        """Every rule with the rows that break it (a table report wants them all)."""
        return [(rule, rule.breaks(inputs)) for rule in self.rules]

    def first_broken(self, inputs: RuleInputs) -> dict[int, str]:
        """Row -> the reason of the first rule it breaks, for the rows that break one."""
        reasons: dict[int, str] = {}
        for rule in self.rules:
            for row in np.flatnonzero(rule.breaks(inputs)).tolist():
                if row not in reasons:
                    reasons[row] = rule.reason(inputs, row)
        return reasons


# --------------------------------------------------------------------------- the mapping


class Mapping:
    """A schema's mapping of a bank's own column names and values to the canonical ones, and
    of signed amounts (negative: a debit) to amount and direction."""

    def __init__(self, schema: Schema | None = None) -> None:
        spec = (schema or default_schema()).transactions
        self.columns = dict(spec.column_mapping)
        self.values = {column: dict(names) for column, names in spec.value_mapping.items()}
        self.signed_amounts = spec.signed_amounts

    def __bool__(self) -> bool:
        return bool(self.columns or self.values or self.signed_amounts)

    def conflict(self, document: dict[str, Any]) -> str | None:
        """Why a message cannot be mapped: it holds a field and the field mapped onto it (as a
        table holding both columns is refused by `frame`)."""
        for source, target in self.columns.items():
            if source in document and target in document and target not in self.columns:
                return (
                    f"column_mapping maps field {source!r} to {target!r}, but the message also "
                    f"has a field {target!r}"
                )
        return None

    def document(self, document: dict[str, Any]) -> dict[str, Any]:
        """A message's fields under canonical names and values (see `conflict` first); a signed
        amount is left to `signed` (it must be a number first)."""
        if self.columns:
            document = {self.columns.get(k, k): v for k, v in document.items()}
        for column, names in self.values.items():
            value = document.get(column)
            if isinstance(value, str) and value in names:
                document[column] = names[value]
        return document

    def frame(self, df: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, str]]:
        """A table's columns under canonical names; returns it and canonical -> source name."""
        mapping = {s: t for s, t in self.columns.items() if s in df.columns}
        for source, target in mapping.items():
            if target in df.columns and target not in mapping:
                raise FinriskError(
                    f"column_mapping maps {source!r} to {target!r}, but the file also has a "
                    f"column {target!r}: map or rename one of them"
                )
        renamed = df.rename(columns=mapping) if mapping else df
        return renamed, {t: s for s, t in mapping.items()}

    def column_values(self, column: str, series: pd.Series) -> pd.Series:
        """A table column's values under canonical names (others as they are)."""
        names = self.values.get(column)
        if not names:
            return series
        # Text values only: a table can hold anything (a list is left for the rules to refuse).
        return series.map(
            lambda value: names.get(value, value) if isinstance(value, str) else value
        )

    @staticmethod
    def signed(amount: Floats) -> tuple[Floats, Objects]:
        """Signed amounts as (amount, direction): negative is a debit."""
        return np.abs(amount), np.where(amount < 0, DEBIT, CREDIT).astype(object)


# --------------------------------------------------------------------------- the columns


class TxColumns(NamedTuple):
    """Checked transactions as columns: the feature engine's input."""

    user_id: Sequence[Any]
    timestamp_ns: Ints
    amount: Floats
    is_debit: npt.NDArray[np.bool_]
    category: Sequence[str]
    merchant: Sequence[Any]
    channel: Sequence[str]
    balance_after: Floats

    @property
    def size(self) -> int:
        return len(self.user_id)

    def take(self, rows: Sequence[int]) -> TxColumns:
        """The columns of these rows only."""
        index = np.asarray(rows, dtype=np.intp)
        return TxColumns(
            [self.user_id[i] for i in rows],
            self.timestamp_ns[index],
            self.amount[index],
            self.is_debit[index],
            [self.category[i] for i in rows],
            [self.merchant[i] for i in rows],
            [self.channel[i] for i in rows],
            self.balance_after[index],
        )


@functools.cache
def _default_rules() -> Rules:
    """The packaged schema's rules, built once (`transaction_columns` runs per micro-batch)."""
    return Rules()


def transaction_columns(
    txs: Sequence[MappingType[str, Any]], rules: Rules | None = None
) -> TxColumns:
    """Columns of canonical transactions (mappings), checked: FinriskError names the first
    missing or mistyped field, or the first rule a transaction breaks (`rules`, by default the
    packaged schema's).

    The timestamp is preferably epoch milliseconds (int); ISO-8601 strings, datetimes and
    pandas Timestamps are accepted too (`finrisk.timestamps.to_ns`).
    """
    n = len(txs)
    stamps = np.empty(n, dtype=np.int64)
    amounts = np.empty(n, dtype=np.float64)
    balances = np.empty(n, dtype=np.float64)
    texts: dict[str, list[Any]] = {
        name: [] for name in (USER_ID, DIRECTION, CATEGORY, MERCHANT, CHANNEL)
    }
    for i, tx in enumerate(txs):
        try:
            stamps[i] = to_ns(tx[TIMESTAMP])
            amounts[i] = float(tx[AMOUNT])
            balances[i] = float(tx[BALANCE_AFTER])
            for name, column in texts.items():
                column.append(tx[name])
        except KeyError as exc:
            raise FinriskError(f"transaction has no field {exc.args[0]!r}") from None
        except (TypeError, ValueError, OverflowError) as exc:
            raise FinriskError(f"transaction has a field of the wrong type: {exc}") from None
    # What decoding refuses on the stream (the rules take values as given, a table's missing
    # ones being reported apart): numbers finite, the vocabularies' fields text.
    for name, numbers in ((AMOUNT, amounts), (BALANCE_AFTER, balances)):
        bad = np.flatnonzero(~np.isfinite(numbers))
        if len(bad):
            row = int(bad[0])
            raise FinriskError(
                f"transaction {row}: field {name!r} must be a finite number, not {txs[row][name]!r}"
            )
    for name, column in texts.items():
        if set(map(type, column)) <= {str} and all(column):
            continue  # the common case, decided at once
        for row, value in enumerate(column):
            if not isinstance(value, str) or not value:
                raise FinriskError(
                    f"transaction {row}: field {name!r} must be a non-empty string, not {value!r}"
                )
    inputs = RuleInputs(amounts, balances, texts[DIRECTION], texts[CATEGORY], texts[CHANNEL])
    problems = (rules or _default_rules()).first_broken(inputs)
    if problems:
        row = min(problems)
        raise FinriskError(f"transaction {row}: {problems[row]}")
    return TxColumns(
        texts[USER_ID],
        stamps,
        amounts,
        np.asarray(texts[DIRECTION], dtype=object) == DEBIT,
        texts[CATEGORY],
        texts[MERCHANT],
        texts[CHANNEL],
        balances,
    )
