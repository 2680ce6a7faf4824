"""Poison never stops the stream: every message, whatever its size, bytes or headers, ends scored
or dead-lettered, and its offset is committed. A dead letter Kafka would not take whole goes out
truncated, keeping why, where, the original size and a SHA-256 of the value."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import KafkaError, Producer
from confluent_kafka.admin import (
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
    ResourceType,
)

from finrisk.serving.bridge import kafka_config
from finrisk.settings import Settings
from finrisk.stack import Service
from tests.integration.bridge import runs
from tests.support.kafka_reading import (
    Record,
    committed_offsets,
    end_offsets,
    read_topic,
    wait_for,
)

pytestmark = pytest.mark.integration

MiB = 1024 * 1024
Headers = list[tuple[str, bytes | None]]


def _tx(transaction_id: str, **fields: Any) -> bytes:
    return orjson.dumps(
        {
            "transaction_id": transaction_id,
            "user_id": "u-poison",
            "timestamp": 1_735_689_600_000,
            "amount": 12.5,
            "direction": "debit",
            "category": "groceries",
            "merchant": "m",
            "channel": "online",
            "balance_after": 100.0,
            **fields,
        }
    )


# key -> (value, headers, the dead letter's kind or None when it is scored, truncated?)
POISON: dict[bytes, tuple[bytes | None, Headers, str | None, bool]] = {
    # Above the client's default message.max.bytes (1,000,000), on a topic with the broker's
    # default limit: a whole dead letter would be refused at produce.
    b"above-client": (os.urandom(1_010_000), [], "too_large", True),
    # 2 MB on a topic allowing 3 MiB: above the dead-letter topic's (the broker's) limit too.
    b"above-broker": (os.urandom(2_000_000), [], "too_large", True),
    b"too-large-but-fits": (_tx("p-big", merchant="m" * 100_000), [], "too_large", False),
    b"empty": (b"", [], "unparseable", False),
    b"none": (None, [], "unparseable", False),
    b"binary": (b"\x00\xff\xfe\x81\x00binary", [], "unparseable", False),
    b"not-utf8": (b'{"transaction_id": "\xff\xfe"}', [], "unparseable", False),
    b"odd-headers": (
        b"{not json",
        [("", b"empty name"), ("dup", b"1"), ("dup", b"2"), ("none", None), ("big", b"h" * MiB)],
        "unparseable",
        True,  # its headers alone pass the dead-letter topic's limit: dropped, counted
    ),
    # Headers that look like a verdict do not make a good transaction a dead letter.
    b"spoofed": (_tx("p-spoofed"), [("finrisk.error.kind", b"unparseable")], None, False),
    b"u-odd": (_tx("p-odd", user_id="u-odd"), [("none", None), ("", b"")], None, False),
}


def _send(bootstrap: str, topic: str, messages: list[tuple[bytes, bytes | None, Headers]]) -> None:
    """Produce as a third-party client might: large messages allowed, each acknowledged."""
    producer = Producer({"bootstrap.servers": bootstrap, "message.max.bytes": 4 * MiB})
    failures: list[KafkaError] = []

    def delivered(error: KafkaError | None, _msg: object) -> None:
        if error is not None:
            failures.append(error)

    for key, value, headers in messages:
        producer.produce(topic, value, key, headers=headers or None, on_delivery=delivered)
        producer.poll(0)
    assert producer.flush(60) == 0 and not failures, failures


def _lower_topic_limit(settings: Settings, topic: str, max_bytes: int) -> None:
    resource = ConfigResource(
        ResourceType.TOPIC,
        topic,
        incremental_configs=[
            ConfigEntry(
                "max.message.bytes",
                str(max_bytes),
                incremental_operation=AlterConfigOpType.SET,
            )
        ],
    )
    admin = kafka_config.admin(settings)
    for future in admin.incremental_alter_configs([resource]).values():
        future.result(timeout=30)


def test_poison_of_every_size_and_shape_is_dead_lettered_and_the_stream_goes_on(
    kafka: Service,
    stack_settings: Settings,
    served: runs.Served,
    transactions: list[tuple[bytes, bytes]],
    logs: Path,
) -> None:
    bootstrap = runs.bootstrap(stack_settings)
    name = runs.unique("poison")
    topic = f"{name}.input"
    admin = kafka_config.admin(stack_settings)
    for future in admin.create_topics(
        [NewTopic(topic, 3, config={"max.message.bytes": str(3 * MiB)})]
    ).values():
        future.result(timeout=30)
    good = transactions[:600]
    stream: list[tuple[bytes, bytes | None, Headers]] = [(k, v, []) for k, v in good[:300]]
    stream += [(key, value, headers) for key, (value, headers, _, _) in POISON.items()]
    stream += [(k, v, []) for k, v in good[300:500]]
    _send(bootstrap, topic, stream)
    bridge = runs.bridge(stack_settings, served, topic, name, logs).start()
    with bridge:
        first = end_offsets(bootstrap, topic)
        wait_for(lambda: committed_offsets(bootstrap, name, topic) == first, 120, "phase 1")
        # The dead-letter topic now takes less than the bridge learned at its start: a dead
        # letter of 30 kB is refused by the broker, and must not be retried as it is forever.
        _lower_topic_limit(stack_settings, f"{name}.dlq", 20_000)
        late = {b"refused-by-broker": (os.urandom(30_000), [], "unparseable", True)}
        _send(bootstrap, topic, [(k, v, h) for k, (v, h, _, _) in late.items()])
        _send(bootstrap, topic, [(k, v, []) for k, v in good[500:]])
        end = end_offsets(bootstrap, topic)
        wait_for(lambda: committed_offsets(bootstrap, name, topic) == end, 120, "every commit")
        metrics = bridge.metrics()
        assert bridge.terminate() == 0
    scored = read_topic(bootstrap, f"{name}.scored")
    expected_ids = {orjson.loads(v)["transaction_id"] for _, v in good} | {"p-spoofed", "p-odd"}
    assert sorted(runs.ids(scored)) == sorted(expected_ids)
    poison = {**POISON, **late}
    dead = {r.key: r for r in read_topic(bootstrap, f"{name}.dlq")}
    assert set(dead) == {key for key, (_, _, kind, _) in poison.items() if kind is not None}
    for key, record in dead.items():
        value, headers, kind, truncated = poison[key]
        _check_dead_letter(record, value, headers, kind, truncated, topic)
    assert metrics["finrisk_bridge_errors_total{kind=output_refused}"] >= 1


def _check_dead_letter(
    record: Record,
    value: bytes | None,
    headers: Headers,
    kind: str | None,
    truncated: bool,
    topic: str,
) -> None:
    got = record.headers
    assert got["finrisk.error.kind"] == (kind or "").encode(), record.key
    assert got["finrisk.error.reason"], record.key
    assert got["finrisk.source.topic"] == topic.encode()
    assert int(got["finrisk.source.offset"]) >= 0
    if not truncated:
        assert record.value == value and "finrisk.truncated" not in got
        return
    assert got["finrisk.truncated"] == b"true", record.key
    assert got["finrisk.original.value_bytes"] == str(len(value or b"")).encode()
    digest = hashlib.sha256(value or b"").hexdigest().encode()
    assert got["finrisk.original.value_sha256"] == digest
    assert got["finrisk.original.headers_dropped"] == str(len(headers)).encode()
    assert (value or b"").startswith(record.value or b"") and len(record.value or b"") <= 1_024
