"""The topics the bridge makes at start take the input partition count from its settings
(`input_partitions`): the count the autoscaling overlay's maximum replicas is copied from."""

from __future__ import annotations

import pytest

from finrisk.serving.bridge import kafka_config
from finrisk.settings import Settings
from finrisk.stack import Service
from tests.integration.bridge import runs

pytestmark = pytest.mark.integration


def test_a_missing_input_topic_is_made_with_the_configured_partitions(
    kafka: Service, stack_settings: Settings
) -> None:
    name = runs.unique("topics")
    bridge = stack_settings.bridge.model_copy(
        update={
            "input_topic": f"{name}.input",
            "scored_topic": f"{name}.scored",
            "dlq_topic": f"{name}.dlq",
            "monitoring_topic": f"{name}.monitoring",
            "group_id": name,
            "input_partitions": 4,
        }
    )
    settings = stack_settings.model_copy(update={"bridge": bridge})
    assert kafka_config.ensure_topics(settings) == 4
    admin = kafka_config.admin(settings)
    for topic in (f"{name}.input", f"{name}.scored", f"{name}.dlq", f"{name}.state"):
        assert kafka_config.partition_count(admin, topic) == 4, topic
    # An existing topic keeps its count: the setting only sizes what the bridge creates.
    again = settings.model_copy(
        update={"bridge": bridge.model_copy(update={"input_partitions": 2})}
    )
    assert kafka_config.ensure_topics(again) == 4
