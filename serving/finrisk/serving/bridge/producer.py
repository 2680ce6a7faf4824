"""`finrisk produce`: stream transactions to the input topic, keyed by user, at a given rate.

Transactions come from the synthetic generator (or a dataset directory) in canonical order,
so each user's stream is in time order, as the online features expect. Keys are user ids and
the partitioner is murmur2 (the Java client's), so a user's transactions share one partition
whichever client produced them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
from confluent_kafka import KafkaError, Message, Producer

from finrisk.errors import FinriskError
from finrisk.schema import TIMESTAMP, TRANSACTION_ID, USER_ID
from finrisk.serving.bridge.messages import WIRE_FIELDS, encode_transaction

_NS_PER_MS = 1_000_000


def time_order(transactions: pd.DataFrame) -> pd.DataFrame:
    """Rows by (timestamp, transaction_id): every user's rows come in their canonical order."""
    return transactions.sort_values([TIMESTAMP, TRANSACTION_ID], kind="stable")


def wire_records(transactions: pd.DataFrame, id_prefix: str = "") -> list[tuple[bytes, bytes]]:
    """(key, value) per transaction in canonical order; timestamps as epoch milliseconds."""
    missing = [name for name in WIRE_FIELDS if name not in transactions.columns]
    if missing:
        raise FinriskError(f"transactions lack the columns {missing}")
    frame = time_order(transactions)[list(WIRE_FIELDS)].copy()
    stamps = frame[TIMESTAMP]
    if getattr(stamps.dtype, "tz", None) is None:
        stamps = stamps.dt.tz_localize("UTC")
    frame[TIMESTAMP] = stamps.dt.as_unit("ns").astype("int64") // _NS_PER_MS
    if id_prefix:
        frame[TRANSACTION_ID] = id_prefix + frame[TRANSACTION_ID].astype(str)
    records = []
    for row in frame.to_dict("records"):
        records.append((str(row[USER_ID]).encode(), encode_transaction(row)))
    return records


def synthetic_records(
    count: int, users: int, days: int, seed: int, id_prefix: str = ""
) -> list[tuple[bytes, bytes]]:
    """The first `count` transactions (in time order) of a synthetic population."""
    from finrisk.synthetic import generate

    transactions, _users, _manifest = generate(users=users, days=days, seed=seed)
    if len(transactions) < count:
        raise FinriskError(
            f"{users} users over {days} days make {len(transactions)} transactions, fewer than "
            f"--count {count}; raise --users or --days"
        )
    ordered = time_order(transactions).iloc[:count]
    return wire_records(ordered, id_prefix)


@dataclass
class ProduceStats:
    produced: int
    seconds: float
    failed: int

    @property
    def rate(self) -> float:
        return self.produced / self.seconds if self.seconds > 0 else float("inf")

    def as_dict(self) -> dict[str, Any]:
        return {
            "produced": self.produced,
            "failed": self.failed,
            "seconds": round(self.seconds, 3),
            "rate_per_s": round(self.rate, 1),
        }


def paced(n: int, rate: float | None, clock: Callable[[], float] = time.monotonic) -> Iterator[int]:
    """Indices 0..n-1, each released no earlier than start + i / rate (all at once: no rate)."""
    start = clock()
    for i in range(n):
        if rate:
            wait = start + i / rate - clock()
            if wait > 0.001:
                time.sleep(wait)
        yield i


def stream_producer(client_config: dict[str, Any]) -> Producer:
    """An idempotent producer partitioning by key like Java clients (murmur2)."""
    return Producer(
        {
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "partitioner": "murmur2_random",
            "queue.buffering.max.messages": 1_000_000,
            "compression.type": "lz4",
            **client_config,
        }
    )


def produce(
    producer: Producer | dict[str, Any],
    topic: str,
    records: Sequence[tuple[bytes, bytes]],
    *,
    rate: float | None = None,
    on_sent: Callable[[int], None] | None = None,
) -> ProduceStats:
    """Send records (key, value) to `topic` at `rate` per second; wait for every acknowledgement.

    `producer` is a producer to reuse (its connection is warm: what latency measurements need)
    or the client configuration of a new one.
    """
    if isinstance(producer, dict):
        producer = stream_producer(producer)
    failures: list[KafkaError] = []

    def delivered(error: KafkaError | None, _msg: Message) -> None:
        if error is not None:
            failures.append(error)

    started = time.monotonic()
    for i in paced(len(records), rate):
        key, value = records[i]
        while True:
            try:
                producer.produce(topic, value, key, on_delivery=delivered)
                break
            except BufferError:
                producer.poll(0.05)
        if i % 1000 == 0:
            producer.poll(0)
            if on_sent is not None:
                on_sent(i)
    remaining = producer.flush(60)
    seconds = time.monotonic() - started
    if remaining:
        raise FinriskError(f"Kafka did not acknowledge {remaining} of {len(records)} messages")
    if failures:
        raise FinriskError(f"{len(failures)} messages were not delivered: {failures[0]}")
    return ProduceStats(produced=len(records), seconds=seconds, failed=len(failures))
