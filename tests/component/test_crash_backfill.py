"""`kill -9` of `plantstream run` twice during a shift, against a simulator that keeps history.

Issue 17's acceptance: the gaps the two dead pipelines leave (each about 90 simulated seconds,
longer than cnc1's ``max_gap_s`` of 60 s) are read back from the server's history after each
restart, so the windows are those an uninterrupted run gives: state time per category (micro-stops
included), unknown time and the power-only energy of cnc1, window by window, to float rounding.
The uninterrupted run is a twin of the simulation (same seed and start, so the same values at the
same instants) fed through the engine.

Measured on the same run without history (``history=0``, the behaviour before the backfill): 30
of the 39 windows compared differ, cnc1 counts 1.85-2.31 kWh of 4.60, and the outages' state
time goes to the state before them (the engine holds a state until the next reading, so
``unknown_s`` is 0 either way). With history: none differ, and cnc1 counts 4.602 kWh of 4.603
over the whole run (the difference is the run's first and last minute).
"""

from __future__ import annotations

import asyncio
import json
import signal
from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from component.test_crash import START, final_points, start_pipeline, wait_for

from plantstream.plant import load_plant
from plantstream.records import Reading
from runtimes.simulator import DEMO_PLANT, SimulatorOptions, SimulatorServer
from runtimes.simulator.model import PlantSimulation
from streams.config import build_spec
from streams.engine import Engine

SEED = 7
SPEED = 30.0
RUN_S = 30.0  # wall seconds the line runs: 15 simulated minutes
OUTAGE_S = 3.0  # wall seconds each pipeline is dead: 90 simulated seconds, longer than max_gap_s
COMPARED = ("run_s", "micro_stop_s", "idle_s", "down_s", "setup_s", "off_s", "unknown_s", "planned_busy_s")


async def run_with_two_kills(
    state: Path, history: int
) -> tuple[dict[str, Any], Any, dict[tuple[str, str, str], dict[str, Any]]]:
    """The simulated line for RUN_S with the pipeline killed twice: the truth, the spec, the points."""
    log = state.parent / "pipeline.log"
    options = SimulatorOptions(
        plant=DEMO_PLANT, port=0, speed=SPEED, seed=SEED, start=START, duration=RUN_S, history=history
    )
    async with SimulatorServer(options) as sim:
        plant = load_plant(DEMO_PLANT, environ={"OPCUA_ENDPOINT": sim.endpoint})
        spec = build_spec(plant.model)
        checkpoint = state / "checkpoint.json"
        for _ in range(2):
            pipeline = start_pipeline(state, sim.endpoint, log)
            try:
                written = checkpoint.stat().st_mtime_ns if checkpoint.exists() else 0
                # A checkpoint of this process, then some seconds of work it takes to its grave.
                await wait_for(
                    lambda w=written: checkpoint.exists() and checkpoint.stat().st_mtime_ns > w,
                    "a checkpoint of this pipeline",
                )
                await asyncio.sleep(2)
                pipeline.send_signal(signal.SIGKILL)
                assert pipeline.wait(10) == -signal.SIGKILL
            finally:
                if pipeline.poll() is None:
                    pipeline.kill()
            await asyncio.sleep(OUTAGE_S)  # the line goes on while nothing watches it
        last = start_pipeline(state, sim.endpoint, log)
        try:
            await sim.finished()
            truth = sim.truth()
            # The last values of the run are on the server: let the pipeline take them, then stop it.
            await asyncio.sleep(3)
            last.send_signal(signal.SIGTERM)
            assert last.wait(30) == 0, log.read_text()[-3000:]
        finally:
            if last.poll() is None:
                last.kill()
    assert log.read_text().count("restored the calculators' state") == 2
    return truth, spec, final_points(state, spec)


def window_fields(
    points: dict[tuple[str, str, str], dict[str, Any]],
) -> dict[tuple[str, str], dict[str, float]]:
    """Per (machine, window start): the one-minute window's state times and kWh."""
    out: dict[tuple[str, str], dict[str, float]] = defaultdict(dict)
    for (measurement, tags, time), fields in points.items():
        labels = json.loads(tags)
        if labels.get("window") != "1m" or "machine" not in labels:
            continue
        window = out[(labels["machine"], time)]
        if measurement == "oee":
            window.update({key: float(fields.get(key, 0)) for key in COMPARED})
        elif measurement == "energy":
            window["kwh"] = float(fields["kwh"])
    return out


def uninterrupted(spec: Any, end: datetime) -> dict[tuple[str, str], dict[str, float]]:
    """The points a pipeline that never stopped would give: every value the simulation wrote.

    A twin of the simulation (same plant, seed and start: the same updates at the same simulated
    instants, whatever the stepping) fed to the engine in order, as the collector would deliver
    them.
    """
    plant = load_plant(DEMO_PLANT, environ={"OPCUA_ENDPOINT": "opc.tcp://x:4840"}).model
    twin = PlantSimulation(plant, seed=SEED, start=START)
    engine = Engine(spec)
    moment = START
    while moment <= end:
        for update in twin.step(moment):
            engine.push(
                Reading(ts=update.source_ts, machine=update.machine, signal=update.signal, value=update.value)
            )
        moment += timedelta(seconds=1)
    engine.flush()
    points = {
        (p.measurement, json.dumps(p.tags, sort_keys=True), p.time.isoformat().replace("+00:00", "Z")): dict(
            p.fields
        )
        for p in engine.take_points()
    }
    return window_fields(points)


def first_observed(state: Path) -> datetime:
    """When the first pipeline first read the line: its first value of cnc1's spindle power.

    The power tag changes every simulated second, so the source time of its first reading (the
    first connect's catch-up value) is within a second of the connect.
    """
    for file in sorted((state / "points").glob("*.jsonl")):
        for line in file.read_text().splitlines():
            point = json.loads(line)
            tags = point["tags"]
            if point["measurement"] == "reading" and (tags["machine"], tags["signal"]) == (
                "cnc1",
                "spindle_power_kw",
            ):
                return datetime.fromisoformat(point["time"])
    raise AssertionError("no reading of cnc1.spindle_power_kw")


async def test_two_kills_against_a_historizing_line_give_the_points_of_an_uninterrupted_run(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    truth, spec, points = await run_with_two_kills(state, history=3_600)
    end = datetime.fromisoformat(truth["at"])
    expected = uninterrupted(spec, end)
    counted = window_fields(points)
    # The windows from the first whole minute the first pipeline saw to the last one before the
    # simulation's end (the last is still open when the last pipeline stops): 12 or 13 of 15 per
    # machine when the first pipeline connects within 3 s (90 simulated s) of the start.
    first = (first_observed(state) + timedelta(minutes=1)).replace(second=0, microsecond=0)
    last = end - timedelta(minutes=1)
    compared = sorted(
        key for key in expected if first <= datetime.fromisoformat(key[1]) < last and key[0] != "oven1"
    )
    assert len(compared) >= 3 * 8  # at least 8 windows of each of the three machines
    for key in compared:
        # Equal to float rounding: the same readings in the same windows (corrections and
        # revisions aside, which the last line of each identity settles).
        assert counted[key] == pytest.approx(expected[key], abs=1e-6), key
    unknown = sum(counted[key].get("unknown_s", 0.0) for key in compared)
    assert unknown == 0
    # Over the whole run, cnc1's power-only energy against the simulator's truth (the integral of
    # its power samples): within 1 %, the edges of the run being the difference.
    cnc = truth["machines"]["cnc1"]["energy_kwh"]
    total = sum(fields.get("kwh", 0.0) for (machine, _), fields in counted.items() if machine == "cnc1")
    assert total == pytest.approx(cnc, rel=0.01)
