"""Dead letters: what the bridge writes for a message it will not score, always small enough
for Kafka to take.

A dead letter is the input message as it came (key, value, headers) plus headers saying why
(`finrisk.error.kind`, `finrisk.error.reason`) and where it came from
(`finrisk.source.topic/partition/offset`). A message can be larger than the producer or the
dead-letter topic accepts (a producer allowed 2 MB on the input topic; a dead-letter topic with
a lower `max.message.bytes`), and a dead letter Kafka refuses for good would stop the stream:
its input offset could never be committed. Such a message gets a truncated dead letter instead:
the first `KEPT_VALUE_BYTES` of its value, the why and where headers, and
`finrisk.original.value_bytes`, `finrisk.original.value_sha256` and
`finrisk.original.headers_dropped` in place of what was cut, so it can be found and compared
with what the producer sent.

A record Kafka refuses for good although it was sized to fit (a topic whose limit changed, a
scored record past a lowered limit) is replaced through `rescue`: a dead letter by its truncated
form, a scored record by a truncated dead letter naming Kafka's error and its transaction's
source (kind `output_rejected`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import orjson
from confluent_kafka import KafkaError

from finrisk.serving.bridge.records import Headers, OutRecord

# Why a message was not scored (`finrisk.error.kind`). The parser's kinds (unparseable,
# schema_invalid) are in messages.py.
MODEL_REJECTED = "model_rejected"
TOO_LARGE = "too_large"
DUPLICATE = "duplicate"
SINK_REJECTED = "sink_rejected"
OUTPUT_REJECTED = "output_rejected"

ERROR_KIND_HEADER = "finrisk.error.kind"
ERROR_REASON_HEADER = "finrisk.error.reason"
SOURCE_TOPIC_HEADER = "finrisk.source.topic"
SOURCE_PARTITION_HEADER = "finrisk.source.partition"
SOURCE_OFFSET_HEADER = "finrisk.source.offset"
TRUNCATED_HEADER = "finrisk.truncated"
ORIGINAL_VALUE_BYTES_HEADER = "finrisk.original.value_bytes"
ORIGINAL_VALUE_SHA256_HEADER = "finrisk.original.value_sha256"
ORIGINAL_HEADERS_DROPPED_HEADER = "finrisk.original.headers_dropped"
_WHY_AND_WHERE = frozenset(
    {
        ERROR_KIND_HEADER,
        ERROR_REASON_HEADER,
        SOURCE_TOPIC_HEADER,
        SOURCE_PARTITION_HEADER,
        SOURCE_OFFSET_HEADER,
    }
)
MAX_REASON_BYTES = 2_000
# What a truncated dead letter keeps of the value and the key: enough to recognise the message.
KEPT_VALUE_BYTES = 1_024
KEPT_KEY_BYTES = 256
# librdkafka counts a record's key, value and headers against message.max.bytes, and the
# broker a record batch (with its own framing) against the topic's max.message.bytes: a margin
# for both, and for the varints of each header.
RECORD_OVERHEAD_BYTES = 512
HEADER_OVERHEAD_BYTES = 16

# Produce errors that sending again cannot cure: the record itself is refused.
REFUSED_FOR_GOOD = frozenset(
    {
        KafkaError.MSG_SIZE_TOO_LARGE,
        KafkaError.RECORD_LIST_TOO_LARGE,
        KafkaError.INVALID_RECORD,
        KafkaError.INVALID_MSG_SIZE,
    }
)


def refused_for_good(error: KafkaError | None) -> bool:
    return error is not None and error.code() in REFUSED_FOR_GOOD


def record_bytes(key: bytes | None, value: bytes | None, headers: Headers | None) -> int:
    """What a record weighs against Kafka's size limits (an upper bound)."""
    size = RECORD_OVERHEAD_BYTES + len(key or b"") + len(value or b"")
    for name, data in headers or ():
        size += HEADER_OVERHEAD_BYTES + len(name.encode()) + len(data or b"")
    return size


def dead_letter_headers(
    kind: str,
    reason: str,
    *,
    topic: str,
    partition: int,
    offset: int,
    original: Sequence[tuple[str, str | bytes | None]] | None,
) -> Headers:
    """Why and where, then the message's own headers (earlier error headers left out, so a
    message sent back from the dead-letter topic does not carry two verdicts)."""
    headers: Headers = [
        (ERROR_KIND_HEADER, kind.encode()),
        (ERROR_REASON_HEADER, reason.encode("utf-8", "replace")[:MAX_REASON_BYTES]),
        (SOURCE_TOPIC_HEADER, topic.encode()),
        (SOURCE_PARTITION_HEADER, str(partition).encode()),
        (SOURCE_OFFSET_HEADER, str(offset).encode()),
    ]
    headers.extend(
        (name, value) for name, value in original or () if not name.startswith("finrisk.error.")
    )
    return headers


class DeadLetters:
    """Builds the dead-letter topic's records, each within `max_bytes`."""

    def __init__(self, topic: str, max_bytes: int) -> None:
        self.topic = topic
        self.max_bytes = max_bytes

    def record(
        self,
        kind: str,
        reason: str,
        *,
        key: bytes | None,
        value: bytes | None,
        source: tuple[str, int, int],
        headers: Sequence[tuple[str, str | bytes | None]] | None,
    ) -> OutRecord:
        """The dead letter of one message: whole when it fits, else truncated."""
        topic, partition, offset = source
        full = dead_letter_headers(
            kind, reason, topic=topic, partition=partition, offset=offset, original=headers
        )
        if record_bytes(key, value, full) <= self.max_bytes:
            return (self.topic, key, value, full, None)
        return self._truncated(key, value, full)

    def shrink(self, record: OutRecord) -> OutRecord | None:
        """A refused dead letter in its truncated form; None when it already was."""
        _, key, value, headers, _ = record
        if any(name == TRUNCATED_HEADER for name, _ in headers or ()):
            return None
        # Refused at this size: whatever is learned later, records this big no longer fit.
        self.max_bytes = min(self.max_bytes, record_bytes(key, value, headers) - 1)
        return self._truncated(key, value, headers or [])

    def rescue(self, record: OutRecord, error: KafkaError, *, input_topic: str) -> OutRecord | None:
        """What to send instead of a record Kafka refused for good (None: nothing can be)."""
        topic, key, value, headers, _ = record
        if topic == self.topic:
            return self.shrink(record)
        try:
            source = orjson.loads(value or b"null")["source"]
            partition, offset = int(source["partition"]), int(source["offset"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return None  # not a scored record (a changelog record): no dead letter stands in
        return self._truncated(
            key,
            value,
            dead_letter_headers(
                OUTPUT_REJECTED,
                f"{topic} refused the scored record for good: {error}",
                topic=input_topic,
                partition=partition,
                offset=offset,
                original=headers,
            ),
        )

    def _truncated(self, key: bytes | None, value: bytes | None, headers: Headers) -> OutRecord:
        ours: Headers = []
        for name, data in headers:  # the first of each (a re-sent message may carry old ones)
            if name in _WHY_AND_WHERE and name not in {kept for kept, _ in ours}:
                ours.append((name, data))
        dropped = len(headers) - len(ours)
        ours += [
            (TRUNCATED_HEADER, b"true"),
            (ORIGINAL_VALUE_BYTES_HEADER, str(len(value or b"")).encode()),
            (ORIGINAL_VALUE_SHA256_HEADER, hashlib.sha256(value or b"").hexdigest().encode()),
            (ORIGINAL_HEADERS_DROPPED_HEADER, str(dropped).encode()),
        ]
        kept_key = key[:KEPT_KEY_BYTES] if key is not None else None
        kept_value = value[:KEPT_VALUE_BYTES] if value is not None else None
        return (self.topic, kept_key, kept_value, ours, None)
