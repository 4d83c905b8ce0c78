"""The OPC UA collector reading the demonstration line from the simulator, as the demo does."""

from __future__ import annotations

import asyncio
import itertools
from datetime import datetime, timedelta, timezone
from pathlib import Path

from collectors.backoff import Backoff
from collectors.opcua import OpcUaCollector
from plantstream.plant import load_plant
from plantstream.plant.schema import OpcUaSource
from plantstream.records import Reading
from runtimes.simulator import SimulatorOptions, SimulatorServer
from streams.config import build_spec
from streams.engine import Engine

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo-line.yaml"
MONDAY_0930_HCM = datetime(2026, 3, 2, 9, 30, tzinfo=timezone(timedelta(hours=7)))
"""Shift A of the demo line, after its tea break (09:00-09:15) and well before its end."""


async def test_every_tag_of_the_demo_line_arrives_from_the_simulator() -> None:
    async with SimulatorServer(SimulatorOptions(plant=DEMO, port=0, speed=60)) as sim:
        plant = load_plant(DEMO, environ={"OPCUA_ENDPOINT": sim.endpoint}).model
        [src] = plant.sources
        assert isinstance(src, OpcUaSource)
        wanted = {(m.id, name) for _, _, m in plant.machines() for name in m.signals}
        seen: set[tuple[str, str]] = set()
        readings: list[Reading] = []
        async with OpcUaCollector(src, backoff=Backoff(0.05, 0.5)) as collector:

            async def collect() -> None:
                async for reading in collector.readings():
                    readings.append(reading)
                    seen.add((reading.machine, reading.signal))
                    if seen >= wanted:
                        return

            await asyncio.wait_for(collect(), 20)
            assert collector.health.items_failed == {}
            assert collector.health.items_ok == len(wanted)
    press = [r.value for r in readings if (r.machine, r.signal) == ("press1", "strokes_total")]
    assert all(isinstance(v, int) for v in press)


async def test_at_speed_60_a_machines_readings_never_go_back_in_time_and_nothing_is_corrected() -> None:
    # The demo's setup: publishing every 500 ms of wall time is 30 s of event time at speed 60,
    # six times the plant's allowed_lateness_s of 5 s. A publish response groups its values by
    # tag, so without ordering them a machine's state values would be followed by its counter
    # values from up to 30 s earlier, late, and the engine would correct windows again and again.
    # In shift A, whatever the time of day the test runs (at night no window has planned time).
    options = SimulatorOptions(plant=DEMO, port=0, speed=60, start=MONDAY_0930_HCM)
    async with SimulatorServer(options) as sim:
        plant = load_plant(DEMO, environ={"OPCUA_ENDPOINT": sim.endpoint}).model
        [src] = plant.sources
        assert isinstance(src, OpcUaSource)
        assert src.groups[0].publishing_interval_ms * 60 / 1000 > 5 * plant.production.allowed_lateness_s
        engine = Engine(build_spec(plant))
        readings: list[Reading] = []
        async with OpcUaCollector(src, backoff=Backoff(0.05, 0.5)) as collector:

            async def collect() -> None:
                # Six minutes of event time after the first reading: about twelve publishes.
                async for reading in collector.readings():
                    readings.append(reading)
                    engine.push(reading)
                    if reading.ts - readings[0].ts >= timedelta(minutes=6):
                        return

            await asyncio.wait_for(collect(), 60)
            # The subscriptions' first notifications repeated what the catch-up read had taken
            # (a state that had not changed since): dropped, not sent back in time.
            assert collector.health.repeats > 0
    by_machine: dict[str, list[datetime]] = {}
    for r in readings:
        by_machine.setdefault(r.machine, []).append(r.ts)
    assert set(by_machine) == {"press1", "cnc1", "packer1", "oven1"}
    for machine, times in by_machine.items():
        back = [(a, b) for a, b in itertools.pairwise(times) if b < a]
        assert not back, f"{machine}: {len(back)} reading(s) earlier than the one before, first {back[0]}"
    stats = engine.stats
    assert stats["late_readings"] == 0
    assert stats["windows_corrected"] == 0
    # Not vacuous: windows were closed and emitted, each once.
    oee = [p for p in engine.take_points() if p.measurement == "oee"]
    assert len(oee) >= 4 * 3  # four machines, at least three closed minutes each
    assert {p.fields["revision"] for p in oee} == {0}
