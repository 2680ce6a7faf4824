"""The seed's approach, for the benchmark: one predictor call per message.

Same parsing, the same online features, the same models and the same outputs as the bridge,
but each message is scored alone (one V2 call per model per message), produced, and its offset
committed in the background (auto commit), which is what a straightforward consumer does.
Several such consumers share a topic by taking fixed partitions each: no rebalance pauses
them while the benchmark measures.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from confluent_kafka import Consumer, Producer, TopicPartition

from finrisk.features.online import evaluate_transaction, evaluate_user
from finrisk.serving.bridge import kafka_config
from finrisk.serving.bridge.app import build_scorer
from finrisk.serving.bridge.messages import BadMessage, MessageParser
from finrisk.serving.bridge.outputs import HISTORY_DAYS_COLUMN, scored_value
from finrisk.serving.bridge.state import StateStore
from finrisk.settings import Settings


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
            msg = consumer.poll(0.5)
            if msg is None or msg.error() is not None:
                continue
            if first is None:
                first = time.monotonic()
                deadline = min(deadline, first + max_seconds)
            partition, offset = msg.partition() or 0, msg.offset() or 0
            try:
                tx = parser.parse(msg.value())
            except BadMessage:
                continue
            tx_row, user_row = state.apply(tx, partition, offset)
            # One row: on floats, faster than numpy's per-call overhead.
            user = evaluate_user(user_row)
            (score,) = scorer.score(
                np.array([evaluate_transaction(tx_row)], dtype=np.float64),
                np.array([user], dtype=np.float64),
            )
            now_ms = int(time.time() * 1000)
            stamp = msg.timestamp()[1]
            value = scored_value(
                tx,
                score,
                scored_at_ms=now_ms,
                latency_ms=float(now_ms - stamp),
                partition=partition,
                offset=offset,
                history_days=user[HISTORY_DAYS_COLUMN],
            )
            producer.produce(config.scored_topic, value, msg.key())
            producer.poll(0)
            scored += 1
        producer.flush(30)
    finally:
        consumer.close()
        scorer.close()
    seconds = time.monotonic() - first if first is not None else 0.0
    return {
        "scored": scored,
        "seconds": round(seconds, 3),
        "tx_per_s": round(scored / seconds, 1) if seconds > 0 else 0.0,
    }
