"""Kafka records as the bridge handles them: what it sends, and where a consumed one came from."""

from __future__ import annotations

from confluent_kafka import Message

Headers = list[tuple[str, str | bytes | None]]
# (topic, key, value, headers, partition or None for the key's partition)
OutRecord = tuple[str, bytes | None, bytes | None, Headers | None, int | None]


def where(msg: Message) -> tuple[int, int]:
    """(partition, offset) of a consumed message (always set on those)."""
    partition, offset = msg.partition(), msg.offset()
    assert partition is not None and offset is not None
    return partition, offset


# Stands in for headers the client cannot decode (a header name that is not UTF-8, which only a
# client writing raw records can make): the message is still handled, its headers marked lost.
UNREADABLE_HEADERS: Headers = [("finrisk.original.headers_unreadable", b"true")]


def headers_of(msg: Message) -> Headers:
    try:
        raw = msg.headers()
    except (UnicodeDecodeError, SystemError, ValueError):
        return list(UNREADABLE_HEADERS)
    if raw is None:
        return []
    return list(raw.items()) if isinstance(raw, dict) else list(raw)


def as_record(msg: Message) -> OutRecord:
    """A produced message without headers (delivery reports carry none) as a record to send
    again, to the partition it went to, or its key's when it got none."""
    partition = msg.partition()
    return (
        msg.topic() or "",
        msg.key(),
        msg.value(),
        None,
        partition if partition is not None and partition >= 0 else None,
    )
