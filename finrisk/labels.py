"""Confirmed labels: what became of a transaction, learned days after it was scored.

One label record, as it travels on the labels topic (keyed by user id) and lands in the
warehouse's `labels` table:

    {"transaction_id", "user_id",
     "event_time":  the transaction's time, RFC 3339 UTC,
     "outcome":     "fraud_confirmed" | "chargeback" | "legitimate",
     "labelled_at": when the outcome became known, RFC 3339 UTC, not before event_time,
     "source":      who said so ("synthetic" for the generator's stream)}

A transaction is fraud when any of its outcomes is a fraud outcome (`FRAUD_OUTCOMES`): a
chargeback after a dispute resolved as legitimate still makes it fraud. This module is the one
place that vocabulary and rule live; docs/monitoring.md, "Confirmed labels", describes them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from finrisk.errors import FinriskError

FRAUD_CONFIRMED = "fraud_confirmed"  # the bank's investigation confirmed it
CHARGEBACK = "chargeback"  # the card network reversed it at the cardholder's claim
LEGITIMATE = "legitimate"  # a dispute resolved, or the customer confirmed it was theirs
OUTCOMES: tuple[str, ...] = (FRAUD_CONFIRMED, CHARGEBACK, LEGITIMATE)
FRAUD_OUTCOMES = frozenset({FRAUD_CONFIRMED, CHARGEBACK})

FIELDS: tuple[str, ...] = (
    "transaction_id",
    "user_id",
    "event_time",
    "outcome",
    "labelled_at",
    "source",
)
# Identifiers are the warehouse's keys: longer ones are a producer's bug, not an id.
MAX_ID_CHARS = 256


class LabelError(FinriskError):
    """A label record that cannot be taken; the message names what is wrong."""


def is_fraud(outcome: str) -> bool:
    return outcome in FRAUD_OUTCOMES


def label_of(outcomes: Iterable[str]) -> int:
    """A transaction's fraud label from all its outcomes: 1 when any says fraud."""
    return int(any(is_fraud(outcome) for outcome in outcomes))


@dataclass(frozen=True)
class LabelRecord:
    transaction_id: str
    user_id: str
    event_time: datetime  # aware, UTC
    outcome: str
    labelled_at: datetime  # aware, UTC
    source: str

    @property
    def is_fraud(self) -> bool:
        return is_fraud(self.outcome)

    @property
    def delay_days(self) -> float:
        return (self.labelled_at - self.event_time).total_seconds() / 86_400

    @property
    def key(self) -> bytes:
        """The Kafka key: the user, so a user's labels share a partition like their
        transactions."""
        return self.user_id.encode()

    def as_json_dict(self) -> dict[str, str]:
        return {
            "transaction_id": self.transaction_id,
            "user_id": self.user_id,
            "event_time": rfc3339(self.event_time),
            "outcome": self.outcome,
            "labelled_at": rfc3339(self.labelled_at),
            "source": self.source,
        }

    def to_json(self) -> bytes:
        return orjson.dumps(self.as_json_dict())


def rfc3339(value: datetime) -> str:
    """UTC, seconds or microseconds, with a Z: the form every label record is written in."""
    text = value.astimezone(UTC).isoformat()
    return text.removesuffix("+00:00") + "Z"


def parse_label(value: bytes | str | Mapping[str, Any]) -> LabelRecord:
    """A label record from its JSON (or a decoded mapping); LabelError names what is wrong."""
    if isinstance(value, bytes | str):
        try:
            doc = orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            raise LabelError(f"not JSON: {exc}") from None
    else:
        doc = value
    if not isinstance(doc, Mapping):
        raise LabelError(f"a label record is a JSON object, got {type(doc).__name__}")
    missing = [name for name in FIELDS if doc.get(name) is None]
    if missing:
        raise LabelError(f"missing fields: {', '.join(missing)}")
    extra = sorted(str(name) for name in doc if name not in FIELDS)
    if extra:
        raise LabelError(f"unknown fields: {', '.join(extra[:5])}")
    transaction_id = _identifier(doc, "transaction_id")
    user_id = _identifier(doc, "user_id")
    source = _identifier(doc, "source")
    outcome = doc["outcome"]
    if outcome not in OUTCOMES:
        raise LabelError(f"outcome {_shown(outcome)} is not one of {', '.join(OUTCOMES)}")
    event_time = parse_time(doc["event_time"], "event_time")
    labelled_at = parse_time(doc["labelled_at"], "labelled_at")
    if labelled_at < event_time:
        raise LabelError(
            f"labelled_at {rfc3339(labelled_at)} is before event_time {rfc3339(event_time)}"
        )
    return LabelRecord(transaction_id, user_id, event_time, outcome, labelled_at, source)


def parse_time(value: object, name: str) -> datetime:
    """An RFC 3339 time with an offset (Z or ±hh:mm), as aware UTC; LabelError otherwise."""
    if not isinstance(value, str):
        raise LabelError(f"{name} must be an RFC 3339 string, got {type(value).__name__}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise LabelError(f"{name} {_shown(value)} is not an RFC 3339 time") from None
    if parsed.tzinfo is None:
        # A time without an offset is a guess at the producer's zone: refused, not assumed.
        raise LabelError(f"{name} {_shown(value)} has no UTC offset")
    return parsed.astimezone(UTC)


def _identifier(doc: Mapping[str, Any], name: str) -> str:
    value = doc[name]
    if not isinstance(value, str):
        raise LabelError(f"{name} must be a string, got {type(value).__name__}")
    if not value.strip():
        raise LabelError(f"{name} is empty")
    if len(value) > MAX_ID_CHARS:
        raise LabelError(f"{name} is {len(value)} characters, more than {MAX_ID_CHARS}")
    return value


def _shown(value: object) -> str:
    """A value for an error message, cut short: hostile input can be megabytes."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
