"""Fixtures for component tests: real servers on loopback, started and stopped by the tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from services import (
    SINK_SERVERS,
    Broker,
    KafkaBroker,
    KafkaUnavailable,
    OpcUaTestServer,
    SinkServer,
    VictoriaMetrics,
    free_port,
    new_sink_server,
)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    """A fresh broker with persistence, on a free port."""
    b = Broker(port=free_port(), directory=tmp_path)
    b.start()
    yield b
    b.stop()


@pytest.fixture
def opcua_server() -> Iterator[OpcUaTestServer]:
    """The small asyncua test server in its own process, on a free port."""
    server = OpcUaTestServer(port=free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def victoria(tmp_path: Path) -> Iterator[VictoriaMetrics]:
    """VictoriaMetrics speaking the InfluxDB v2 write API, on a free port with its own storage."""
    server = VictoriaMetrics(port=free_port(), directory=tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture(params=SINK_SERVERS)
def sink_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SinkServer]:
    """Each server the InfluxDB sink is tested against in turn: VictoriaMetrics, then InfluxDB 1.12."""
    server = new_sink_server(request.param, tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    """One Kafka node (KRaft) for the session; tests use their own topic names and groups."""
    node = KafkaBroker(directory=tmp_path_factory.mktemp("kafka"))
    try:
        node.start()
    except KafkaUnavailable as exc:
        pytest.fail(str(exc))
    yield node
    node.stop()
