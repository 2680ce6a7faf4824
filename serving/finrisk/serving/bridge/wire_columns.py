"""A batch of decoded messages as columns of the wire fields, each checked for presence and
JSON type, with the first problem of each row (the stream parser's first pass; the schema's
rules, finrisk.transactions, are its second)."""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from typing import Any

import numpy as np

from finrisk.errors import FinriskError
from finrisk.schema import TIMESTAMP
from finrisk.timestamps import MAX_NS, MIN_NS, to_ns
from finrisk.transactions import WIRE_FIELDS

_NS_PER_MS = 1_000_000
# Epoch milliseconds whose nanoseconds fit MIN_NS..MAX_NS.
_MIN_MS, _MAX_MS = -(-MIN_NS // _NS_PER_MS), MAX_NS // _NS_PER_MS
_WIRE_VALUES = operator.itemgetter(*WIRE_FIELDS)
MISSING = object()  # a field the message does not have


def only(kind: type, values: Sequence[Any]) -> bool:
    return set(map(type, values)) <= {kind}


class WireColumns:
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
            values = {name: [d.get(name, MISSING) for d in documents] for name in WIRE_FIELDS}
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
        if not only(float, column):
            self.converted = True
            for row, value in enumerate(column):
                if value is MISSING or value is None:
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
        if only(str, column) and all(column):
            return
        for row, value in enumerate(column):
            if value is MISSING or value is None:
                self.fail(row, f"field {name!r} is missing")
            elif not isinstance(value, str) or not value:
                self.fail(row, f"field {name!r} must be a non-empty string, not {value!r}")

    def timestamps(self) -> np.ndarray:
        """Event times in ns; a timestamp given as an ISO string becomes epoch ms in the
        transaction when it is whole milliseconds (the cheap form for the feature code)."""
        column = self.values[TIMESTAMP]
        if only(int, column):
            try:
                stamps = np.array(column, dtype=np.int64)
            except OverflowError:
                stamps = None
            if stamps is not None and ((stamps >= _MIN_MS) & (stamps <= _MAX_MS)).all():
                return stamps * _NS_PER_MS
        self.converted = True
        event_ns = np.zeros(self.n, dtype=np.int64)
        for row, value in enumerate(column):
            if value is MISSING or value is None:
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
