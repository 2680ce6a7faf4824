"""librdkafka configuration from typed settings, and the topics the bridge needs."""

from __future__ import annotations

import socket
import time
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic, ResourceType

from finrisk.errors import FinriskError
from finrisk.settings import BridgeSettings, Settings

DEFAULT_PARTITIONS = 6
# How long the producer keeps retrying a record before reporting it failed.
MESSAGE_TIMEOUT_MS = 30_000
# librdkafka's default message.max.bytes (the largest record a producer queues), and the
# broker's default max.message.bytes (the largest record batch a topic takes).
PRODUCER_MAX_BYTES = 1_000_000
TOPIC_MAX_BYTES = 1_048_588


def bootstrap_servers(settings: Settings) -> str:
    return settings.bridge.bootstrap_servers or settings.kafka.bootstrap_servers


def changelog_topic(bridge: BridgeSettings) -> str:
    return bridge.changelog_topic or f"{bridge.group_id}.state"


def transactional_id(bridge: BridgeSettings) -> str:
    return bridge.transactional_id or f"{bridge.group_id}-{socket.gethostname()}"


def client_config(settings: Settings) -> dict[str, Any]:
    """Connection and security properties every client shares."""
    bridge = settings.bridge
    conf: dict[str, Any] = {
        "bootstrap.servers": bootstrap_servers(settings),
        "security.protocol": bridge.security_protocol,
    }
    if bridge.sasl_mechanism:
        conf["sasl.mechanism"] = bridge.sasl_mechanism
    if bridge.sasl_username is not None:
        conf["sasl.username"] = bridge.sasl_username
    if bridge.sasl_password is not None:
        conf["sasl.password"] = bridge.sasl_password.get_secret_value()
    for key, path in (
        ("ssl.ca.location", bridge.ssl_ca_location),
        ("ssl.certificate.location", bridge.ssl_certificate_location),
        ("ssl.key.location", bridge.ssl_key_location),
    ):
        if path is not None:
            conf[key] = str(path)
    if bridge.ssl_key_password is not None:
        conf["ssl.key.password"] = bridge.ssl_key_password.get_secret_value()
    conf.update(bridge.kafka_options)  # they win over the bridge's defaults below too
    return conf


def consumer_config(settings: Settings) -> dict[str, Any]:
    bridge = settings.bridge
    return {
        **client_config(settings),
        "group.id": bridge.group_id,
        # Offsets are committed by hand, only after a batch's outputs are durable.
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "partition.assignment.strategy": "cooperative-sticky",
        "isolation.level": "read_committed",
        "session.timeout.ms": bridge.session_timeout_ms,
        # A member learns of a rebalance at its next heartbeat, and a cooperative rebalance
        # takes two rounds: at a quarter of the session, moved partitions sat idle ~3.5 s.
        "heartbeat.interval.ms": max(500, bridge.session_timeout_ms // 10),
        # Let a paused bridge keep its partitions for long outages of the predictor: the loop
        # polls every few hundred ms while paused, so this bounds only a wedged process.
        "max.poll.interval.ms": 300_000,
        "queued.min.messages": 4 * bridge.batch_max_messages,
        # Once a partition's local queue passes that, librdkafka waits this long before fetching
        # it again (default 1 s): a bridge that drains faster than the queue refills then stalls
        # on empty partitions (a plain consumer read a 100k backlog in 2.1 s at the default,
        # 0.06 s at 10 ms, the same CPU).
        "fetch.queue.backoff.ms": 10,
        **bridge.kafka_options,
    }


def producer_config(settings: Settings, *, transactional: bool) -> dict[str, Any]:
    bridge = settings.bridge
    conf: dict[str, Any] = {
        **client_config(settings),
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 2,
        "batch.num.messages": 10_000,
        "queue.buffering.max.messages": 1_000_000,
        "compression.type": "lz4",
        "message.timeout.ms": MESSAGE_TIMEOUT_MS,
    }
    if transactional:
        conf["transactional.id"] = transactional_id(bridge)
        conf["transaction.timeout.ms"] = 30_000
        # After every broker was down, librdkafka 2.16 re-bootstraps and a transactional call
        # waiting on the group coordinator can hang ~10 minutes whatever its timeout
        # (librdkafka #5456, #5511; seen in all 7 runs of a broker SIGKILL here, none of 4 with
        # this). The cost: no re-bootstrap should every broker address change.
        conf["metadata.recovery.strategy"] = "none"
    conf.update(bridge.kafka_options)
    return conf


def restore_consumer_config(settings: Settings) -> dict[str, Any]:
    """A group-less consumer that reads changelog partitions it is assigned by hand."""
    return {
        **client_config(settings),
        "group.id": f"{settings.bridge.group_id}.restore",
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        "isolation.level": "read_committed",
        "auto.offset.reset": "earliest",
    }


def admin(settings: Settings) -> AdminClient:
    return AdminClient(client_config(settings))


def partition_count(client: AdminClient, topic: str, timeout_s: float = 10.0) -> int | None:
    # All topics: asking for one by name makes a broker with auto-creation create it.
    metadata = client.list_topics(timeout=timeout_s)
    found = metadata.topics.get(topic)
    if found is None or found.error is not None or not found.partitions:
        return None
    return len(found.partitions)


def ensure_topics(settings: Settings) -> int:
    """Create the bridge's topics when missing; return the input topic's partition count.

    A missing input topic gets the setting `input_partitions`.

    The outputs and the dead-letter topic get the input's partition count, the monitoring
    topic one; the state changelog must have at least as many (a user's state lives in the
    partition number of their input).
    """
    bridge = settings.bridge
    client = admin(settings)
    try:
        n = partition_count(client, bridge.input_topic)
        wanted = {}
        if n is None:
            n = bridge.input_partitions
            wanted[bridge.input_topic] = NewTopic(bridge.input_topic, n)
        for topic in (bridge.scored_topic, bridge.dlq_topic):
            if partition_count(client, topic) is None:
                wanted[topic] = NewTopic(topic, n)
        # A few records a minute, keyed by model: one partition keeps them in the order the
        # windows closed (a broker may not create topics on first use).
        if bridge.monitoring and partition_count(client, bridge.monitoring_topic) is None:
            wanted[bridge.monitoring_topic] = NewTopic(bridge.monitoring_topic, 1)
        changelog = changelog_topic(bridge)
        have = partition_count(client, changelog)
        if have is None:
            wanted[changelog] = NewTopic(
                changelog,
                n,
                config={
                    "cleanup.policy": "compact",
                    "min.compaction.lag.ms": "0",
                    "segment.ms": "600000",
                },
            )
        elif have < n:
            raise FinriskError(
                f"state changelog {changelog} has {have} partitions, fewer than the "
                f"{n} of {bridge.input_topic}; add partitions to it (kafka-topics --alter)"
            )
        _create(client, list(wanted.values()))
    except KafkaException as exc:
        raise FinriskError(f"Kafka at {bootstrap_servers(settings)}: {exc}") from None
    return n


def ensure_topic(settings: Settings, topic: str, partitions: int = DEFAULT_PARTITIONS) -> int:
    """Create `topic` with `partitions` when missing; its partition count."""
    client = admin(settings)
    try:
        have = partition_count(client, topic)
        if have is not None:
            return have
        _create(client, [NewTopic(topic, partitions)])
    except KafkaException as exc:
        raise FinriskError(f"Kafka at {bootstrap_servers(settings)}: {exc}") from None
    return partitions


def max_record_bytes(settings: Settings, topic: str, timeout_s: float = 30.0) -> int:
    """The largest record the bridge's producer can write to `topic`: the lower of the
    producer's message.max.bytes and the topic's max.message.bytes."""
    producer = int(
        producer_config(settings, transactional=False).get("message.max.bytes", PRODUCER_MAX_BYTES)
    )
    resource = ConfigResource(ResourceType.TOPIC, topic)
    client = admin(settings)  # held: a client collected before its answer cancels the request
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            entries = client.describe_configs([resource])[resource].result(timeout=timeout_s)
            break
        except KafkaException as exc:
            # A topic created a moment ago (ensure_topics) may not be in the metadata of the
            # broker asked yet: ask again until the deadline, then say which topic.
            unknown = exc.args and exc.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART
            if not unknown or time.monotonic() >= deadline:
                raise FinriskError(
                    f"cannot read the configuration of Kafka topic {topic}: {exc}"
                ) from None
            time.sleep(0.1)
    entry = entries.get("max.message.bytes")
    return min(producer, int(entry.value) if entry is not None else TOPIC_MAX_BYTES)


def ensure_merchant_frauds_topic(settings: Settings) -> None:
    """Create the merchant-frauds topic (compacted, one record per fraud) when missing; only a
    bridge whose detector reads merchant risk asks for it."""
    topic = settings.bridge.merchant_frauds_topic
    client = admin(settings)
    try:
        if partition_count(client, topic) is None:
            config = {"cleanup.policy": "compact", "min.compaction.lag.ms": "0"}
            _create(client, [NewTopic(topic, DEFAULT_PARTITIONS, config=config)])
    except KafkaException as exc:
        raise FinriskError(f"Kafka at {bootstrap_servers(settings)}: {exc}") from None


def _create(client: AdminClient, topics: list[NewTopic], timeout_s: float = 60.0) -> None:
    """Create `topics` and return once the broker's metadata lists them: the controller has
    created a topic when its future resolves, and a broker under load lists it a moment later
    (a caller listing or describing it at once found nothing)."""
    if not topics:
        return
    for topic, future in client.create_topics(topics, operation_timeout=30).items():
        try:
            future.result(timeout=timeout_s)
        except KafkaException as exc:
            error = exc.args[0]
            if error.code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise FinriskError(f"cannot create Kafka topic {topic}: {error}") from None
    names = {topic.topic for topic in topics}
    deadline = time.monotonic() + timeout_s
    while missing := names - set(client.list_topics(timeout=timeout_s).topics):
        if time.monotonic() >= deadline:
            raise FinriskError(
                f"Kafka topics {sorted(missing)} were created but not listed after {timeout_s:g} s"
            )
        time.sleep(0.05)
