"""The embedded runtime feeds the CBAM ledger with every point it writes, durably, with daily points."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from plantstream.records import Reading
from runtimes.embedded import EmbeddedPipeline
from runtimes.plant import load_and_resolve
from sinks.cbam_store import LEDGER_FILE

ROOT = Path(__file__).resolve().parents[2]
STEEL = ROOT / "examples" / "steel-cbam.yaml"


async def test_the_ledger_is_fed_and_committed_with_the_checkpoint(tmp_path: Path) -> None:
    plant, spec = load_and_resolve(STEEL)
    state = tmp_path / "state"
    pipeline = EmbeddedPipeline(plant, spec, state, checkpoint_every_s=60)
    assert pipeline.cbam is not None
    start = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
    readings = [Reading(ts=start, machine="mill", signal="state", value="running")]
    for hour in range(4):
        ts = start + timedelta(hours=hour)
        # 10 tubes and 1 000 kWh per hour on the mill; 300 kg of gas per hour in the furnace.
        readings += [
            Reading(ts=ts, machine="mill", signal="good", value=10 * hour),
            Reading(ts=ts, machine="mill", signal="kwh", value=1_000.0 * hour),
            Reading(ts=ts, machine="furnace", signal="gas", value=300.0 * hour),
            Reading(ts=ts, machine="furnace", signal="kwh", value=50.0 * hour),
        ]
    stop = asyncio.Event()
    run = asyncio.create_task(pipeline.run(stop))
    await asyncio.sleep(0.05)
    await pipeline.feed(readings)
    while pipeline._queue.qsize():
        await asyncio.sleep(0.01)
    stop.set()
    await run
    with sqlite3.connect(state / LEDGER_FILE) as db:
        rows = db.execute(
            "SELECT machine, measurement, SUM(value) FROM windows GROUP BY machine, measurement"
        ).fetchall()
    sums = {(m, k): v for m, k, v in rows}
    points = [
        json.loads(line)
        for file in (state / "points").glob("*.jsonl")
        for line in file.read_text().splitlines()
    ]
    # The ledger holds exactly the machine windows the file sink got (shift windows are not kept).
    written = {
        ("mill", "oee"): sum(
            p["fields"]["good_count"]
            for p in points
            if p["measurement"] == "oee"
            and p["tags"].get("machine") == "mill"
            and p["tags"]["window"] != "shift"
        ),
        ("mill", "energy"): sum(
            p["fields"]["kwh"]
            for p in points
            if p["measurement"] == "energy" and p["tags"].get("machine") == "mill"
        ),
    }
    # 10 tubes per hour: the closed hours are whole multiples of 10.
    assert written[("mill", "oee")] >= 10
    assert written[("mill", "oee")] % 10 == 0
    assert sums[("mill", "oee")] == written[("mill", "oee")]
    assert sums[("mill", "energy")] == written[("mill", "energy")]
    assert ("furnace", "carbon") in sums
    cbam = [p for p in points if p["measurement"] == "cbam"]
    assert [p["tags"]["good"] for p in cbam] == ["welded-tube"]
    # Each tube is 0.5 t; the day is 2026-03-02 local (08:00 onwards in Ho Chi Minh City).
    assert cbam[0]["fields"]["activity_t"] == written[("mill", "oee")] * 0.5
    assert cbam[0]["time"] == "2026-03-01T17:00:00Z"
