"""Error events that Kafka's consumer returns among the messages of a consume call.

librdkafka reports group and broker trouble (a refused group join, a topic it cannot see) as
messages whose `error()` is set. Treated as input they would be worse than noise: dropped
without a word, they hid a bridge that could never join its group, and counted as traffic
they kept `--idle-exit` from ever firing. So they are taken out of each consume result here,
logged (each kind at most once per `every_s`), and the few that no retry can cure stop the
bridge with an error naming the setting to change.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from confluent_kafka import KafkaError, Message

from finrisk.errors import FinriskError

log = logging.getLogger("finrisk.bridge")

# Refusals of the bridge's own configuration: every retry gets the same answer from the broker.
_CONFIGURATION: dict[int, str] = {
    KafkaError.INVALID_SESSION_TIMEOUT: (
        "the broker refuses the bridge's session timeout (its group.min.session.timeout.ms "
        "and group.max.session.timeout.ms bound it; 6000 to 1800000 ms by default): set "
        "FINRISK_BRIDGE__SESSION_TIMEOUT_MS within them"
    ),
}


class ConsumerErrors:
    def __init__(self, every_s: float = 30.0, clock: Callable[[], float] = time.monotonic):
        self.every_s = every_s
        self.clock = clock
        self.last_logged: dict[int, float] = {}
        self.seen = 0

    def messages(self, consumed: list[Message]) -> list[Message]:
        """`consumed` without its error events, which are reported."""
        if all(msg.error() is None for msg in consumed):
            return consumed
        kept = []
        for msg in consumed:
            error = msg.error()
            if error is None:
                kept.append(msg)
            else:
                self.report(error)
        return kept

    def report(self, error: KafkaError) -> None:
        self.seen += 1
        code = error.code()
        if error.fatal() or code in _CONFIGURATION:
            why = _CONFIGURATION.get(code, "librdkafka cannot go on with this consumer")
            raise FinriskError(f"Kafka consumer: {error.str()}: {why}")
        now = self.clock()
        last = self.last_logged.get(code)
        if last is None or now - last >= self.every_s:
            self.last_logged[code] = now
            log.warning("Kafka consumer: %s (%s)", error.str(), error.name())
