"""The OPC UA collector's backfill from history, against an asyncua server in this process.

The server keeps history as the simulator does (:class:`runtimes.simulator.history.ServerHistory`);
the test writes every value itself, with a source time it chooses, and cuts the network between
collector and server with a TCP relay, so what the server holds, and when, is known exactly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from asyncua import Server, ua
from services import Relay, free_port

from collectors.backoff import Backoff
from collectors.opcua import OpcUaCollector
from plantstream.plant import parse_plant
from plantstream.plant.schema import OpcUaSource
from plantstream.records import Reading
from runtimes.simulator.history import ServerHistory

URI = "urn:plantstream:history-test"
T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
FAST = Backoff(first_s=0.05, cap_s=0.2)
PLANT = """
sites:
  - id: demo
    timezone: UTC
    country: VN
    lines:
      - id: l1
        machines:
          - id: press
            ideal_cycle_s: 1
            signals: {{state: state, good_count: good_count, power_kw: power_kw}}
sources:
  - type: opcua
    id: plc
    endpoint: {endpoint}
    security: {{mode: None, allow_insecure: true}}
    history: {history}
    groups:
      - publishing_interval_ms: 100
        sampling_interval_ms: 50
        tags:
          - {{node: "nsu={uri};s=press.good", machine: press, signal: good_count}}
          - {{node: "nsu={uri};s=press.power", machine: press, signal: power_kw}}
          - {{node: "nsu={uri};s=press.state", machine: press, signal: state}}
"""
KINDS = {"good": ua.VariantType.UInt32, "power": ua.VariantType.Double, "state": ua.VariantType.Int32}
SIGNALS = {"good": "good_count", "power": "power_kw", "state": "state"}


def source(endpoint: str, history: str = "{}") -> OpcUaSource:
    text = PLANT.format(endpoint=endpoint, history=history, uri=URI)
    [src] = parse_plant(text).model.sources
    assert isinstance(src, OpcUaSource)
    return src


@dataclass
class HistoryServer:
    """An asyncua server whose good and power tags keep history (state keeps none, unless asked)."""

    server: Server
    history: ServerHistory
    nodes: dict[str, ua.NodeId]
    port: int
    history_reads: list[ua.HistoryReadParameters] = field(default_factory=list)

    async def write(self, name: str, value: float, at: datetime) -> None:
        data = ua.DataValue(Value=ua.Variant(value, KINDS[name]), SourceTimestamp=at, ServerTimestamp=at)
        await self.server.write_attribute_value(self.nodes[name], data)
        await self.history.save(self.nodes[name], data)

    def answer_history_with(
        self, answer: Callable[[ua.HistoryReadParameters], Awaitable[list[ua.HistoryReadResult]]]
    ) -> None:
        """Let ``answer`` reply to HistoryRead instead of the server's history (garbage, for one)."""

        async def replaced(params: ua.HistoryReadParameters) -> list[ua.HistoryReadResult]:
            self.history_reads.append(params)
            return await answer(params)

        self.server.iserver.history_manager.read_history = replaced


@contextlib.asynccontextmanager
async def history_server(historized: tuple[str, ...] = ("good", "power")) -> AsyncIterator[HistoryServer]:
    server = Server()
    await server.init()
    port = free_port()
    server.set_endpoint(f"opc.tcp://127.0.0.1:{port}/")
    server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
    idx = await server.register_namespace(URI)
    press = await server.nodes.objects.add_object(idx, "press")
    nodes = {}
    for name, kind in KINDS.items():
        node = await press.add_variable(ua.NodeId(f"press.{name}", idx), name, ua.Variant(0, kind))
        nodes[name] = node.nodeid
    history = ServerHistory(server, 1_000)
    for name in historized:
        await history.add(nodes[name])
    held = HistoryServer(server, history, nodes, port)
    manager = server.iserver.history_manager
    original = manager.read_history

    async def counted(params: ua.HistoryReadParameters) -> list[ua.HistoryReadResult]:
        held.history_reads.append(params)
        results: list[ua.HistoryReadResult] = await original(params)
        return results

    manager.read_history = counted
    async with server:
        yield held


class Taken:
    """Every reading the collector gives, gathered in the background."""

    def __init__(self, collector: OpcUaCollector) -> None:
        self.readings: list[Reading] = []
        self._task = asyncio.create_task(self._gather(collector))

    async def _gather(self, collector: OpcUaCollector) -> None:
        async for reading in collector.readings():
            self.readings.append(reading)

    def of(self, name: str) -> list[Reading]:
        return [r for r in self.readings if r.signal == SIGNALS[name]]

    async def until(self, name: str, value: float, timeout: float = 20) -> None:
        await until(lambda: any(r.value == value for r in self.of(name)), timeout)

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


async def until(condition: Callable[[], bool], timeout: float = 20) -> None:
    for _ in range(int(timeout / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met in time")


def good_at(i: int) -> datetime:
    """The source time of good count ``i``: T0 + i seconds."""
    return T0 + timedelta(seconds=i)


def power_at(i: int) -> datetime:
    """The source time of power sample ``i``: half a second after good count ``i``."""
    return T0 + timedelta(seconds=i, milliseconds=500)


async def write_tick(server: HistoryServer, i: int) -> None:
    await server.write("good", i, good_at(i))
    await server.write("power", 1.5 * i, power_at(i))


async def outage_run(server: HistoryServer, history: str = "{}") -> tuple[OpcUaCollector, Taken]:
    """Counts 1-5 before the collector connects, 6-7 live, 8-20 during an outage, 21 live after.

    The state changes to 3 and then 1 during the outage (10 s and 15 s). The relay is cut for
    good only after the collector is closed, so the outage is the one reconnect.
    """
    await server.write("state", 2, T0)
    for i in range(1, 6):
        await write_tick(server, i)
    relay = Relay(server.port)
    await relay.restore()
    collector = OpcUaCollector(source(relay.endpoint, history), backoff=FAST)
    try:
        async with collector:
            taken = Taken(collector)
            try:
                await taken.until("good", 5)
                for i in (6, 7):
                    await write_tick(server, i)
                    await taken.until("good", i)
                    await taken.until("power", 1.5 * i)
                await relay.cut()
                await until(lambda: not collector.health.connected)
                for i in range(8, 21):
                    await write_tick(server, i)
                    if i == 10:
                        await server.write("state", 3, good_at(10))
                    if i == 15:
                        await server.write("state", 1, good_at(15))
                await relay.restore()
                await taken.until("good", 20)
                await write_tick(server, 21)
                await taken.until("good", 21)
                await taken.until("power", 1.5 * 21)
            finally:
                await taken.close()
    finally:
        if relay.listening:
            await relay.cut()
    return collector, taken


def values(readings: list[Reading]) -> list[Any]:
    return [r.value for r in readings]


@pytest.mark.parametrize(
    ("page", "history"),
    [
        (None, "{}"),  # asyncua cuts each answer at NumValuesPerNode (1 000): one answer each
        (5, "{}"),  # answers of 5 with a continuation point: 5 + 5 + 2 values per node
        (None, "{values_per_request: 4}"),  # 4 a request, no continuation point: asked again from the last
    ],
)
async def test_a_network_outage_is_filled_from_history_in_order_and_marked(
    page: int | None, history: str
) -> None:
    async with history_server() as server:
        if page is not None:
            server.server.iserver.history_manager.storage.max_history_data_response_size = page
        collector, taken = await outage_run(server, history)
    good, power = taken.of("good"), taken.of("power")
    # 5 is the first session's catch-up (nothing before it was delivered, so nothing is read
    # back), 6 and 7 live, 8-19 from history, 20 the catch-up after the outage, 21 live.
    assert values(good) == list(range(5, 22))
    assert [r.backfilled for r in good] == [False] * 3 + [True] * 12 + [False] * 2
    assert [r.ts for r in good] == [good_at(i) for i in range(5, 22)]
    assert values(power) == [1.5 * i for i in range(5, 22)]
    assert [r.backfilled for r in power] == [False] * 3 + [True] * 12 + [False] * 2
    assert [r.ts for r in power] == [power_at(i) for i in range(5, 22)]
    # From the first backfilled value to the catch-up after the outage: one event-time order.
    first = next(n for n, r in enumerate(taken.readings) if r.backfilled)
    after = taken.readings[first : first + 12 + 12 + 3]  # the two gaps, two catch-ups and the state
    assert [r.ts for r in after] == sorted(r.ts for r in after)
    # The state keeps no history: as before, the outage's changes are lost but its current value.
    assert values(taken.of("state")) == [2, 1]
    assert not any(r.backfilled for r in taken.of("state"))
    assert collector.health.history_nodes == 2
    assert collector.health.backfilled == 24
    assert collector.health.history_problems == collector.health.history_outside == 0
    assert collector.health.reconnects == 1


async def test_without_history_the_outage_is_what_it_was_before() -> None:
    async with history_server(historized=()) as server:
        collector, taken = await outage_run(server)
    assert values(taken.of("good")) == [5, 6, 7, 20, 21]
    assert values(taken.of("power")) == [7.5, 9.0, 10.5, 30.0, 31.5]
    assert not any(r.backfilled for r in taken.readings)
    assert server.history_reads == []  # the one check per node and session is a Read of two attributes
    assert collector.health.history_nodes == 0
    assert collector.health.backfilled == 0


async def test_with_backfill_switched_off_no_history_is_read() -> None:
    async with history_server() as server:
        collector, taken = await outage_run(server, "{enabled: false}")
    assert values(taken.of("good")) == [5, 6, 7, 20, 21]
    assert server.history_reads == []
    assert collector.health.history_nodes == 0


async def test_garbage_from_history_is_counted_and_logged_once_and_the_session_lives(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: dict[str, int] = {}

    async def garbage(params: ua.HistoryReadParameters) -> list[ua.HistoryReadResult]:
        [target] = params.NodesToRead
        name = target.NodeId.Identifier.removeprefix("press.")
        result = ua.HistoryReadResult()
        if params.ReleaseContinuationPoints:
            return [result]
        calls[name] = calls.get(name, 0) + 1
        if name == "power":
            result.StatusCode = ua.StatusCode(ua.StatusCodes.BadHistoryOperationUnsupported)
            return [result]
        if calls[name] == 1:
            # Two good values, one from long before the range asked for, and more to come.
            result.HistoryData = ua.HistoryData()
            result.HistoryData.DataValues = [
                ua.DataValue(ua.Variant(9, ua.VariantType.UInt32), SourceTimestamp=good_at(9)),
                ua.DataValue(ua.Variant(99, ua.VariantType.UInt32), SourceTimestamp=good_at(-100)),
                ua.DataValue(ua.Variant(10, ua.VariantType.UInt32), SourceTimestamp=good_at(10)),
            ]
            result.ContinuationPoint = b"next"
            return [result]
        # Then not history data at all, with a continuation point the client must give back.
        result.HistoryData = ua.HistoryEvent()
        result.ContinuationPoint = b"held"
        return [result]

    async with history_server() as server:
        server.answer_history_with(garbage)
        with caplog.at_level(logging.WARNING, logger="plantstream.collectors.opcua"):
            collector, taken = await outage_run(server)
    # The good values before the garbage are kept; the session went on (21 arrived live).
    assert values(taken.of("good")) == [5, 6, 7, 9, 10, 20, 21]
    assert [r.backfilled for r in taken.of("good")] == [False] * 3 + [True] * 2 + [False] * 2
    assert values(taken.of("power")) == [7.5, 9.0, 10.5, 30.0, 31.5]
    health = collector.health
    assert health.history_problems == 2  # power's bad status, good's HistoryEvent
    assert health.history_outside == 1
    assert health.backfilled == 2
    assert health.reconnects == 1  # the outage's: history's problems never cost the session
    released = [p for p in server.history_reads if p.ReleaseContinuationPoints]
    assert [p.NodesToRead[0].ContinuationPoint for p in released] == [b"held"]
    warnings = [r.getMessage() for r in caplog.records if "history" in r.getMessage()]
    assert any(f"nsu={URI};s=press.power" in w and "BadHistoryOperationUnsupported" in w for w in warnings)
    assert any(f"nsu={URI};s=press.good" in w and "HistoryEvent" in w for w in warnings)
    assert any(f"nsu={URI};s=press.good" in w and "outside the range" in w for w in warnings)
    assert len(warnings) == 3


async def test_after_the_pipeline_restarts_the_gap_since_its_checkpoint_is_read_back() -> None:
    async with history_server() as server:
        for i in range(1, 21):
            await write_tick(server, i)
        await server.write("state", 2, T0)
        collector = OpcUaCollector(source(f"opc.tcp://127.0.0.1:{server.port}/"), backoff=FAST)
        # What the checkpoint says was delivered: good count 7 and power sample 12.
        collector.resume({("press", "good_count"): good_at(7), ("press", "power_kw"): power_at(12)})
        async with collector:
            taken = Taken(collector)
            try:
                await taken.until("good", 20)
                await taken.until("power", 30.0)
            finally:
                await taken.close()
    assert values(taken.of("good")) == list(range(8, 21))
    assert [r.backfilled for r in taken.of("good")] == [True] * 12 + [False]
    assert values(taken.of("power")) == [1.5 * i for i in range(13, 21)]
    assert values(taken.of("state")) == [2]  # nothing delivered before: the catch-up alone
    assert collector.health.backfilled == 12 + 7


async def test_only_the_newest_max_span_of_a_long_gap_is_read_back() -> None:
    async with history_server() as server:
        for i in range(1, 21):
            await write_tick(server, i)
        collector = OpcUaCollector(
            source(f"opc.tcp://127.0.0.1:{server.port}/", "{max_span_s: 5}"), backoff=FAST
        )
        collector.resume({("press", "good_count"): good_at(2)})
        async with collector:
            taken = Taken(collector)
            try:
                await taken.until("good", 20)
            finally:
                await taken.close()
    # The gap is 2 s .. 20 s; its newest 5 s are 15 s .. 20 s: 16-19 from history (15 is on the edge,
    # and the edge is exclusive as the last delivered value's time is).
    assert values(taken.of("good")) == list(range(16, 21))
    assert collector.health.history_truncated == 1


async def test_the_values_held_after_a_reconnect_are_bounded_for_all_nodes_together() -> None:
    async with history_server() as server:
        for i in range(1, 21):
            await write_tick(server, i)
        collector = OpcUaCollector(
            source(f"opc.tcp://127.0.0.1:{server.port}/", "{max_values_per_session: 10}"), backoff=FAST
        )
        collector.resume({("press", "good_count"): good_at(7), ("press", "power_kw"): power_at(12)})
        async with collector:
            taken = Taken(collector)
            try:
                await taken.until("good", 20)
                await taken.until("power", 30.0)
            finally:
                await taken.close()
    # Two gaps share 10 values: 5 each, the oldest first (good 8-19 and power 13-19 are in them).
    assert values(taken.of("good")) == [8, 9, 10, 11, 12, 20]
    assert values(taken.of("power")) == [1.5 * i for i in (13, 14, 15, 16, 17, 20)]
    assert collector.health.history_truncated == 2
