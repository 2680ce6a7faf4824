"""The bridge's Kafka topic settings: the largest record a topic takes, asked of the broker
again while a topic created a moment ago is not in its metadata yet."""

from __future__ import annotations

import pytest

from finrisk.errors import FinriskError
from finrisk.serving.bridge import kafka_config
from finrisk.settings import Settings


class _Answer:
    def __init__(self, outcome: object) -> None:
        self.outcome = outcome

    def result(self, timeout: float) -> object:
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return self.outcome


class _Admin:
    """describe_configs answering with each outcome in turn (an exception or the entries)."""

    def __init__(self, *outcomes: object) -> None:
        self.outcomes = list(outcomes)
        self.asked = 0

    def describe_configs(self, resources: list[object]) -> dict[object, _Answer]:
        self.asked += 1
        return {resources[0]: _Answer(self.outcomes.pop(0))}


def test_a_topic_just_created_is_asked_again_until_the_broker_knows_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from confluent_kafka import KafkaError, KafkaException

    from finrisk.serving.bridge.kafka_config import max_record_bytes

    class Entry:
        value = "1000"

    unknown = KafkaException(KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART))
    fake = _Admin(unknown, unknown, {"max.message.bytes": Entry()})
    monkeypatch.setattr(kafka_config, "admin", lambda settings: fake)
    assert max_record_bytes(Settings(), "fresh-topic") == 1000
    assert fake.asked == 3

    denied = KafkaException(KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED))
    monkeypatch.setattr(kafka_config, "admin", lambda settings: _Admin(denied))
    with pytest.raises(FinriskError, match="cannot read the configuration of Kafka topic t:"):
        max_record_bytes(Settings(), "t")
    forever = _Admin(*[unknown] * 1000)
    monkeypatch.setattr(kafka_config, "admin", lambda settings: forever)
    with pytest.raises(FinriskError, match="Unknown topic"):
        max_record_bytes(Settings(), "t", timeout_s=0.3)


class _Metadata:
    def __init__(self, topics: set[str]) -> None:
        self.topics = {name: object() for name in topics}


class _Creating:
    """create_topics that succeeds, and metadata that lists the topics from the `listed_from`-th
    list_topics call on (a broker's metadata trailing its controller)."""

    def __init__(self, listed_from: int) -> None:
        self.listed_from = listed_from
        self.lists = 0
        self.created: set[str] = set()

    def create_topics(self, topics: list[object], operation_timeout: float) -> dict[str, _Answer]:
        names = [topic.topic for topic in topics]  # type: ignore[attr-defined]
        self.created.update(names)
        return {name: _Answer(None) for name in names}

    def list_topics(self, timeout: float) -> _Metadata:
        self.lists += 1
        return _Metadata(self.created if self.lists >= self.listed_from else set())


def test_created_topics_are_listed_before_creation_returns() -> None:
    from confluent_kafka.admin import NewTopic

    admin = _Creating(listed_from=3)
    kafka_config._create(admin, [NewTopic("t.a", 1), NewTopic("t.b", 1)])  # type: ignore[arg-type]
    assert admin.lists == 3  # asked until the metadata had both


def test_created_topics_never_listed_are_named() -> None:
    from confluent_kafka.admin import NewTopic

    admin = _Creating(listed_from=10**9)
    with pytest.raises(FinriskError, match=r"\['t\.a'\] were created but not listed after 0\.2 s"):
        kafka_config._create(admin, [NewTopic("t.a", 1)], timeout_s=0.2)  # type: ignore[arg-type]
