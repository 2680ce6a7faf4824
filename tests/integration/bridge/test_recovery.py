"""Recovery: SIGKILL and restart (at least once, exactly once), SIGTERM, the predictor down, a
second bridge joining, workers. Each streams the reference's transactions through fresh topics
and must score every one as the clean run did: per-user state survives restarts and rebalances.
The faults run as deployed, anomalies to BigQuery (the emulator), and check the table too.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import psutil
import pytest

from finrisk.bench.local_processes import (
    BridgeProcess,
    PredictorProcess,
    bridge_environment,
)
from finrisk.serving.bridge import kafka_config
from finrisk.serving.bridge.producer import produce
from finrisk.settings import Settings
from finrisk.stack import Service
from tests.integration.bridge import runs
from tests.support.kafka_reading import committed_offsets, end_offsets, read_topic, wait_for

pytestmark = pytest.mark.integration

THIRD, QUARTER = runs.N_TRANSACTIONS // 3, runs.N_TRANSACTIONS // 4
ALL = runs.PARTITIONS


@pytest.mark.parametrize("exactly_once", [False, True], ids=["at-least-once", "exactly-once"])
def test_sigkill_mid_stream_then_restart_loses_nothing(
    exactly_once: bool,
    stack_settings: Settings,
    served: runs.Served,
    reference: runs.Reference,
    transactions: list[tuple[bytes, bytes]],
    valid_ids: list[str],
    logs: Path,
) -> None:
    bootstrap = runs.bootstrap(stack_settings)
    topic = runs.topic(stack_settings, runs.unique("kill"))
    name = runs.unique("kill-eos" if exactly_once else "kill")
    sink, dataset = runs.deployed_sink(stack_settings)
    first = runs.bridge(
        stack_settings,
        served,
        topic,
        name,
        logs,
        exactly_once=exactly_once,
        transactional_id=f"{name}-tx",
        **sink,
    ).start()
    with runs.Feeder(stack_settings, topic, transactions, rate=1_500), first:
        wait_for(
            lambda: runs.scored_count(first) >= runs.N_TRANSACTIONS // 3, 120, "a third scored"
        )
        first.kill()
        # Exactly once, the dead bridge's open transaction keeps its offsets unstable (a fetch
        # waits for them) until the restart fences it; duplicates are checked differently.
        committed_at_kill = {} if exactly_once else committed_offsets(bootstrap, name, topic)
        assert sum(committed_at_kill.values()) < runs.N_TRANSACTIONS  # it really died mid-stream
        second = BridgeProcess(first.env, logs / f"{name}-restart.log").start()
        with second:
            scored = runs.scored_until_all(bootstrap, name, valid_ids)
            assert second.terminate() == 0
    ids = runs.ids(scored)
    assert set(ids) == set(valid_ids)  # nothing lost
    duplicates = {tx_id for tx_id, n in Counter(ids).items() if n > 1}
    if exactly_once:
        assert not duplicates  # read_committed sees each transaction once
    for record in scored:
        doc = record.json()
        if doc["transaction_id"] in duplicates:
            source = doc["source"]  # type: ignore[index]
            # Only batches that were not committed when the bridge died come twice.
            assert source["offset"] >= committed_at_kill.get(source["partition"], 0)
    runs.same_scores(scored, reference)
    assert committed_offsets(bootstrap, name, topic) == end_offsets(bootstrap, topic)
    # Rows come twice only where the scored topic did (exactly once, the sink is outside the
    # Kafka transaction: at least once there, as docs/bridge.md says).
    runs.assert_every_anomaly_stored(
        stack_settings, dataset, scored, None if exactly_once else duplicates
    )


def test_sigterm_finishes_the_batch_commits_and_a_restart_duplicates_nothing(
    stack_settings: Settings,
    served: runs.Served,
    reference: runs.Reference,
    transactions: list[tuple[bytes, bytes]],
    valid_ids: list[str],
    logs: Path,
) -> None:
    bootstrap = runs.bootstrap(stack_settings)
    topic = runs.topic(stack_settings, runs.unique("term"))
    name = runs.unique("term")
    sink, dataset = runs.deployed_sink(stack_settings)
    first = runs.bridge(stack_settings, served, topic, name, logs, **sink).start()
    with runs.Feeder(stack_settings, topic, transactions, rate=1_500), first:
        wait_for(
            lambda: runs.scored_count(first) >= runs.N_TRANSACTIONS // 3, 120, "a third scored"
        )
        assert first.terminate(timeout_s=30) == 0
        committed = committed_offsets(bootstrap, name, topic)
        scored_before = read_topic(bootstrap, f"{name}.scored", timeout_s=5)
        # Everything scored is committed, and everything committed is scored.
        positions = {
            (r.json()["source"]["partition"], r.json()["source"]["offset"]) for r in scored_before
        }  # type: ignore[index]
        assert all(offset < committed[p] for p, offset in positions)
        assert len(positions) == sum(committed.values())
        second = BridgeProcess(first.env, logs / f"{name}-restart.log").start()
        with second:
            scored = runs.scored_until_all(bootstrap, name, valid_ids)
            assert second.terminate() == 0
    assert sorted(runs.ids(scored)) == sorted(valid_ids)  # no loss, no duplicate
    runs.same_scores(scored, reference)
    runs.assert_every_anomaly_stored(stack_settings, dataset, scored)  # each row once


def test_predictor_down_pauses_without_committing_then_recovers_by_itself(
    stack_settings: Settings,
    served: runs.Served,
    reference: runs.Reference,
    transactions: list[tuple[bytes, bytes]],
    valid_ids: list[str],
    logs: Path,
) -> None:
    bootstrap = runs.bootstrap(stack_settings)
    own = PredictorProcess(served.models, served.tracking_uri, logs / "predictor-down.log").start()
    topic = runs.topic(stack_settings, runs.unique("down"))
    name = runs.unique("down")
    sink, dataset = runs.deployed_sink(stack_settings)
    env = bridge_environment(
        bootstrap,
        own.url,
        served.models,
        topic,
        name,
        **runs.FAST,
        **sink,
        request_timeout_s=2,
        max_attempts=2,
        breaker_failure_threshold=2,
        breaker_reset_s=0.5,
        backoff_max_s=0.5,
    )
    bridge = BridgeProcess(env, logs / f"{name}.log").start()
    with own, runs.Feeder(stack_settings, topic, transactions, rate=600), bridge:
        wait_for(lambda: runs.scored_count(bridge) >= 300, 120, "some scored before the outage")
        own.stop()
        down_since = time.monotonic()
        wait_for(lambda: bridge.metrics().get("finrisk_bridge_paused") == 1.0, 60, "a pause")
        assert bridge.get("/readyz") == 503 and bridge.get("/healthz") == 200

        def nothing_committed_early() -> None:
            committed = committed_offsets(bootstrap, name, topic)
            scored = read_topic(bootstrap, f"{name}.scored", timeout_s=5)
            have = {(r.json()["source"]["partition"], r.json()["source"]["offset"]) for r in scored}  # type: ignore[index]
            for partition, offset in committed.items():
                assert all((partition, o) in have for o in range(offset))

        nothing_committed_early()
        scored_during = runs.scored_count(bridge)
        wait_for(
            lambda: (
                time.monotonic() - down_since > 4
                and bridge.metrics().get("finrisk_bridge_errors_total{kind=endpoint}", 0) >= 3
            ),
            60,
            "several seconds of outage with retries",
        )
        nothing_committed_early()
        assert runs.scored_count(bridge) == scored_during  # nothing scored, nothing dropped
        own.start()
        scored = runs.scored_until_all(bootstrap, name, valid_ids)
        wait_for(lambda: bridge.get("/readyz") == 200, 30, "readiness after recovery")
        metrics = bridge.metrics()
        assert metrics["finrisk_bridge_paused"] == 0.0
        assert bridge.terminate() == 0
    assert set(runs.ids(scored)) == set(valid_ids)
    runs.same_scores(scored, reference)
    runs.assert_every_anomaly_stored(stack_settings, dataset, scored)  # each row once


def test_a_second_bridge_takes_partitions_with_their_state(
    stack_settings: Settings,
    served: runs.Served,
    reference: runs.Reference,
    transactions: list[tuple[bytes, bytes]],
    valid_ids: list[str],
    logs: Path,
) -> None:
    bootstrap = runs.bootstrap(stack_settings)
    config = kafka_config.client_config(stack_settings)
    topic = runs.topic(stack_settings, runs.unique("rebalance"))
    name = runs.unique("rebalance")
    half = runs.N_TRANSACTIONS // 2
    first = runs.bridge(stack_settings, served, topic, name, logs).start()
    env = {**first.env, "FINRISK_BRIDGE__HTTP_PORT": str(runs.free_port())}
    with first:
        # Phase 1: one bridge builds every user's state.
        produce(config, topic, transactions[:half])
        wait_for(lambda: runs.scored_count(first) >= half, 120, "the first half scored")
        # A second bridge joins; cooperative rebalancing hands it some partitions.
        second = BridgeProcess(env, logs / f"{name}-second.log").start()
        with second:
            wait_for(
                lambda: (
                    second.metrics().get("finrisk_bridge_assigned_partitions", 0) > 0
                    and first.metrics().get("finrisk_bridge_assigned_partitions", 0)
                    < runs.PARTITIONS
                ),
                60,
                "partitions moving to the second bridge",
            )
            # Phase 2: the moved users' transactions are scored by the second bridge, from
            # the state it restored.
            produce(config, topic, transactions[half:])
            scored = runs.scored_until_all(bootstrap, name, valid_ids)
            second_metrics = second.metrics()
            assert second.terminate() == 0
        assert first.terminate() == 0
    assert second_metrics["finrisk_bridge_state_restored_records_total"] > 0
    assert second_metrics["finrisk_bridge_messages_total{outcome=scored}"] > 0
    assert set(runs.ids(scored)) == set(valid_ids)
    runs.same_scores(scored, reference)


def _workers(bridge: BridgeProcess) -> list[psutil.Process]:
    """The supervisor's worker processes (not multiprocessing's resource tracker)."""
    assert bridge.child is not None
    children = psutil.Process(bridge.child.pid).children()
    return [child for child in children if "spawn_main" in " ".join(child.cmdline())]


def test_workers_share_the_stream_and_score_it_as_one_bridge(
    stack_settings: Settings,
    served: runs.Served,
    reference: runs.Reference,
    transactions: list[tuple[bytes, bytes]],
    valid_ids: list[str],
    logs: Path,
) -> None:
    bootstrap = runs.bootstrap(stack_settings)
    topic = runs.topic(stack_settings, runs.unique("workers"))
    name = runs.unique("workers")
    bridge = runs.bridge(stack_settings, served, topic, name, logs, workers=2).start()
    with runs.Feeder(stack_settings, topic, transactions, rate=1_500), bridge:
        assert len(_workers(bridge)) == 2
        scored = runs.scored_until_all(bootstrap, name, valid_ids)
        end = end_offsets(bootstrap, topic)
        wait_for(lambda: committed_offsets(bootstrap, name, topic) == end, 30, "the commits")
        counts = bridge.partitions_per_worker()
        assert bridge.terminate() == 0
    assert sorted(counts) == [
        runs.PARTITIONS // 2,
        runs.PARTITIONS // 2,
    ]  # each worker read its share
    assert set(runs.ids(scored)) == set(valid_ids)
    runs.same_scores(scored, reference)


def test_a_failed_worker_stops_the_others_and_a_restart_loses_nothing(
    stack_settings: Settings,
    served: runs.Served,
    reference: runs.Reference,
    transactions: list[tuple[bytes, bytes]],
    valid_ids: list[str],
    logs: Path,
) -> None:
    bootstrap = runs.bootstrap(stack_settings)
    topic = runs.topic(stack_settings, runs.unique("worker-kill"))
    name = runs.unique("worker-kill")
    first = runs.bridge(stack_settings, served, topic, name, logs, workers=2).start()
    with runs.Feeder(stack_settings, topic, transactions, rate=1_500), first:
        wait_for(
            lambda: runs.scored_count(first) >= runs.N_TRANSACTIONS // 4, 120, "a quarter scored"
        )
        killed, other = _workers(first)
        killed.kill()
        assert first.child is not None
        assert first.child.wait(60) != 0
        assert not other.is_running()
        log = first.log.read_text()
        assert "exited with -9" in log
        assert "SIGTERM: finishing the batch, committing, closing" in log
        second = BridgeProcess(first.env, logs / f"{name}-restart.log").start()
        with second:
            scored = runs.scored_until_all(bootstrap, name, valid_ids)
            assert second.terminate() == 0
    assert set(runs.ids(scored)) == set(valid_ids)
    runs.same_scores(scored, reference)


def test_workers_stop_by_themselves_when_their_supervisor_is_killed(
    kafka: Service, stack_settings: Settings, served: runs.Served, logs: Path
) -> None:
    topic = runs.topic(stack_settings, runs.unique("orphans"))
    name = runs.unique("orphans")
    bridge = runs.bridge(stack_settings, served, topic, name, logs, workers=2).start()
    with bridge:
        workers = _workers(bridge)
        bridge.kill()
        _, alive = psutil.wait_procs(workers, timeout=60)
        assert not alive
    log = bridge.log.read_text()
    for i in range(2):  # the graceful stop, not a kill
        assert f"[worker {i}]: SIGTERM: finishing the batch, committing, closing" in log
