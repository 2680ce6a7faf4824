"""Apache Kafka 4.x, one KRaft node (broker and controller), from Maven Central jars.

The jars are gathered once into the cache by Maven (kafka-pom.xml); the log directory lives
under the stack's home, so a restarted broker keeps its topics, messages and offsets.
"""

from __future__ import annotations

import base64
import socket
import subprocess
import uuid
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from finrisk.errors import FinriskError
from finrisk.settings import LOOPBACK
from finrisk.stack.service import Service

_LOG4J2 = """\
rootLogger.level=INFO
rootLogger.appenderRef.stdout.ref=STDOUT
appender.stdout.type=Console
appender.stdout.name=STDOUT
appender.stdout.layout.type=PatternLayout
appender.stdout.layout.pattern=[%d] %p %m (%c)%n
logger.kafka.name=kafka
logger.kafka.level=WARN
logger.apache.name=org.apache.kafka
logger.apache.level=WARN
logger.started.name=kafka.server.KafkaRaftServer
logger.started.level=INFO
"""


class Kafka(Service):
    name = "kafka"

    @property
    def ports(self) -> Sequence[int]:
        return (self.settings.kafka.port, self.settings.kafka.controller_port)

    @property
    def address(self) -> str:
        return self.settings.kafka.bootstrap_servers

    @property
    def libs(self) -> Path:
        return self.settings.cache_dir / "kafka" / self.settings.kafka.version / "libs"

    @property
    def data_dir(self) -> Path:
        return self.dir / "data"

    def server_properties(self) -> str:
        kafka = self.settings.kafka
        lines = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{LOOPBACK}:{kafka.controller_port}",
            "listeners": f"PLAINTEXT://{LOOPBACK}:{kafka.port},CONTROLLER://{LOOPBACK}:{kafka.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{LOOPBACK}:{kafka.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.data_dir),
            "num.partitions": "3",
            # One node: every internal topic can have only one replica.
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            # Tests and the demo join groups often; waiting for more members only slows them.
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "true",
        }
        return "".join(f"{key}={value}\n" for key, value in lines.items())

    def prepare(self) -> None:
        self.require_tools("java")
        self.fetch_jars()
        (self.dir / "server.properties").write_text(self.server_properties())
        (self.dir / "log4j2.properties").write_text(_LOG4J2)
        cluster_id_file = self.dir / "cluster.id"
        if not cluster_id_file.exists():
            # Kafka wants a base64 UUID of 22 characters; a fixed id per home keeps restarts valid.
            raw = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
            cluster_id_file.write_text(raw)
        cluster_id = cluster_id_file.read_text().strip()
        self._java(
            "kafka.tools.StorageTool",
            "format",
            "--ignore-formatted",
            # "=": one id in 64 starts with "-", which a separate argument would make an option.
            f"--cluster-id={cluster_id}",
            f"--config={self.dir / 'server.properties'}",
        )

    def fetch_jars(self) -> None:
        marker = self.libs / ".complete"
        if marker.exists():
            return
        self.require_tools("mvn")
        self.libs.mkdir(parents=True, exist_ok=True)
        pom = resources.files("finrisk.stack") / "kafka-pom.xml"
        with resources.as_file(pom) as pom_path:
            result = subprocess.run(
                [
                    "mvn",
                    "-q",
                    "-B",
                    "-f",
                    str(pom_path),
                    f"-Dkafka.version={self.settings.kafka.version}",
                    "dependency:copy-dependencies",
                    f"-DoutputDirectory={self.libs}",
                ],
                capture_output=True,
                text=True,
            )
        if result.returncode != 0:
            raise FinriskError(
                f"Maven could not fetch Kafka {self.settings.kafka.version} jars:\n"
                + (result.stdout + result.stderr)[-2000:]
            )
        marker.touch()

    def _java(self, *args: str) -> None:
        result = subprocess.run(
            ["java", "-cp", f"{self.libs}/*", *args], capture_output=True, text=True
        )
        if result.returncode != 0:
            raise FinriskError(
                f"kafka {args[0]} failed:\n{(result.stdout + result.stderr)[-2000:]}"
            )

    def command(self) -> Sequence[str]:
        heap = self.settings.kafka.heap
        return [
            "java",
            f"-Xmx{heap}",
            f"-Xms{heap}",
            "-XX:+UseG1GC",
            f"-Dlog4j2.configurationFile={self.dir / 'log4j2.properties'}",
            "-cp",
            f"{self.libs}/*",
            "kafka.Kafka",
            str(self.dir / "server.properties"),
        ]

    def healthy(self) -> bool:
        from confluent_kafka import KafkaException
        from confluent_kafka.admin import AdminClient

        try:
            socket.create_connection((LOOPBACK, self.settings.kafka.port), timeout=1).close()
        except OSError:
            return False  # not listening yet; spare librdkafka's connection-refused noise
        admin = AdminClient({"bootstrap.servers": self.address, "socket.timeout.ms": 2000})
        try:
            metadata = admin.list_topics(timeout=2)
        except KafkaException:
            return False
        return bool(metadata.brokers)
