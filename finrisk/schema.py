"""The canonical data schema: column names every stage uses, and the schema file that declares them.

The names below are the contract between data loading, features, models and serving. The
allowed values (categories, channels, fraud types) come from the packaged
`finrisk/config/schema.yaml`; a user schema file can override the column mapping, categories,
bounds and timestamp format, never the canonical names.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from finrisk.errors import FinriskError

# Canonical transaction columns.
TRANSACTION_ID = "transaction_id"
USER_ID = "user_id"
TIMESTAMP = "timestamp"
AMOUNT = "amount"
DIRECTION = "direction"
CATEGORY = "category"
MERCHANT = "merchant"
CHANNEL = "channel"
BALANCE_AFTER = "balance_after"
IS_FRAUD = "is_fraud"
FRAUD_TYPE = "fraud_type"

# Canonical user-level label.
IS_RISKY = "is_risky"

# What a transaction is, without labels: the input of features, scoring and the wire format.
OBSERVED_COLUMNS: tuple[str, ...] = (
    TRANSACTION_ID,
    USER_ID,
    TIMESTAMP,
    AMOUNT,
    DIRECTION,
    CATEGORY,
    MERCHANT,
    CHANNEL,
    BALANCE_AFTER,
)
LABEL_COLUMNS: tuple[str, ...] = (IS_FRAUD, FRAUD_TYPE)
TRANSACTION_COLUMNS: tuple[str, ...] = OBSERVED_COLUMNS + LABEL_COLUMNS

DEBIT = "debit"
CREDIT = "credit"
DIRECTIONS: tuple[str, ...] = (DEBIT, CREDIT)

CARD_PRESENT = "card_present"
ONLINE = "online"
ATM = "atm"
TRANSFER = "transfer"
DIRECT_DEBIT = "direct_debit"

NO_FRAUD = "none"
CARD_TESTING = "card_testing"
ACCOUNT_TAKEOVER = "account_takeover"
BALANCE_DRAIN = "balance_drain"
VELOCITY_SPIKE = "velocity_spike"
GIFT_CARD_SCAM = "gift_card_scam"
# The hard scenario's kinds (finrisk.synthetic.hard).
SLOW_CARD_TESTING = "slow_card_testing"
MIMICKING_TAKEOVER = "mimicking_takeover"
MERCHANT_COMPROMISE = "merchant_compromise"

ColumnType = Literal["string", "float", "int", "timestamp"]


class _Frozen(BaseModel):
    # extra="forbid": a typo in a user schema file is an error, not a silently ignored key.
    model_config = ConfigDict(frozen=True, extra="forbid")


class ColumnSpec(_Frozen):
    type: ColumnType
    required: bool = True
    unique: bool = False
    description: str = ""


class Categories(_Frozen):
    credit: tuple[str, ...]
    debit: tuple[str, ...]

    @model_validator(mode="after")
    def _disjoint(self) -> Categories:
        both = sorted(set(self.credit) & set(self.debit))
        if both:
            raise ValueError(f"categories listed as both credit and debit: {both}")
        return self


class AmountBounds(_Frozen):
    min_exclusive: float = 0.0
    max: float = Field(default=1_000_000.0, gt=0)


class TimestampSpec(_Frozen):
    format: str = "ISO8601"
    timezone: str = "UTC"
    unit: Literal["s", "ms", "us", "ns"] = "s"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (e.g. UTC, Europe/Berlin)") from None
        return value


class TransactionSchema(_Frozen):
    columns: dict[str, ColumnSpec]
    directions: tuple[str, ...]
    categories: Categories
    channels: tuple[str, ...]
    fraud_types: tuple[str, ...]
    amount: AmountBounds = AmountBounds()
    timestamp: TimestampSpec = TimestampSpec()
    column_mapping: dict[str, str] = Field(default_factory=dict)
    value_mapping: dict[str, dict[str, str]] = Field(default_factory=dict)
    signed_amounts: bool = False

    @model_validator(mode="after")
    def _canonical(self) -> TransactionSchema:
        missing = [c for c in TRANSACTION_COLUMNS if c not in self.columns]
        unknown = [c for c in self.columns if c not in TRANSACTION_COLUMNS]
        if missing or unknown:
            raise ValueError(
                f"columns must be exactly the canonical ones; missing {missing}, unknown {unknown}"
            )
        if set(self.directions) != set(DIRECTIONS):
            raise ValueError(
                f"directions must be {list(DIRECTIONS)} (map yours with value_mapping)"
            )
        if NO_FRAUD in self.fraud_types:
            raise ValueError(f"fraud_types must not list {NO_FRAUD!r}: it marks legitimate rows")
        targets: dict[str, str] = {}
        for source, target in self.column_mapping.items():
            if target not in TRANSACTION_COLUMNS:
                raise ValueError(
                    f"column_mapping {source!r} -> {target!r}: {target!r} is not a canonical "
                    f"column (one of {list(TRANSACTION_COLUMNS)})"
                )
            if target in targets:
                raise ValueError(
                    f"column_mapping maps both {targets[target]!r} and {source!r} to {target!r}"
                )
            targets[target] = source
        for column in self.value_mapping:
            if column not in TRANSACTION_COLUMNS:
                raise ValueError(f"value_mapping names {column!r}, not a canonical column")
        return self


class UserTableSchema(_Frozen):
    user_id_column: str = USER_ID
    label_column: str = IS_RISKY


class Schema(_Frozen):
    version: int = 1
    transactions: TransactionSchema
    users: UserTableSchema = UserTableSchema()

    @property
    def credit_categories(self) -> tuple[str, ...]:
        return self.transactions.categories.credit

    @property
    def debit_categories(self) -> tuple[str, ...]:
        return self.transactions.categories.debit

    @property
    def categories(self) -> tuple[str, ...]:
        return self.credit_categories + self.debit_categories

    @property
    def channels(self) -> tuple[str, ...]:
        return self.transactions.channels

    @property
    def fraud_types(self) -> tuple[str, ...]:
        return self.transactions.fraud_types

    @property
    def columns(self) -> dict[str, ColumnSpec]:
        return self.transactions.columns

    @property
    def required_columns(self) -> tuple[str, ...]:
        return tuple(c for c in TRANSACTION_COLUMNS if self.columns[c].required)

    def allowed_values(self) -> dict[str, tuple[str, ...]]:
        """Closed vocabularies of the string columns."""
        return {
            DIRECTION: self.transactions.directions,
            CATEGORY: self.categories,
            CHANNEL: self.channels,
            FRAUD_TYPE: (NO_FRAUD, *self.fraud_types),
        }


def _merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _read_yaml(text: str, origin: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise FinriskError(f"schema file {origin} is not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise FinriskError(f"schema file {origin} must hold a mapping, not {type(data).__name__}")
    return data


@functools.cache
def _default_document() -> dict[str, Any]:
    # Beside this module: `finrisk` is a namespace package, which importlib.resources can't anchor.
    text = (Path(__file__).parent / "config" / "schema.yaml").read_text(encoding="utf-8")
    return _read_yaml(text, "finrisk/config/schema.yaml")


def _build(document: Mapping[str, Any], origin: str) -> Schema:
    try:
        return Schema.model_validate(document)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in err['loc']) or '(top)'}: {err['msg']}"
            for err in exc.errors()
        )
        raise FinriskError(f"schema file {origin} is invalid: {problems}") from None


@functools.cache
def default_schema() -> Schema:
    """The packaged schema, unchanged."""
    return _build(_default_document(), "finrisk/config/schema.yaml")


def load_schema(path: str | Path | None = None) -> Schema:
    """The packaged schema, overridden by the user schema file at `path` when given."""
    if path is None:
        return default_schema()
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise FinriskError(f"cannot read schema file {file}: {exc.strerror or exc}") from None
    return _build(_merge(_default_document(), _read_yaml(text, str(file))), str(file))


_DEFAULT = default_schema()
CATEGORIES: tuple[str, ...] = _DEFAULT.categories
CREDIT_CATEGORIES: tuple[str, ...] = _DEFAULT.credit_categories
DEBIT_CATEGORIES: tuple[str, ...] = _DEFAULT.debit_categories
CHANNELS: tuple[str, ...] = _DEFAULT.channels
FRAUD_TYPES: tuple[str, ...] = _DEFAULT.fraud_types
