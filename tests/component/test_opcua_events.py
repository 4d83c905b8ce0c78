"""Alarms & Conditions events as stop reasons, against a real asyncua server (collectors/opcua_events.py).

The server raises and clears alarm conditions on a machine's source node (asyncua's event
generator, emitting through the Server object as servers commonly do); the collector turns them
into readings of the machine's reason signal at the events' times.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from asyncua import Server, ua
from asyncua.server.event_generator import EventGenerator
from services import Relay, free_port

from collectors.backoff import Backoff
from collectors.opcua import OpcUaCollector
from collectors.opcua_events import EventHealth
from plantstream.plant import load_plant, parse_plant
from plantstream.plant.schema import OpcUaSource
from plantstream.records import Point, Reading
from runtimes.embedded import CHECKPOINT, EmbeddedPipeline
from runtimes.simulator import SimulatorOptions, SimulatorServer
from runtimes.simulator.server import NAMESPACE_URI
from streams.config import build_spec
from streams.engine import Engine

URI = "urn:plantstream:events-test"
STOP_REASONS = Path(__file__).resolve().parents[2] / "examples" / "stop-reasons.yaml"
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
            signals: {{state: state, fault: reason}}
sources:
  - type: opcua
    id: plc
    endpoint: {endpoint}
    security: {{mode: None, allow_insecure: true}}
    groups:
      - publishing_interval_ms: 100
        tags:
          - {{node: "nsu={uri};s=press.state", machine: press, signal: state}}
    events:
      min_severity: 100
      {extra}
      where:
        - {{source_node: "nsu={uri};s=press", machine: press, signal: fault}}
"""


def source(endpoint: str, extra: str = "") -> OpcUaSource:
    [src] = parse_plant(PLANT.format(endpoint=endpoint, uri=URI, extra=extra)).model.sources
    assert isinstance(src, OpcUaSource)
    return src


@dataclass
class AlarmServer:
    server: Server
    port: int
    press: ua.NodeId
    idx: int

    async def alarm(self, name: str | None, kind: int = ua.ObjectIds.AlarmConditionType) -> EventGenerator:
        """A condition of ``kind`` on the press (its events emitted through the Server object)."""
        gen = await self.server.get_event_generator(kind)
        gen.event.SourceNode = self.press
        gen.event.SourceName = "press"
        gen.event.ConditionName = name
        gen.event.NodeId = ua.NodeId(f"press.{name or 'unnamed'}", self.idx)
        return gen


async def fire(gen: EventGenerator, at: datetime, *, active: bool | None, severity: int = 500) -> None:
    """Trigger ``gen``'s condition as active or inactive at ``at`` (retained while active)."""
    gen.event.Severity = severity
    setattr(gen.event, "ActiveState/Id", active)
    gen.event.Retain = bool(active)
    await gen.trigger(time_attr=at)


@contextlib.asynccontextmanager
async def alarm_server() -> AsyncIterator[AlarmServer]:
    server = Server()
    # asyncua binds ConditionRefresh (and sends RefreshStart/End events) only when asked; the
    # number is the Severity of those two events.
    server.iserver.bind_condition_methods = 100
    await server.init()
    port = free_port()
    server.set_endpoint(f"opc.tcp://127.0.0.1:{port}/")
    server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
    idx = await server.register_namespace(URI)
    press = await server.nodes.objects.add_object(ua.NodeId("press", idx), "press")
    await press.add_variable(ua.NodeId("press.state", idx), "state", ua.Variant(1, ua.VariantType.Int32))
    async with server:
        yield AlarmServer(server, port, press.nodeid, idx)


class Taken:
    """Every reading of the reason signal the collector gives, gathered in the background."""

    def __init__(self, collector: OpcUaCollector) -> None:
        self.readings: list[Reading] = []
        self._task = asyncio.create_task(self._gather(collector))

    async def _gather(self, collector: OpcUaCollector) -> None:
        async for reading in collector.readings():
            if reading.signal == "fault":
                self.readings.append(reading)

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


def counted(collector: OpcUaCollector) -> EventHealth:
    assert collector.health.events is not None
    return collector.health.events


def at(seconds: int) -> datetime:
    return T0 + timedelta(seconds=seconds)


def pairs(readings: list[Reading]) -> list[tuple[Any, datetime]]:
    return [(r.value, r.ts) for r in readings]


async def test_conditions_raised_and_cleared_give_the_reason_readings() -> None:
    async with alarm_server() as server:
        collector = OpcUaCollector(source(f"opc.tcp://127.0.0.1:{server.port}/"), backoff=FAST)
        async with collector:
            taken = Taken(collector)
            try:
                await until(lambda: counted(collector).refreshes == 1)
                hot = await server.alarm("OverTemperature")
                unnamed = await server.alarm(None, ua.ObjectIds.OffNormalAlarmType)
                quiet = await server.alarm("LowOil")
                await fire(hot, at(10), active=True)
                await fire(quiet, at(15), active=True, severity=50)  # below min_severity 100
                await fire(unnamed, at(20), active=True)  # a second one: the first cause stays
                await fire(hot, at(30), active=False)  # the reason goes to the one still active
                await fire(unnamed, at(40), active=False)  # nothing active: cleared
                await fire(quiet, at(45), active=False)  # never tracked: no change
                await until(lambda: len(taken.readings) >= 3)
                await until(lambda: counted(collector).events >= 8)
            finally:
                await taken.close()
    assert pairs(taken.readings) == [
        ("OverTemperature", at(10)),
        ("OffNormalAlarmType", at(30)),  # no ConditionName: the EventType's browse name
        ("", at(40)),
    ]
    assert {r.source for r in taken.readings} == {"plc"}
    health = collector.health.events
    assert health is not None
    # 6 condition events and the refresh's start and end (nothing was retained yet).
    assert health.events == 8
    assert (health.reasons, health.below_severity, health.active) == (3, 1, 0)
    assert (health.malformed, health.unmapped, health.not_conditions) == (0, 0, 0)


async def test_a_condition_cleared_during_an_outage_is_cleared_by_the_refresh() -> None:
    async with alarm_server() as server:
        relay = Relay(server.port)
        await relay.restore()
        collector = OpcUaCollector(source(relay.endpoint), backoff=FAST)
        try:
            async with collector:
                taken = Taken(collector)
                try:
                    hot = await server.alarm("OverTemperature")
                    jam = await server.alarm("Jam")
                    await fire(hot, at(10), active=True)  # retained: the first refresh sends it
                    await until(lambda: [r.value for r in taken.readings] == ["OverTemperature"])
                    await relay.cut()
                    await until(lambda: not collector.health.connected)
                    await fire(hot, at(20), active=False)  # missed: no session
                    await fire(jam, at(25), active=True)  # missed, but retained: the refresh sends it
                    await relay.restore()
                    await until(lambda: len(taken.readings) >= 2)
                finally:
                    await taken.close()
        finally:
            if relay.listening:
                await relay.cut()
    health = collector.health.events
    assert health is not None
    assert health.refreshes == 2
    # After the reconnect the refresh sends Jam (active since 25) and not OverTemperature, which
    # is cleared when the refresh ends; Jam is then the one active condition. When
    # OverTemperature cleared is not known, only that it had by the RefreshEnd event: the change
    # is at that event's time (the server's clock, after every event time of this test).
    assert [r.value for r in taken.readings] == ["OverTemperature", "Jam"]
    assert taken.readings[0].ts == at(10)
    assert taken.readings[1].ts > at(25)
    assert health.active == 1


async def test_garbage_and_floods_are_counted_and_bounded() -> None:
    async with alarm_server() as server:
        # A rate of one activation per 1 000 s: the first passes (the burst), the rest of this
        # test's activations are dropped whatever the machine's speed.
        extra = "max_events_per_s: 0.001"
        collector = OpcUaCollector(source(f"opc.tcp://127.0.0.1:{server.port}/", extra), backoff=FAST)
        async with collector:
            taken = Taken(collector)
            try:
                await until(lambda: counted(collector).refreshes == 1)
                boiler = await server.alarm("Flame")
                boiler.event.SourceNode = server.server.nodes.objects.nodeid
                boiler.event.SourceName = "boiler"
                await fire(boiler, at(1), active=True)  # a source no `where` maps
                absurd = await server.alarm("Absurd")
                await fire(absurd, at(2), active=True, severity=0)  # Severity is 1..1000
                plain = await server.server.get_event_generator()  # a BaseEventType event
                plain.event.SourceNode = server.press
                await plain.trigger(time_attr=at(3))
                flood = [await server.alarm(f"Flood{i}") for i in range(5)]
                for i, gen in enumerate(flood):
                    await fire(gen, at(10 + i), active=True)
                await fire(flood[0], at(20), active=False)  # a clear always passes
                await until(lambda: counted(collector).events >= 11)
                await until(lambda: len(taken.readings) >= 2)
            finally:
                await taken.close()
    health = collector.health.events
    assert health is not None
    assert (health.unmapped, health.malformed, health.not_conditions) == (1, 1, 1)
    assert health.rate_dropped == 4  # Flood1..Flood4: the burst of one went to Flood0
    assert pairs(taken.readings) == [("Flood0", at(10)), ("", at(20))]


EMBEDDED_PLANT = """
sites:
  - id: demo
    timezone: UTC
    country: VN
    lines:
      - id: l1
        machines:
          - id: press
            signals: {{state: {{role: state, codes: {{1: running, 3: down}}}}, fault: reason}}
reasons:
  groups: {{thermal: breakdown}}
  codes:
    OverTemperature: {{reason: over temperature, group: thermal}}
sources:
  - type: opcua
    id: plc
    endpoint: opc.tcp://127.0.0.1:{port}/
    security: {{mode: None, allow_insecure: true}}
    groups:
      - publishing_interval_ms: 100
        tags:
          - {{node: "nsu={uri};s=press.state", machine: press, signal: state}}
    events:
      where:
        - {{source_name: press, machine: press, signal: fault}}
"""


async def test_a_stop_gets_the_active_conditions_name_as_its_reason_in_the_embedded_runtime(
    tmp_path: Path,
) -> None:
    readings: list[Reading] = []
    async with alarm_server() as server:
        state_node = ua.NodeId("press.state", server.idx)

        async def state(code: int, seconds: int) -> None:
            data = ua.DataValue(Value=ua.Variant(code, ua.VariantType.Int32), SourceTimestamp=at(seconds))
            await server.server.write_attribute_value(state_node, data)

        def seen(signal: str, value: str | int, seconds: int) -> bool:
            return any((r.signal, r.value, r.ts) == (signal, value, at(seconds)) for r in readings)

        await state(1, 0)
        file = tmp_path / "plant.yaml"
        file.write_text(EMBEDDED_PLANT.format(port=server.port, uri=URI), encoding="utf-8")
        plant = load_plant(file)
        spec = build_spec(plant.model)
        state_dir = tmp_path / "state"
        points: list[Point] = []
        pipeline = EmbeddedPipeline(
            plant, spec, state_dir, on_points=points.extend, on_reading=readings.append, checkpoint_every_s=1
        )
        stop = asyncio.Event()
        running = asyncio.create_task(pipeline.run(stop))
        try:
            await until(lambda: seen("state", 1, 0))
            hot = await server.alarm("OverTemperature")
            await fire(hot, at(10), active=True)  # the alarm stops the press
            await state(3, 10)
            await until(lambda: seen("fault", "OverTemperature", 10) and seen("state", 3, 10))
            await fire(hot, at(40), active=False)
            await state(1, 40)
            await until(lambda: seen("fault", "", 40) and seen("state", 1, 40))
        finally:
            stop.set()
            await running
        # What an operator sees: the events' counts in /healthz and /metrics.
        _, health = pipeline.health()
        assert health["sources"]["plc"]["events"]["reasons"] == 2  # OverTemperature, then ""
        assert 'plantstream_opcua_events_total{source="plc",outcome="reason_changes"} 2' in pipeline.metrics()
        assert 'plantstream_opcua_active_conditions{source="plc"} 0' in pipeline.metrics()
    # The stop ended at 40 s; what the pipeline still held at its stop is in the checkpoint:
    # flushing a restored engine emits it (as tests/component/test_embedded.py does).
    engine = Engine(spec)
    engine.restore(json.loads((state_dir / CHECKPOINT).read_text()))
    engine.flush()
    stops = [p for p in [*points, *engine.take_points()] if p.measurement == "stop"]
    [stop_point] = {(p.tags["reason"], p.tags["reason_group"], p.fields["duration_s"]) for p in stops}
    # Down from 10 s to 40 s: 30 s, under the condition that was active when the stop began.
    assert stop_point == ("over temperature", "thermal", 30.0)


SIM_PLANT = """
sites:
  - id: hcm
    timezone: Asia/Ho_Chi_Minh
    country: VN
    lines:
      - id: line1
        machines:
          - {{id: press1, signals: {{fault: reason}}}}
          - {{id: packer1, signals: {{fault: reason}}}}
sources:
  - type: opcua
    id: sim
    endpoint: {endpoint}
    security: {{mode: None, allow_insecure: true}}
    groups:
      - publishing_interval_ms: 100
        sampling_interval_ms: 0
        queue_size: 100
        tags:
          - {{node: "nsu={uri};s=press1.fault", machine: press1, signal: fault}}
          - {{node: "nsu={uri};s=packer1.fault", machine: packer1, signal: fault}}
    events:
      where:
        - {{source_name: press1, machine: press1, signal: fault}}
        - {{source_name: packer1, machine: packer1, signal: fault}}
"""


async def test_the_simulators_alarms_give_the_same_reasons_as_its_code_tags() -> None:
    """``simulate --alarms``: the conditions' names and times are the codes the tags carry."""
    shift = datetime(2026, 3, 2, 7, 0, tzinfo=ZoneInfo("Asia/Ho_Chi_Minh"))  # an hour into shift A
    options = SimulatorOptions(plant=STOP_REASONS, port=0, speed=60, seed=7, start=shift, alarms=True)
    by_tag: list[Reading] = []
    by_event: list[Reading] = []
    async with SimulatorServer(options) as sim:
        text = SIM_PLANT.format(endpoint=sim.endpoint, uri=NAMESPACE_URI)
        [src] = parse_plant(text).model.sources
        assert isinstance(src, OpcUaSource)
        collector = OpcUaCollector(src, backoff=FAST)
        async with collector:

            async def gather() -> None:
                async for reading in collector.readings():
                    # Event readings carry no status code; tag readings carry the server's.
                    (by_event if reading.status_code is None else by_tag).append(reading)

            task = asyncio.create_task(gather())
            try:
                # Twenty simulated minutes (20 s of wall time at speed 60); what came before the
                # last minute of them is compared, after two minutes more for it to arrive.
                start = sim.simulated_now()
                await sim.wait_until(start + timedelta(minutes=20))
                cutoff = sim.simulated_now() - timedelta(minutes=1)
                await sim.wait_until(sim.simulated_now() + timedelta(minutes=2))
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    def changes(readings: list[Reading]) -> list[tuple[str, str, datetime]]:
        out: list[tuple[str, str, datetime]] = []
        last: dict[str, str] = {}
        for r in sorted(readings, key=lambda r: (r.machine, r.ts)):
            value = "" if r.value in (0, "") else str(r.value)
            if r.ts <= cutoff and last.get(r.machine, "") != value:
                out.append((r.machine, value, r.ts))
            last[r.machine] = value
        return out

    from_tags, from_events = changes(by_tag), changes(by_event)
    # Seed 7 stops packer1 at 00:06:08 UTC and press1 at 00:07:20 (each raised and cleared by
    # 00:10), well before the cutoff (at least 19 simulated minutes after the 00:00 start).
    assert len(from_tags) >= 4, "the line stopped with a code at least twice"
    assert from_events == from_tags


async def test_a_notifier_the_server_lacks_costs_the_events_not_the_tags() -> None:
    async with alarm_server() as server:
        extra = f'notifier: "nsu={URI};s=nowhere"'
        collector = OpcUaCollector(source(f"opc.tcp://127.0.0.1:{server.port}/", extra), backoff=FAST)
        async with collector:
            taken: list[Reading] = []

            async def gather() -> None:
                async for reading in collector.readings():
                    taken.append(reading)

            task = asyncio.create_task(gather())
            try:
                await until(lambda: any(r.signal == "state" for r in taken))
                await until(lambda: counted(collector).subscribe_failed == 1)
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
    assert collector.health.reconnects == 0  # the session stayed up
    assert counted(collector).refreshes == 0
