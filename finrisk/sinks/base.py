"""The anomaly sink interface: one abstract base, one module per backend (local, bigquery).

A sink buffers anomaly records with `write` and makes them durable with `flush`; the streaming
bridge commits its Kafka offsets only after `flush` returns. Writing the same transaction twice
(a batch replayed after a crash) must not make two anomalies: backends key rows by
`transaction_id` (the local file exactly, BigQuery best effort through insertId).

`flush` retries what may pass by itself (an unavailable service, a timeout) until its deadline,
then raises SinkError and keeps the records buffered: the caller retries later. A record the
backend refuses for good (BigQuery: a row that does not fit the table) never blocks the others:
they are stored, and it is set aside with the backend's reason (`take_rejected`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Literal, NamedTuple, Self

from finrisk.errors import FinriskError

FieldType = Literal["STRING", "FLOAT", "TIMESTAMP", "BOOLEAN"]


class SinkError(FinriskError):
    """Records could not be made durable after the sink's bounded retries."""


@dataclass(frozen=True)
class AnomalyRecord:
    """One flagged transaction as stored; timestamps are timezone-aware UTC datetimes."""

    transaction_id: str
    user_id: str
    event_time: datetime
    amount: float
    direction: str
    category: str
    merchant: str
    channel: str
    balance_after: float
    anomaly_score: float
    threshold: float | None
    risk_probability: float | None
    risk_band: str | None
    # JSON array of the risk model's top reasons, as the scored topic carries them.
    reasons: str
    detector_version: str
    risk_model_version: str | None
    scored_at: datetime
    latency_ms: float

    def __post_init__(self) -> None:
        for name in ("event_time", "scored_at"):
            value = getattr(self, name)
            if not isinstance(value, datetime) or value.tzinfo is None:
                raise FinriskError(f"anomaly record field {name!r} needs a timezone-aware datetime")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# Column types, in table order; REQUIRED unless listed in NULLABLE_FIELDS.
FIELD_TYPES: dict[str, FieldType] = {
    "transaction_id": "STRING",
    "user_id": "STRING",
    "event_time": "TIMESTAMP",
    "amount": "FLOAT",
    "direction": "STRING",
    "category": "STRING",
    "merchant": "STRING",
    "channel": "STRING",
    "balance_after": "FLOAT",
    "anomaly_score": "FLOAT",
    "threshold": "FLOAT",
    "risk_probability": "FLOAT",
    "risk_band": "STRING",
    "reasons": "STRING",
    "detector_version": "STRING",
    "risk_model_version": "STRING",
    "scored_at": "TIMESTAMP",
    "latency_ms": "FLOAT",
}
NULLABLE_FIELDS: frozenset[str] = frozenset(
    {"threshold", "risk_probability", "risk_band", "risk_model_version"}
)
# Tables are partitioned by day of this column.
PARTITION_FIELD = "event_time"

if tuple(FIELD_TYPES) != tuple(f.name for f in fields(AnomalyRecord)):  # pragma: no cover
    raise AssertionError("FIELD_TYPES must list AnomalyRecord's fields in order")


def utc_from_micros(micros: int) -> datetime:
    """A UTC datetime from microseconds since the epoch (how both backends store timestamps)."""
    return datetime.fromtimestamp(micros / 1_000_000, tz=UTC)


def micros(value: datetime) -> int:
    return round(value.timestamp() * 1_000_000)


class Rejected(NamedTuple):
    """A record the backend refuses for good, and the backend's reason."""

    record: AnomalyRecord
    reason: str


class AnomalySink(ABC):
    """Buffered, idempotent (by transaction id) storage for anomaly records."""

    # Whether writing a transaction id twice is guaranteed to leave one row.
    exact_deduplication: bool = True

    def __init__(self) -> None:
        self._buffer: dict[str, AnomalyRecord] = {}
        self._rejected: list[Rejected] = []

    @property
    @abstractmethod
    def location(self) -> str:
        """Where the records go, for logs and messages."""

    def write(self, records: Iterable[AnomalyRecord]) -> None:
        """Buffer records; nothing is durable before `flush`. A repeated id replaces the earlier."""
        for record in records:
            self._buffer[record.transaction_id] = record

    @property
    def pending(self) -> int:
        return len(self._buffer)

    def flush(self) -> int:
        """Make every buffered record durable; return how many. Raises SinkError when it can't.

        On failure the records stay buffered, so a later flush retries them.
        """
        if not self._buffer:
            return 0
        records = list(self._buffer.values())
        self._store(records)
        self._buffer.clear()
        return len(records)

    def take_rejected(self) -> list[Rejected]:
        """The records refused for good since the last call (they are not stored)."""
        rejected, self._rejected = self._rejected, []
        return rejected

    @abstractmethod
    def _store(self, records: Sequence[AnomalyRecord]) -> None:
        """Durably store records (upsert by transaction id), retrying until the deadline;
        records refused for good go to `self._rejected` instead."""

    @abstractmethod
    def read(self) -> list[AnomalyRecord]:
        """Every stored record, ordered by event time then transaction id."""

    def close(self) -> None:  # noqa: B027 (backends without resources need nothing)
        """Release connections; buffered records not flushed are dropped."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
