"""Partition loss is not a revocation: a bridge the group expired while it stalled (SIGSTOP past
its session timeout) writes no state and commits nothing for the partitions it lost, so the
final per-user state and every score equal a clean run's."""

from __future__ import annotations

import os
import signal
import uuid
from pathlib import Path

import pytest

from finrisk.bench.local_processes import BridgeProcess
from finrisk.serving.bridge import kafka_config
from finrisk.serving.bridge.producer import produce
from finrisk.settings import Settings
from finrisk.stack import Service
from tests.integration.bridge import runs
from tests.support.kafka_reading import committed_offsets, end_offsets, read_topic, wait_for

pytestmark = pytest.mark.integration

ALL = runs.PARTITIONS


def test_a_member_expired_in_a_stall_writes_no_state_and_the_final_state_is_a_clean_runs(
    stack_settings: Settings,
    own_bigquery: Service,
    served: runs.Served,
    reference: runs.Reference,
    transactions: list[tuple[bytes, bytes]],
    valid_ids: list[str],
    logs: Path,
) -> None:
    bootstrap = runs.bootstrap(stack_settings)
    config = kafka_config.client_config(stack_settings)
    topic = runs.topic(stack_settings, runs.unique("lost"))
    name = runs.unique("lost")
    project = stack_settings.bigquery.project
    dataset = f"test_lost_{uuid.uuid4().hex[:10]}"
    sink = runs.bigquery_sink(own_bigquery.address, project, dataset)
    # Every batch a checkpoint, and a sink that gives up at once: while the sink is down the
    # first bridge holds sent batches whose changelog waits for the sink.
    settings = {**sink, "checkpoint_interval_ms": 0, "sink_timeout_s": 1}
    first = runs.bridge(stack_settings, served, topic, name, logs, **settings).start()
    second = BridgeProcess(
        {**first.env, "FINRISK_BRIDGE__HTTP_PORT": str(runs.free_port())},
        logs / f"{name}-second.log",
    )
    assert first.child is not None
    with first, second:
        produce(config, topic, transactions[:1_200])
        end = end_offsets(bootstrap, topic)
        wait_for(lambda: committed_offsets(bootstrap, name, topic) == end, 120, "phase 1")
        own_bigquery.down()
        produce(config, topic, transactions[1_200:1_800])
        wait_for(
            lambda: (
                runs.scored_count(first) >= 1_800
                and first.metrics().get("finrisk_bridge_errors_total{kind=sink}", 0) >= 1
            ),
            120,
            "phase 2 scored and held for the sink",
        )
        os.kill(first.child.pid, signal.SIGSTOP)
        try:
            own_bigquery.up()
            second.start()
            wait_for(
                lambda: (
                    second.metrics().get("finrisk_bridge_assigned_partitions") == runs.PARTITIONS
                ),
                60,
                "the group expiring the stopped bridge and the second taking every partition",
            )
            # The second scores phase 2 again from the last commit, then phase 3: the state
            # it checkpoints is newer than anything the stopped bridge holds.
            produce(config, topic, transactions[1_800:])
            end = end_offsets(bootstrap, topic)
            wait_for(lambda: committed_offsets(bootstrap, name, topic) == end, 120, "phase 3")
        finally:
            os.kill(first.child.pid, signal.SIGCONT)
        # The resumed bridge learns it was expired, rejoins and gets partitions again.
        wait_for(
            lambda: (
                first.metrics().get("finrisk_bridge_assigned_partitions", 0) > 0
                and second.metrics().get("finrisk_bridge_assigned_partitions", 0) < ALL
            ),
            90,
            "the resumed bridge rejoining",
        )
        wait_for(lambda: committed_offsets(bootstrap, name, topic) == end, 60, "the commits")
        assert first.terminate() == 0 and second.terminate() == 0
    scored = runs.scored_until_all(bootstrap, name, valid_ids)
    assert set(runs.ids(scored)) == set(valid_ids)
    runs.same_scores(scored, reference)
    clean = runs.final_state(bootstrap, f"{reference.name}.state")
    assert runs.final_state(bootstrap, f"{name}.state") == clean
    stored = runs.anomalies_in(own_bigquery.address, project, dataset)
    assert {row.transaction_id for row in stored} == runs.flagged(scored)
    assert read_topic(bootstrap, f"{name}.dlq") == []
