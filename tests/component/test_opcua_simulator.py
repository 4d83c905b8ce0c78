"""The OPC UA collector reading the demonstration line from the simulator, as the demo does."""

from __future__ import annotations

import asyncio
from pathlib import Path

from collectors.backoff import Backoff
from collectors.opcua import OpcUaCollector
from plantstream.plant import load_plant
from plantstream.plant.schema import OpcUaSource
from plantstream.records import Reading
from runtimes.simulator import SimulatorOptions, SimulatorServer

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo-line.yaml"


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
