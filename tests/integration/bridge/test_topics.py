"""The topics the bridge makes at start take the input partition count from its settings
(`input_partitions`): the count the autoscaling overlay's maximum replicas is copied from."""

from __future__ import annotations

import pytest

from finrisk.serving.bridge import kafka_config
from finrisk.settings import Settings
from finrisk.stack import Service
from tests.integration.bridge import runs
from tests.support.kafka_reading import wait_for

pytestmark = pytest.mark.integration


def test_a_missing_input_topic_is_made_with_the_configured_partitions(
    kafka: Service, stack_settings: Settings
) -> None:
    name = runs.unique("topics")
    settings = runs.named(stack_settings, name, input_partitions=4)
    assert kafka_config.ensure_topics(settings) == 4
    admin = kafka_config.admin(settings)
    made = (f"{name}.input", f"{name}.scored", f"{name}.dlq", f"{name}.state")
    # A broker started a moment ago may list a topic it has just created a little later.
    wait_for(
        lambda: None not in [kafka_config.partition_count(admin, t) for t in made], 30, "topics"
    )
    for topic in made:
        assert kafka_config.partition_count(admin, topic) == 4, topic
    # An existing topic keeps its count: the setting only sizes what the bridge creates.
    again = runs.named(stack_settings, name, input_partitions=2)
    assert kafka_config.ensure_topics(again) == 4
