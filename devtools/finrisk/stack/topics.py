"""Deleting the topics that tests and benchmarks made on the local broker."""

from __future__ import annotations

from collections.abc import Sequence

from confluent_kafka import KafkaError, KafkaException

from finrisk.errors import FinriskError
from finrisk.serving.bridge import kafka_config
from finrisk.settings import Settings
from finrisk.stack.process import wait_until


def delete_topics(settings: Settings, prefixes: Sequence[str]) -> list[str]:
    """Delete every topic whose name starts with one of `prefixes`; the names deleted.

    For the runs' own topics (tests, benchmarks): a broker keeps every topic it was given, and
    one that holds thousands of partitions takes minutes to start.
    """
    client = kafka_config.admin(settings)
    try:
        names = [
            name
            for name in client.list_topics(timeout=30).topics
            if name.startswith(tuple(prefixes))
        ]
        if names:
            for name, future in client.delete_topics(names, operation_timeout=30).items():
                try:
                    future.result(timeout=60)
                except KafkaException as exc:
                    if exc.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                        raise FinriskError(f"cannot delete Kafka topic {name}: {exc}") from None
            # The controller has deleted them; the broker's metadata follows a moment later.
            wait_until(
                lambda: not set(names) & set(client.list_topics(timeout=30).topics),
                60,
                f"deleting {len(names)} Kafka topics",
                interval=0.05,
            )
    except KafkaException as exc:
        raise FinriskError(f"Kafka at {kafka_config.bootstrap_servers(settings)}: {exc}") from None
    return sorted(names)
