"""A group join the broker refuses stops the bridge with an error naming the setting. Before,
librdkafka's error events were dropped as if they were messages: the bridge reported healthy,
never got a partition, and (each event counting as traffic) never reached `--idle-exit`."""

from __future__ import annotations

from typing import Any

import pytest

from finrisk.errors import FinriskError
from finrisk.serving.bridge.loop import Bridge
from finrisk.settings import Settings
from finrisk.stack import Service
from tests.integration.bridge import runs

pytestmark = pytest.mark.integration


class NeverCalled:
    """A scorer for a bridge that must never get a message to score."""

    def score(self, *_: Any, **__: Any) -> Any:
        raise AssertionError("a bridge outside its group scored a batch")

    def close(self) -> None:
        pass

    def profile(self, *_: Any) -> None:
        return None


def test_a_session_timeout_the_broker_refuses_is_named(
    kafka: Service, stack_settings: Settings
) -> None:
    name = runs.unique("refused-join")
    # Below the broker's group.min.session.timeout.ms (6000 by default).
    settings = runs.named(stack_settings, name, session_timeout_ms=3_000)
    bridge = Bridge(settings, NeverCalled(), None, serve_http=False)
    bridge.start()
    with pytest.raises(FinriskError, match="FINRISK_BRIDGE__SESSION_TIMEOUT_MS"):
        bridge.run(idle_exit_s=120)
    assert bridge.consumer_errors.seen >= 1
