"""Broker faults: a broker stopped (SIGSTOP) or killed (SIGKILL, then started again on its data)
while the bridge is mid-stream (exactly once: mid-transaction). Exactly once, the bridge retries
the same transactional call, or aborts and replays from its commits: under read_committed every
transaction is scored exactly once. At least once, nothing is lost and a transaction comes
twice only as a replay. Either way every anomaly is in the table and the final state is the
clean run's."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from pathlib import Path

import pytest

from finrisk.settings import Settings
from finrisk.stack import Service
from tests.integration.bridge import runs
from tests.support.kafka_reading import committed_offsets, end_offsets, wait_for

pytestmark = pytest.mark.integration

# The outage itself, longer than the bridge's session timeout (6 s) and its batches' waits.
OUTAGE_S = 8.0


@pytest.mark.parametrize(
    ("exactly_once", "fault"),
    [(True, "sigstop"), (True, "sigkill"), (False, "sigkill")],
    ids=["exactly-once-sigstop", "exactly-once-sigkill", "at-least-once-sigkill"],
)
def test_a_broker_stopped_or_killed_mid_stream_loses_nothing(
    exactly_once: bool,
    fault: str,
    own_kafka: Service,
    stack_settings: Settings,
    served: runs.Served,
    reference: runs.Reference,
    transactions: list[tuple[bytes, bytes]],
    valid_ids: list[str],
    logs: Path,
) -> None:
    broker = own_kafka.settings  # the bridge's Kafka is the test's own broker
    bootstrap = broker.kafka.bootstrap_servers
    topic = runs.topic(broker, runs.unique(f"broker-{fault}"))
    name = runs.unique(f"broker-{fault}")
    sink, dataset = runs.deployed_sink(stack_settings)
    bridge = runs.bridge(
        broker,
        served,
        topic,
        name,
        logs,
        exactly_once=exactly_once,
        transactional_id=f"{name}-0",
        **sink,
    ).start()
    with runs.Feeder(broker, topic, transactions, rate=300), bridge:
        wait_for(lambda: runs.scored_count(bridge) >= runs.N_TRANSACTIONS // 3, 120, "a third")
        record = own_kafka.pidfile.running()
        assert record is not None
        if fault == "sigstop":
            os.kill(record.pid, signal.SIGSTOP)
            try:
                time.sleep(OUTAGE_S)  # the outage, not a wait for something to happen
            finally:
                os.kill(record.pid, signal.SIGCONT)
        else:
            os.kill(record.pid, signal.SIGKILL)
            wait_for(lambda: own_kafka.pidfile.running() is None, 30, "the broker to be gone")
            time.sleep(OUTAGE_S)  # the outage
            own_kafka.up()  # same data, same ports
        scored = runs.scored_until_all(bootstrap, name, valid_ids)
        end = end_offsets(bootstrap, topic)
        wait_for(lambda: committed_offsets(bootstrap, name, topic) == end, 120, "the commits")
        assert bridge.alive()
        assert bridge.terminate() == 0
    ids = runs.ids(scored)
    assert set(ids) == set(valid_ids)  # none lost
    again = {tx_id for tx_id, n in Counter(ids).items() if n > 1}
    if exactly_once:
        assert not again  # read_committed: each once
    runs.same_scores(scored, reference)
    runs.assert_every_anomaly_stored(
        stack_settings, dataset, scored, may_repeat=None if exactly_once else again
    )
    clean = runs.final_state(runs.bootstrap(stack_settings), f"{reference.name}.state")
    assert runs.final_state(bootstrap, f"{name}.state") == clean
