"""The seed's approach, for the benchmark: one predictor call per message.

Same parsing, the same online features, the same models and the same outputs as the bridge,
but each message is scored alone (one V2 call per model per message), produced, its anomaly (if
it is one) stored in the sink at once, and its offset committed in the background (auto
commit), which is what a straightforward consumer does.
Its features are computed per poll (up to POLL_MESSAGES at once) by the bridge's engine: the
engine is built for batches, and fed one transaction at a time it would cost this consumer
about 0.4 ms per message more, which is not what is measured here. Several such consumers
share a topic by taking fixed partitions each: no rebalance pauses them while the benchmark
measures.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from confluent_kafka import Consumer, Message, Producer, TopicPartition

from finrisk.serving.bridge import kafka_config
from finrisk.serving.bridge.app import build_scorer
from finrisk.serving.bridge.messages import BadMessage, MessageParser, Transaction
from finrisk.serving.bridge.outputs import HISTORY_DAYS_COLUMN, anomaly_record, scored_values
from finrisk.serving.bridge.state import StateStore
from finrisk.settings import Settings
from finrisk.sinks import open_sink

POLL_MESSAGES = 500


def run_one_per_message(
    settings: Settings,
    *,
    max_messages: int,
    max_seconds: float,
    partitions: Sequence[int] | None = None,
) -> dict[str, Any]:
    """Score up to `max_messages` one at a time, for at most `max_seconds`; the figures. With
    `partitions`, read those partitions of the input topic only (else: subscribe)."""
    config = settings.bridge
    consumer = Consumer(
        {
            **kafka_config.client_config(settings),
            "group.id": config.group_id,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": True,
            "session.timeout.ms": config.session_timeout_ms,
        }
    )
    producer = Producer(
        {**kafka_config.client_config(settings), "enable.idempotence": True, "acks": "all"}
    )
    scorer = build_scorer(config)
    sink = open_sink(settings)  # as deployed: each anomaly stored as it comes
    parser = MessageParser()
    state = StateStore()
    if partitions is None:
        consumer.subscribe([config.input_topic])
    else:
        consumer.assign([TopicPartition(config.input_topic, p) for p in partitions])
    scored = 0
    first: float | None = None
    deadline = time.monotonic() + max_seconds
    try:
        while scored < max_messages and time.monotonic() < deadline:
            polled = consumer.consume(min(POLL_MESSAGES, max_messages - scored), 0.5)
            messages = [msg for msg in polled if msg.error() is None]
            parsed = parser.parse_batch([msg.value() for msg in messages])
            good: list[tuple[Message, Transaction]] = [
                (msg, tx)
                for msg, tx in zip(messages, parsed.transactions, strict=True)
                if not isinstance(tx, BadMessage)
            ]
            positions = [(msg.partition() or 0, msg.offset() or 0) for msg, _ in good]
            if not good:
                continue
            if first is None:
                first = time.monotonic()
                deadline = min(deadline, first + max_seconds)
            tx_matrix, user_matrix = state.apply(parsed.columns, positions)
            for i, ((msg, tx), (partition, offset)) in enumerate(zip(good, positions, strict=True)):
                if time.monotonic() >= deadline:
                    break
                (score,) = scorer.score(tx_matrix[i : i + 1], user_matrix[i : i + 1])
                now_ms = int(time.time() * 1000)
                stamp = msg.timestamp()[1]
                (value,) = scored_values(
                    [tx],
                    [score],
                    scored_at_ms=now_ms,
                    latencies_ms=[float(now_ms - stamp)],
                    positions=[(partition, offset)],
                    history_days=[float(user_matrix[i, HISTORY_DAYS_COLUMN])],
                )
                producer.produce(config.scored_topic, value, msg.key())
                producer.poll(0)
                if sink is not None and score.is_anomaly:
                    record = anomaly_record(
                        tx, score, scored_at_ms=now_ms, latency_ms=float(now_ms - stamp)
                    )
                    sink.write([record])
                    sink.flush()
                scored += 1
        producer.flush(30)
    finally:
        consumer.close()
        scorer.close()
        if sink is not None:
            sink.close()
    seconds = time.monotonic() - first if first is not None else 0.0
    return {
        "scored": scored,
        "seconds": round(seconds, 3),
        "tx_per_s": round(scored / seconds, 1) if seconds > 0 else 0.0,
    }
