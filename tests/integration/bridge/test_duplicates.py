"""One transaction, one score: a transaction sent again (an upstream producer's retry) is
dead-lettered as `duplicate`, neither scored nor counted in its user's features again, whether
it repeats at once, after a restart or after its partition moved to another bridge."""

from __future__ import annotations

from pathlib import Path

import pytest
from confluent_kafka import KafkaError, Message

from finrisk.bench.local_processes import BridgeProcess
from finrisk.serving.bridge import kafka_config
from finrisk.serving.bridge.producer import stream_producer
from finrisk.settings import Settings
from tests.integration.bridge import runs
from tests.support.kafka_reading import committed_offsets, end_offsets, read_topic, wait_for

pytestmark = pytest.mark.integration

Position = tuple[int, int]


def _send(settings: Settings, topic: str, records: list[tuple[bytes, bytes]]) -> list[Position]:
    """Produce keyed by user as `finrisk produce` does; where each record landed."""
    producer = stream_producer(kafka_config.client_config(settings))
    landed: dict[int, Position] = {}
    failures: list[KafkaError] = []

    def delivered(i: int) -> object:
        def report(error: KafkaError | None, msg: Message) -> None:
            if error is not None:
                failures.append(error)
            else:
                landed[i] = (msg.partition() or 0, msg.offset() or 0)

        return report

    for i, (key, value) in enumerate(records):
        producer.produce(topic, value, key, on_delivery=delivered(i))
    assert producer.flush(60) == 0 and not failures, failures
    return [landed[i] for i in range(len(records))]


def test_a_repeated_transaction_is_scored_once_across_restart_and_rebalance(
    stack_settings: Settings,
    served: runs.Served,
    reference: runs.Reference,
    transactions: list[tuple[bytes, bytes]],
    valid_ids: list[str],
    logs: Path,
) -> None:
    bootstrap = runs.bootstrap(stack_settings)
    topic = runs.topic(stack_settings, runs.unique("dup"))
    name = runs.unique("dup")
    repeats: list[Position] = []

    def phase(
        records: list[tuple[bytes, bytes]],
        *,
        before: list[tuple[bytes, bytes]] = [],  # noqa: B006 (never changed)
        after: list[tuple[bytes, bytes]] = [],  # noqa: B006
    ) -> None:
        # Transactions sent before (each recent for its user), the new ones, repeats of those;
        # then wait until all of it is committed.
        landed = _send(stack_settings, topic, before + records + after)
        repeats.extend(landed[: len(before)] + landed[len(before) + len(records) :])
        end = end_offsets(bootstrap, topic)
        wait_for(lambda: committed_offsets(bootstrap, name, topic) == end, 120, "the commits")

    first = runs.bridge(stack_settings, served, topic, name, logs).start()
    with first:
        # At once: the last 10 repeated right after them.
        phase(transactions[:1_000], after=transactions[990:1_000])
        assert first.terminate() == 0
    again = BridgeProcess(first.env, logs / f"{name}-restart.log").start()
    second = BridgeProcess(
        {**first.env, "FINRISK_BRIDGE__HTTP_PORT": str(runs.free_port())},
        logs / f"{name}-second.log",
    )
    with again, second:
        # After a restart: caught through the state restored from the changelog.
        phase(transactions[1_000:2_000], before=transactions[995:1_000])
        second.start()
        wait_for(
            lambda: (
                second.metrics().get("finrisk_bridge_assigned_partitions", 0) > 0
                and again.metrics().get("finrisk_bridge_assigned_partitions", 0) < runs.PARTITIONS
            ),
            60,
            "partitions moving to a second bridge",
        )
        # After a rebalance: the new owner restored the moved users' recent ids.
        phase(transactions[2_000:], before=transactions[1_985:2_000])
        assert second.terminate() == 0 and again.terminate() == 0
    scored = runs.scored_until_all(bootstrap, name, valid_ids)
    assert sorted(runs.ids(scored)) == sorted(valid_ids)  # each once
    assert not {
        (r.json()["source"]["partition"], r.json()["source"]["offset"]) for r in scored
    } & set(repeats)  # type: ignore[index]
    dead = read_topic(bootstrap, f"{name}.dlq")
    assert {r.headers["finrisk.error.kind"] for r in dead} == {b"duplicate"}
    positions = [
        (int(r.headers["finrisk.source.partition"]), int(r.headers["finrisk.source.offset"]))
        for r in dead
    ]
    assert sorted(positions) == sorted(repeats) and len(repeats) == 30
    # Nothing was counted twice: the scores and the final state are the clean run's.
    runs.same_scores(scored, reference)
    clean = runs.final_state(bootstrap, f"{reference.name}.state")
    assert runs.final_state(bootstrap, f"{name}.state") == clean
