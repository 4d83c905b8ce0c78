"""`kill -9` of the embedded pipeline mid-run, then a restart: the points still add up to the truth.

The demonstration line runs in the simulator (in this process, so its ground truth is at hand);
`plantstream run` runs against it in a child process that the test kills with SIGKILL and starts
again. Over the whole run the pieces and the kWh in the points must equal what the simulation
made and consumed, exactly: the pieces made while the pipeline was dead are recovered from the
cumulative counters, and the windows the dead process wrote after its last checkpoint are written
again with the same identity (readers keep the last line of an identity, InfluxDB overwrites).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from plantstream.plant import load_plant
from runtimes.simulator import DEMO_PLANT, SimulatorOptions, SimulatorServer
from runtimes.simulator.model import PlantSimulation
from streams.config import build_spec
from streams.engine import Engine

# Monday 2 March 2026, 05:59 in Ho Chi Minh City (UTC+7): shift A starts a minute later.
START = datetime(2026, 3, 1, 22, 59, tzinfo=UTC)
SEED = 5
SPEED = 30.0
RUN_S = 24.0  # wall seconds the line runs: 12 simulated minutes
# Counters and registers of the demo line (examples/demo-line.yaml): machine -> signal -> scale.
COUNTERS = {"press1": "strokes_total", "cnc1": "total_count", "packer1": "cases_total"}
REJECTS = {"press1": "strokes_rejected", "packer1": "cases_rejected"}
GOOD = {"cnc1": "good_count"}
REGISTERS = {"press1": ("energy_wh", 0.001), "packer1": ("energy_kwh", 1.0), "oven1": ("fan_energy_kwh", 1.0)}


def start_pipeline(state: Path, endpoint: str, log: Path) -> subprocess.Popen[bytes]:
    environ = {**os.environ, "OPCUA_ENDPOINT": endpoint}
    executable = Path(sys.executable).parent / "plantstream"
    command = [str(executable), "run", "-c", str(DEMO_PLANT), "--state-dir", str(state)]
    with log.open("ab") as out:
        return subprocess.Popen([*command, "--http-port", "0"], env=environ, stdout=out, stderr=out)


def raw_readings(state: Path) -> list[dict[str, Any]]:
    """The `reading` points written so far, in file order."""
    out = []
    for file in sorted((state / "points").glob("*.jsonl")):
        for line in file.read_text().splitlines():
            point = json.loads(line)
            if point["measurement"] == "reading":
                out.append(point)
    return out


def last_raw(state: Path, machine: str, signal_name: str) -> float | None:
    values = [
        p["fields"].get("value")
        for p in raw_readings(state)
        if p["tags"]["machine"] == machine and p["tags"]["signal"] == signal_name
    ]
    return values[-1] if values else None


def final_points(state: Path, spec: Any) -> dict[tuple[str, str, str], dict[str, Any]]:
    """The last line of every point identity, plus what the final checkpoint still holds open."""
    out: dict[tuple[str, str, str], dict[str, Any]] = {}
    for file in sorted((state / "points").glob("*.jsonl")):
        for line in file.read_text().splitlines():
            p = json.loads(line)
            out[(p["measurement"], json.dumps(p["tags"], sort_keys=True), p["time"])] = p["fields"]
    engine = Engine(spec)
    engine.restore(json.loads((state / "checkpoint.json").read_text()))
    engine.flush()
    for point in engine.take_points():
        key = (
            point.measurement,
            json.dumps(point.tags, sort_keys=True),
            point.time.isoformat().replace("+00:00", "Z"),
        )
        out[key] = dict(point.fields)
    return out


def counted_per_machine(points: dict[tuple[str, str, str], dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Pieces and kWh per machine, summed over its one-minute windows."""
    counted: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for (measurement, tags, _), fields in points.items():
        labels = json.loads(tags)
        if labels.get("window") != "1m" or "machine" not in labels:
            continue
        if measurement == "oee":
            for key in ("total_count", "good_count", "reject_count"):
                counted[labels["machine"]][key] += fields.get(key, 0)
        elif measurement == "energy":
            counted[labels["machine"]]["kwh"] += fields["kwh"]
    return counted


async def wait_for(condition: Any, what: str, timeout: float = 60) -> None:
    for _ in range(int(timeout / 0.25)):
        if condition():
            return
        await asyncio.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


async def test_sigkill_and_restart_lose_no_piece_and_no_kwh(tmp_path: Path) -> None:
    state = tmp_path / "state"
    log = tmp_path / "pipeline.log"
    # The initial tag values, from a twin of the simulation (same seed and start: same updates).
    twin = PlantSimulation(
        load_plant(DEMO_PLANT, environ={"OPCUA_ENDPOINT": "opc.tcp://x:4840"}).model, seed=SEED, start=START
    )
    initial = {(u.machine, u.signal): u.value for u in twin.step(START)}
    options = SimulatorOptions(plant=DEMO_PLANT, port=0, speed=SPEED, seed=SEED, start=START, duration=RUN_S)
    async with SimulatorServer(options) as sim:
        plant = load_plant(DEMO_PLANT, environ={"OPCUA_ENDPOINT": sim.endpoint})
        spec = build_spec(plant.model)
        first = start_pipeline(state, sim.endpoint, log)
        try:
            await wait_for((state / "checkpoint.json").exists, "the first checkpoint")
            await asyncio.sleep(3)  # past the checkpoint: the kill loses in-memory work
            first.send_signal(signal.SIGKILL)
            assert first.wait(10) == -signal.SIGKILL
        finally:
            if first.poll() is None:
                first.kill()
        await asyncio.sleep(2)  # the line goes on producing while nothing watches it
        second = start_pipeline(state, sim.endpoint, log)
        try:
            await sim.finished()
            truth = sim.truth()["machines"]
            # The server goes on serving the final values; wait until the pipeline has them.
            expected_final = {
                (machine, name): initial[(machine, name)] + truth[machine][kind]
                for kind, table in (("total", COUNTERS), ("reject", REJECTS), ("good", GOOD))
                for machine, name in table.items()
            }
            for (machine, name), value in expected_final.items():
                await wait_for(
                    lambda m=machine, n=name, v=value: last_raw(state, m, n) == v,
                    f"{machine}.{name} = {value}",
                )
            await asyncio.sleep(1)
            second.send_signal(signal.SIGTERM)
            assert second.wait(30) == 0, log.read_text()[-3000:]
        finally:
            if second.poll() is None:
                second.kill()
    assert "restored the calculators' state" in log.read_text()

    # What each counter showed the first time the pipeline read it: pieces made before that were
    # never observed and are not the pipeline's to count.
    first_seen: dict[tuple[str, str], Any] = {}
    for p in raw_readings(state):
        first_seen.setdefault((p["tags"]["machine"], p["tags"]["signal"]), p["fields"].get("value"))

    counted = counted_per_machine(final_points(state, spec))
    for machine, name in COUNTERS.items():
        unseen = first_seen[(machine, name)] - initial[(machine, name)]
        assert counted[machine]["total_count"] == truth[machine]["total"] - unseen, machine
    for machine, name in REJECTS.items():
        unseen = first_seen[(machine, name)] - initial[(machine, name)]
        assert counted[machine]["reject_count"] == truth[machine]["reject"] - unseen, machine
    for machine, name in GOOD.items():
        unseen = first_seen[(machine, name)] - initial[(machine, name)]
        assert counted[machine]["good_count"] == truth[machine]["good"] - unseen, machine
    for machine, (name, scale) in REGISTERS.items():
        unseen_kwh = (first_seen[(machine, name)] - initial[(machine, name)]) * scale
        # The truth is exact; the registers report whole Wh (press1) or rounded kWh, so they agree
        # to one register step at the end of the run.
        assert counted[machine]["kwh"] == pytest.approx(
            truth[machine]["energy_kwh"] - unseen_kwh, abs=1e-3
        ), machine
