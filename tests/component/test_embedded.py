"""The embedded pipeline against the simulator: a restart in the middle loses no piece and no kWh."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

from plantstream.plant import load_plant
from plantstream.records import Reading
from runtimes.embedded import CHECKPOINT, EmbeddedPipeline
from runtimes.simulator import DEMO_PLANT, SimulatorOptions, SimulatorServer
from streams.config import build_spec
from streams.engine import Engine

MONDAY_0930_HCM = datetime(2026, 3, 2, 9, 30, tzinfo=timezone(timedelta(hours=7)))
"""Shift A of the demo line, after its tea break."""


async def run_for(pipeline: EmbeddedPipeline, seconds: float) -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(seconds, stop.set)
    await pipeline.run(stop)


def final_points(state: Path) -> dict[tuple[str, str, str], dict]:
    """The last version of every point identity written to the file sink."""
    out = {}
    for file in sorted((state / "points").glob("*.jsonl")):
        for line in file.read_text().splitlines():
            p = json.loads(line)
            out[(p["measurement"], json.dumps(p["tags"], sort_keys=True), p["time"])] = p["fields"]
    return out


async def test_a_restart_recovers_what_was_made_while_the_pipeline_was_down(tmp_path: Path) -> None:
    state = tmp_path / "state"
    counters: list[tuple[int, int]] = []  # (strokes_total of press1) first and last seen per run

    def watch(reading: Reading) -> None:
        if (
            reading.machine == "press1"
            and reading.signal == "strokes_total"
            and isinstance(reading.value, int)
        ):
            counters.append((len(runs), reading.value))

    runs: list[int] = []
    # In shift A whatever the time of day (at night the press makes nothing and the test says nothing).
    options = SimulatorOptions(plant=DEMO_PLANT, port=0, speed=30, seed=3, start=MONDAY_0930_HCM)
    async with SimulatorServer(options) as sim:
        plant = load_plant(DEMO_PLANT, environ={"OPCUA_ENDPOINT": sim.endpoint})
        spec = build_spec(plant.model)
        runs.append(1)
        await run_for(EmbeddedPipeline(plant, spec, state, on_reading=watch, checkpoint_every_s=1), 5)
        await asyncio.sleep(2)  # the line keeps producing while the pipeline is down
        runs.append(2)
        second = EmbeddedPipeline(plant, spec, state, on_reading=watch, checkpoint_every_s=1)
        await run_for(second, 5)
        assert second.stats.restored_from == str(state / CHECKPOINT)
    # What the checkpoint still holds (open windows) is emitted by flushing a restored engine.
    engine = Engine(spec)
    engine.restore(json.loads((state / CHECKPOINT).read_text()))
    engine.flush()
    emitted = final_points(state)
    for point in engine.take_points():
        emitted[(point.measurement, json.dumps(point.tags, sort_keys=True), point.time.isoformat())] = (
            point.fields
        )
    counted = 0
    for (measurement, tags, _), fields in emitted.items():
        labels = json.loads(tags)
        if measurement == "oee" and labels.get("machine") == "press1" and labels.get("window") == "1m":
            counted += fields["total_count"]
    first = counters[0][1]
    last = counters[-1][1]
    made = (last - first) % 2**32 if last < first else last - first
    assert any(run == 2 for run, _ in counters), "the second run saw readings"
    assert made > 0, "the press made strokes"
    # Every stroke between the first and the last sample is counted once, including the gap.
    assert counted == made
