"""One Apache Kafka node (KRaft, broker and controller in one JVM) on loopback ports.

The tests' ``kafka`` fixture (through ``tests/services.py``) and the kafka half of
``bench/pipeline.py`` both start the broker with :class:`KafkaBroker`: the jars are the ones
``scripts/test`` fetches once with Maven into ``~/.cache/plantstream/kafka-VERSION/`` (the version
``tests/kafka/pom.xml`` names), and ``java`` must be installed (scripts/test installs it).
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient

from bench.common import ROOT, start_child

__all__ = ["KAFKA_VERSION", "KafkaBroker", "KafkaUnavailable", "free_port", "kafka_jars"]


class KafkaUnavailable(RuntimeError):
    """The broker cannot be started here: its jars or java are missing (the message says how to fix it)."""


def _kafka_version() -> str:
    pom = (ROOT / "tests" / "kafka" / "pom.xml").read_text(encoding="utf-8")
    return pom.split("<kafka.version>", 1)[1].split("</kafka.version>", 1)[0]


KAFKA_VERSION = _kafka_version()
"""The broker version: the one tests/kafka/pom.xml names (scripts/test fetches its jars)."""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def kafka_jars() -> Path:
    """The folder of the broker's jars.

    Raises:
        KafkaUnavailable: the jars were not fetched, or java is not installed.
    """
    folder = Path.home() / ".cache" / "plantstream" / f"kafka-{KAFKA_VERSION}"
    if not (folder / f"kafka_2.13-{KAFKA_VERSION}.jar").exists():
        raise KafkaUnavailable(
            f"the Kafka broker jars are not in {folder}: run scripts/test, or "
            f"mvn -q -f tests/kafka/pom.xml dependency:copy-dependencies -DoutputDirectory={folder}"
        )
    if shutil.which("java") is None:
        raise KafkaUnavailable("java is not installed: apt-get install openjdk-17-jre-headless")
    return folder


@dataclass
class KafkaBroker:
    """A single Kafka node in KRaft mode on loopback, which can be stopped and started again.

    The storage is formatted with the broker's own StorageTool on the first start; readiness is a
    metadata request answered by the broker, not an open port. ``start`` after ``stop`` reuses
    the ports and the data.
    """

    directory: Path
    port: int = 0
    controller_port: int = 0
    flush_every_append: bool = True
    """Force the log to disk after every append, so an acknowledged record survives the node's
    crash (the tests). ``False`` is Kafka's default, as compose.yaml runs it: the OS writes the
    pages back, durability comes from replication (the benchmark, which measures a deployment)."""
    process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        """``127.0.0.1:PORT`` of the PLAINTEXT listener."""
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        """The JVM's process id (the node must be running)."""
        assert self.process is not None
        return self.process.pid

    def _java(self, main_class: str, *args: str) -> list[str]:
        classpath = str(kafka_jars() / "*")
        return [
            "java",
            "-Xms128m",
            "-Xmx512m",
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",
            "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
            "-cp",
            classpath,
            main_class,
            *args,
        ]

    def _properties(self) -> list[str]:
        lines = [
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@127.0.0.1:{self.controller_port}",
            f"listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            f"log.dirs={self.directory / 'data'}",
            "num.partitions=1",
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=3",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            "auto.create.topics.enable=false",
        ]
        if self.flush_every_append:
            lines.append("log.flush.interval.messages=1")
        return lines

    def start(self) -> None:
        """Start the node (format its storage first if this is the first start); wait until ready.

        Raises:
            KafkaUnavailable: no jars or no java.
            RuntimeError: the node did not become ready within 60 s (with the end of its log).
        """
        first_start = not self.port
        if first_start:
            self.port, self.controller_port = free_port(), free_port()
        config = self.directory / "server.properties"
        config.write_text("\n".join(self._properties()) + "\n", encoding="utf-8")
        log = self.directory / "kafka.log"
        if first_start:
            formatter = self._java(
                "kafka.tools.StorageTool", "format", "-t", "cGxhbnRzdHJlYW10ZXN0MQ", "-c", str(config)
            )
            with start_child(formatter, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as formatting:
                try:
                    _, errors = formatting.communicate(timeout=60)
                except subprocess.TimeoutExpired:
                    formatting.kill()
                    raise
            if formatting.returncode != 0:
                raise RuntimeError(f"kafka storage format failed: {errors.decode()[-2000:]}")
        with log.open("ab") as out:
            self.process = start_child(self._java("kafka.Kafka", str(config)), stdout=out, stderr=out)
        self._wait_ready(log)

    def _wait_ready(self, log: Path) -> None:
        async def metadata() -> None:
            admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=2000)
            try:
                await admin.start()
                await admin.describe_cluster()
            finally:
                await admin.close()

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                break
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    pass
                asyncio.run(metadata())
                return
            except Exception:  # not up yet, whatever the client says; the deadline bounds it
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"the Kafka broker did not become ready: {log.read_text()[-3000:]}")

    def stop(self) -> None:
        """Stop the node (SIGTERM, then SIGKILL after 30 s)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None
