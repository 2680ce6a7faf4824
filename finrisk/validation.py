"""Check a transaction (or user-level) table against the schema and report every problem at once.

Each problem names its kind, the column, how many rows have it and a few example rows
(1-based data rows: row 1 is the first row after a CSV header). Extra columns are warnings,
everything else is an error. All checks are vectorised.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from finrisk.parsing import Parsed, parse_transactions, present
from finrisk.schema import (
    AMOUNT,
    BALANCE_AFTER,
    CATEGORY,
    CHANNEL,
    DIRECTION,
    FRAUD_TYPE,
    IS_FRAUD,
    IS_RISKY,
    NO_FRAUD,
    TIMESTAMP,
    USER_ID,
    Schema,
    default_schema,
)
from finrisk.transactions import (
    DIRECTION_MISMATCH,
    UNKNOWN_VALUE,
    RuleInputs,
    Rules,
)
from finrisk.user_columns import EMPTY, MAX_CATEGORIES, MIXED, TEXT, classify

Severity = Literal["error", "warning"]
MAX_EXAMPLES = 5

# Problem kinds.
MISSING_COLUMN = "missing_column"
EXTRA_COLUMN = "extra_column"
EMPTY_TABLE = "empty_table"
WRONG_TYPE = "wrong_type"
NULL_VALUE = "null_value"
DUPLICATE_ID = "duplicate_id"
TIMESTAMP_OUT_OF_ORDER = "timestamp_out_of_order"
INVALID_LABEL = "invalid_label"
LABEL_MISMATCH = "label_mismatch"
LABEL_INCOMPLETE = "label_incomplete"
NON_NUMERIC_COLUMN = "non_numeric_column"
TOO_MANY_CATEGORIES = "too_many_categories"
EMPTY_COLUMN = "empty_column"


@dataclass(frozen=True)
class Problem:
    kind: str
    column: str | None
    count: int
    message: str
    severity: Severity = "error"
    rows: tuple[int, ...] = ()
    values: tuple[str, ...] = ()

    def format(self) -> str:
        where = f"[{self.column}] " if self.column else ""
        text = f"{self.severity.upper()} {self.kind} {where}{self.message}"
        if self.rows:
            more = ", ..." if self.count > len(self.rows) else ""
            text += f"; rows {', '.join(map(str, self.rows))}{more}"
        if self.values:
            text += f"; e.g. {', '.join(repr(v) for v in self.values)}"
        return text


@dataclass
class ValidationReport:
    rows: int
    problems: list[Problem] = field(default_factory=list)
    source: str | None = None
    table: str = "transactions"

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        def one(p: Problem) -> dict[str, Any]:
            d = asdict(p)
            d["rows"], d["values"] = list(p.rows), list(p.values)
            return d

        return {
            "source": self.source,
            "table": self.table,
            "rows": self.rows,
            "ok": self.ok,
            "errors": [one(p) for p in self.errors],
            "warnings": [one(p) for p in self.warnings],
        }

    def format(self) -> str:
        name = self.source or f"{self.table} table"
        verdict = "OK" if self.ok else "INVALID"
        head = (
            f"{name}: {verdict}, {self.rows} rows, {len(self.errors)} error(s), "
            f"{len(self.warnings)} warning(s)"
        )
        lines = [head] + [f"  {p.format()}" for p in self.errors + self.warnings]
        if self.problems and any(p.rows for p in self.problems):
            lines.append("  (row 1 = first data row, after any header)")
        return "\n".join(lines)


class _Collector:
    """Turns boolean masks into problems with counts and example rows."""

    def __init__(self, index_size: int, source_names: dict[str, str] | None = None) -> None:
        self.n = index_size
        # Only renamed columns need their file name shown.
        self.source_names = {k: v for k, v in (source_names or {}).items() if k != v}
        self.problems: list[Problem] = []

    def label(self, column: str | None) -> str | None:
        if column is None or column not in self.source_names:
            return column
        return f"{column} (file column {self.source_names[column]!r})"

    def add(
        self,
        kind: str,
        column: str | None,
        message: str,
        mask: np.ndarray | pd.Series | None = None,
        *,
        values: pd.Series | np.ndarray | Callable[[np.ndarray], Sequence[object]] | None = None,
        severity: Severity = "error",
        count: int | None = None,
    ) -> None:
        rows: tuple[int, ...] = ()
        examples: tuple[str, ...] = ()
        if mask is not None:
            m = np.asarray(mask, dtype=bool)
            hits = np.flatnonzero(m)
            if len(hits) == 0:
                return
            count = len(hits)
            rows = tuple(int(i) + 1 for i in hits[:MAX_EXAMPLES])
            if values is not None:
                # A bounded sample of the hits is enough to show distinct examples.
                sample = hits[:1000]
                if callable(values):
                    picked = list(values(sample))
                else:
                    picked = list(pd.Series(values).iloc[sample])
                examples = tuple(dict.fromkeys(str(v) for v in picked))[:MAX_EXAMPLES]
        self.problems.append(
            Problem(
                kind=kind,
                column=self.label(column),
                count=int(count or 0),
                message=message,
                severity=severity,
                rows=rows,
                values=examples,
            )
        )


def _check_columns(c: _Collector, parsed: Parsed, schema: Schema) -> None:
    frame = parsed.frame
    for column in schema.required_columns:
        if column not in frame.columns:
            mapped_from = [s for s, t in schema.transactions.column_mapping.items() if t == column]
            hint = f" (mapped from {mapped_from[0]!r}, not in the file)" if mapped_from else ""
            c.add(MISSING_COLUMN, column, f"required column is missing{hint}", count=c.n)
    if parsed.extra_columns:
        names = parsed.extra_columns
        c.add(
            EXTRA_COLUMN,
            None,
            f"{len(names)} column(s) not in the schema are ignored: "
            f"{', '.join(repr(n) for n in names[:10])}{' ...' if len(names) > 10 else ''}",
            severity="warning",
            count=c.n,
        )
    has_fraud, has_type = IS_FRAUD in frame.columns, FRAUD_TYPE in frame.columns
    if has_fraud != has_type:
        there, absent = (IS_FRAUD, FRAUD_TYPE) if has_fraud else (FRAUD_TYPE, IS_FRAUD)
        c.add(
            LABEL_INCOMPLETE,
            absent,
            f"label column {there!r} is present but {absent!r} is not",
            severity="warning",
            count=c.n,
        )


def _check_values(c: _Collector, parsed: Parsed, schema: Schema) -> None:
    frame = parsed.frame
    for column in frame.columns:
        spec = schema.columns[column]
        bad = parsed.bad[column]
        c.add(
            WRONG_TYPE,
            column,
            f"values are not {_type_phrase(spec.type, schema)}",
            bad,
            values=parsed.raw[column],
        )
        c.add(NULL_VALUE, column, "values are missing", parsed.missing[column])

    _check_rules(c, frame, schema)

    if FRAUD_TYPE in frame.columns:
        allowed = schema.allowed_values()[FRAUD_TYPE]
        values = frame[FRAUD_TYPE]
        unknown = ~parsed.missing[FRAUD_TYPE] & ~values.isin(allowed).to_numpy()
        shown = ", ".join(allowed) if len(allowed) <= 6 else f"{len(allowed)} known values"
        c.add(
            UNKNOWN_VALUE,
            FRAUD_TYPE,
            f"values outside the schema ({shown})",
            unknown,
            values=values,
        )

    if IS_FRAUD in frame.columns:
        label = frame[IS_FRAUD]
        invalid = (label.notna() & ~label.isin([0, 1])).to_numpy()
        c.add(INVALID_LABEL, IS_FRAUD, "labels must be 0 or 1", invalid, values=label)


def _check_rows(c: _Collector, parsed: Parsed, schema: Schema) -> None:
    frame = parsed.frame
    for column in frame.columns:
        if schema.columns[column].unique:
            values = frame[column]
            dup = (values.duplicated(keep="first") & values.notna()).to_numpy()
            c.add(
                DUPLICATE_ID,
                column,
                "values appear more than once (repeats shown)",
                dup,
                values=values,
            )

    if USER_ID in frame.columns and TIMESTAMP in frame.columns:
        c.add(
            TIMESTAMP_OUT_OF_ORDER,
            TIMESTAMP,
            "earlier than the user's previous transaction in the file",
            _out_of_order(frame[USER_ID], frame[TIMESTAMP]),
            values=frame[USER_ID],
        )

    if IS_FRAUD in frame.columns and FRAUD_TYPE in frame.columns:
        label, kind = frame[IS_FRAUD], frame[FRAUD_TYPE]
        both = label.notna() & kind.notna()
        mismatch = both & ((label.eq(1) & kind.eq(NO_FRAUD)) | (label.eq(0) & kind.ne(NO_FRAUD)))
        c.add(
            LABEL_MISMATCH,
            FRAUD_TYPE,
            f"is_fraud=1 needs a fraud type, is_fraud=0 needs {NO_FRAUD!r}",
            mismatch.to_numpy(),
            values=lambda rows: [
                f"is_fraud={label.iloc[i]:g}, fraud_type={kind.iloc[i]}" for i in rows
            ],
        )


def _check_rules(c: _Collector, frame: pd.DataFrame, schema: Schema) -> None:
    """The transaction contract's rules (finrisk.transactions), as the stream applies them; a
    column the table lacks breaks none of them (it is reported missing)."""
    n = len(frame)

    def column(name: str, numeric: bool) -> Any:
        if name in frame.columns:
            return frame[name].to_numpy(dtype=np.float64 if numeric else object)
        return np.full(n, np.nan) if numeric else np.full(n, None, dtype=object)

    inputs = RuleInputs(
        column(AMOUNT, True),
        column(BALANCE_AFTER, True),
        column(DIRECTION, False),
        column(CATEGORY, False),
        column(CHANNEL, False),
    )
    for rule, mask in Rules(schema).broken(inputs):
        if rule.code == DIRECTION_MISMATCH:
            values: Any = lambda rows: [  # noqa: E731 (the pair each row contradicts itself in)
                f"{inputs.category[i]}/{inputs.direction[i]}" for i in rows
            ]
        else:
            values = getattr(inputs, rule.column)
        c.add(rule.code, rule.column, rule.summary, mask, values=values)


def _out_of_order(users: pd.Series, timestamps: pd.Series) -> np.ndarray:
    """Rows whose timestamp is earlier than the same user's previous row, in file order."""
    codes, _ = pd.factorize(users, use_na_sentinel=True)
    ts = timestamps.to_numpy(dtype="datetime64[ns]", na_value=np.datetime64("NaT"))
    order = np.argsort(codes, kind="stable")
    same_user = codes[order][1:] == codes[order][:-1]
    prev, cur = ts[order][:-1], ts[order][1:]
    earlier = same_user & (codes[order][1:] >= 0) & (cur < prev)  # NaT compares False
    out = np.zeros(len(codes), dtype=bool)
    out[order[1:][earlier]] = True
    return out


def _type_phrase(kind: str, schema: Schema) -> str:
    if kind == "timestamp":
        spec = schema.transactions.timestamp
        return f"timestamps (format {spec.format}, zone {spec.timezone})"
    return {"float": "numbers", "int": "integers", "string": "text"}[kind]


def check_parsed(parsed: Parsed, schema: Schema, source: str | None = None) -> ValidationReport:
    """The report for a table already run through `parse_transactions`."""
    c = _Collector(len(parsed.frame), parsed.source_names)
    if len(parsed.frame) == 0:
        c.add(EMPTY_TABLE, None, "the table has no rows", count=0)
    _check_columns(c, parsed, schema)
    _check_values(c, parsed, schema)
    _check_rows(c, parsed, schema)
    return ValidationReport(rows=len(parsed.frame), problems=c.problems, source=source)


def validate_transactions(
    df: pd.DataFrame, schema: Schema | None = None, source: str | None = None
) -> ValidationReport:
    """Every problem of a transaction table (as read: any names, text or typed values)."""
    schema = schema or default_schema()
    return check_parsed(parse_transactions(df, schema), schema, source)


def validate_users(
    df: pd.DataFrame,
    schema: Schema | None = None,
    source: str | None = None,
    *,
    require_label: bool = True,
) -> ValidationReport:
    """Every problem of a user-level table: id and 0/1 label columns named by the schema."""
    schema = schema or default_schema()
    id_col, label_col = schema.users.user_id_column, schema.users.label_column
    c = _Collector(len(df), {USER_ID: id_col, IS_RISKY: label_col})
    if len(df) == 0:
        c.add(EMPTY_TABLE, None, "the table has no rows", count=0)
    if id_col not in df.columns:
        c.add(MISSING_COLUMN, USER_ID, "user id column is missing", count=len(df))
    else:
        ids = df[id_col]
        c.add(NULL_VALUE, USER_ID, "user ids are missing", (~present(ids)).to_numpy())
        c.add(
            DUPLICATE_ID,
            USER_ID,
            "user ids appear more than once (repeats shown)",
            (ids.duplicated(keep="first") & ids.notna()).to_numpy(),
            values=ids,
        )
    if label_col not in df.columns:
        if require_label:
            c.add(MISSING_COLUMN, IS_RISKY, "label column is missing", count=len(df))
    else:
        raw = df[label_col]
        label = pd.to_numeric(raw.where(present(raw)), errors="coerce")
        c.add(NULL_VALUE, IS_RISKY, "labels are missing", (~present(raw)).to_numpy())
        c.add(
            INVALID_LABEL,
            IS_RISKY,
            "labels must be 0 or 1",
            (present(raw) & ~label.isin([0, 1])).to_numpy(),
            values=raw,
        )
    _check_user_features(c, df, [col for col in df.columns if col not in (id_col, label_col)])
    return ValidationReport(rows=len(df), problems=c.problems, source=source, table="users")


def _check_user_features(c: _Collector, df: pd.DataFrame, columns: Sequence[Any]) -> None:
    """Feature columns the risk model cannot use, by what their values are (read as text from a
    CSV: finrisk.user_columns decides, as training does). Numeric columns with gaps and text
    columns of at most MAX_CATEGORIES values are features: no warning."""
    kinds = [classify(str(col), df[col]) for col in columns]
    mixed = [k for k in kinds if k.kind == MIXED]
    if mixed:
        c.add(
            NON_NUMERIC_COLUMN,
            None,
            "column(s) mixing numbers and text cannot be used as features (leave gaps empty): "
            + ", ".join(repr(k.name) for k in mixed[:10]),
            severity="warning",
            count=len(df),
        )
    wide = [k for k in kinds if k.kind == TEXT and not k.categorical]
    if wide:
        c.add(
            TOO_MANY_CATEGORIES,
            None,
            f"text column(s) with more than {MAX_CATEGORIES} distinct values are dropped: "
            + ", ".join(f"{k.name!r} ({k.cardinality} values)" for k in wide[:10]),
            severity="warning",
            count=len(df),
        )
    empty = [k for k in kinds if k.kind == EMPTY]
    if empty:
        c.add(
            EMPTY_COLUMN,
            None,
            "column(s) without any value are dropped: " + ", ".join(repr(k.name) for k in empty),
            severity="warning",
            count=len(df),
        )
