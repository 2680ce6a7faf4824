"""`finrisk stack` on a private home and free ports: idempotent up, exact down, durable Kafka."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from finrisk.settings import BigQuerySettings, KafkaSettings, MLflowSettings, Settings
from finrisk.stack import Stack
from finrisk.stack.process import free_port, port_in_use

pytestmark = pytest.mark.integration

FINRISK = str(Path(sys.executable).with_name("finrisk"))


@pytest.fixture
def private_stack(tmp_path: Path) -> Iterator[tuple[Settings, dict[str, str]]]:
    """Settings and the matching environment for a stack nobody else uses."""
    settings = Settings(
        home=tmp_path / "home",
        kafka=KafkaSettings(port=free_port(), controller_port=free_port()),
        mlflow=MLflowSettings(port=free_port()),
        bigquery=BigQuerySettings(port=free_port(), grpc_port=free_port()),
    )
    env = {
        **os.environ,
        "FINRISK_HOME": str(settings.home),
        "FINRISK_KAFKA__PORT": str(settings.kafka.port),
        "FINRISK_KAFKA__CONTROLLER_PORT": str(settings.kafka.controller_port),
        "FINRISK_MLFLOW__PORT": str(settings.mlflow.port),
        "FINRISK_BIGQUERY__PORT": str(settings.bigquery.port),
        "FINRISK_BIGQUERY__GRPC_PORT": str(settings.bigquery.grpc_port),
    }
    yield settings, env
    Stack(settings).down()  # whatever a failed assertion left running


def _stack(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [FINRISK, "stack", *args], env=env, capture_output=True, text=True, timeout=300
    )


def _all_ports(settings: Settings) -> list[int]:
    return [
        settings.kafka.port,
        settings.kafka.controller_port,
        settings.mlflow.port,
        settings.bigquery.port,
        settings.bigquery.grpc_port,
    ]


def test_up_twice_status_down_leaves_nothing(
    private_stack: tuple[Settings, dict[str, str]],
) -> None:
    settings, env = private_stack
    first = _stack(env, "up")
    assert first.returncode == 0, first.stderr
    second = _stack(env, "up", "--json")
    assert second.returncode == 0, second.stderr
    states = {s["name"]: s for s in json.loads(second.stdout)}
    assert {name: s["state"] for name, s in states.items()} == {
        "kafka": "running",
        "mlflow": "running",
        "bigquery": "running",
    }
    pids = {name: s["pid"] for name, s in states.items()}
    assert "started" not in second.stdout  # the second `up` started no second copy

    status = _stack(env, "status", "--json")
    assert status.returncode == 0
    # status lists every service; the predictor, the API server and the dashboard start only
    # when named
    expected = {**pids, "predictor": None, "kube": None, "dashboard": None}
    assert {s["name"]: s["pid"] for s in json.loads(status.stdout)} == expected

    down = _stack(env, "down")
    assert down.returncode == 0, down.stderr
    for pid in pids.values():
        assert not Path(f"/proc/{pid}").exists(), f"process {pid} outlived `stack down`"
    assert [p for p in _all_ports(settings) if port_in_use(p)] == []
    after = _stack(env, "status")
    assert after.returncode == 1
    assert "running" not in after.stdout


def test_a_cluster_id_starting_with_a_dash_formats(
    private_stack: tuple[Settings, dict[str, str]],
) -> None:
    """One random cluster id in 64 starts with "-"; the storage tool must not take it for an
    option (a fresh home once failed `stack up` that way)."""
    settings, _ = private_stack
    kafka = Stack(settings).services["kafka"]
    kafka.dir.mkdir(parents=True, exist_ok=True)
    (kafka.dir / "cluster.id").write_text("-" + "A" * 21)
    assert kafka.up()
    assert kafka.down()


def test_busy_port_is_named(private_stack: tuple[Settings, dict[str, str]]) -> None:
    settings, env = private_stack
    import socket

    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", settings.mlflow.port))
        blocker.listen()
        result = _stack(env, "up", "mlflow")
    assert result.returncode == 2
    assert f"port {settings.mlflow.port}" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_java_is_named(private_stack: tuple[Settings, dict[str, str]]) -> None:
    _, env = private_stack
    result = _stack({**env, "PATH": str(Path(sys.executable).parent)}, "up", "kafka")
    assert result.returncode == 2
    assert "needs `java`" in result.stderr


def test_sigkilled_broker_keeps_acknowledged_messages(
    private_stack: tuple[Settings, dict[str, str]],
) -> None:
    from confluent_kafka import Consumer, Producer, TopicPartition

    settings, _ = private_stack
    stack = Stack(settings)
    kafka = stack.services["kafka"]
    assert kafka.up()
    bootstrap = settings.kafka.bootstrap_servers
    topic = "durability"
    group = "durability-group"

    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True})
    acked: list[bytes | None] = []
    for i in range(500):
        producer.produce(
            topic,
            key=str(i % 7).encode(),
            value=f"m{i}".encode(),
            on_delivery=lambda err, msg: acked.append(msg.value()) if err is None else None,
        )
    assert producer.flush(60) == 0
    assert len(acked) == 500

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    first_batch: list[object] = []
    while len(first_batch) < 100:
        message = consumer.poll(5)
        if message is not None and message.error() is None:
            first_batch.append(message)
    consumer.commit(asynchronous=False)
    committed = {tp.partition: tp.offset for tp in consumer.committed(consumer.assignment())}
    consumer.close()

    record = kafka.pidfile.running()
    assert record is not None
    os.kill(record.pid, signal.SIGKILL)
    os.waitpid(record.pid, 0)  # the broker is this process's child: wait for its death
    assert kafka.status().state == "stopped"

    assert kafka.up()  # a new process on the same data
    reader = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reader-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    reader.subscribe([topic])
    seen: set[bytes | None] = set()
    while len(seen) < len(acked):
        message = reader.poll(10)
        assert message is not None, f"only {len(seen)} of {len(acked)} messages after restart"
        if message.error() is None:
            seen.add(message.value())
    reader.close()
    assert seen == set(acked)

    group_consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    partitions = [TopicPartition(topic, p) for p in committed]
    after = {tp.partition: tp.offset for tp in group_consumer.committed(partitions, timeout=30)}
    group_consumer.close()
    assert after == committed
