"""The embedded runtime: the checkpoint file round-trips; the GC runs less often while it runs."""

from __future__ import annotations

import asyncio
import gc
import json
from pathlib import Path

from support import reading

from runtimes.embedded import CHECKPOINT, EmbeddedPipeline
from runtimes.gc_tuning import GC_THRESHOLD
from runtimes.plant import load_and_resolve

MINIMAL = Path(__file__).resolve().parents[3] / "examples" / "minimal.yaml"


def test_a_checkpoint_round_trips_through_the_file_and_a_restart(tmp_path: Path) -> None:
    plant, spec = load_and_resolve(MINIMAL)
    first = EmbeddedPipeline(plant, spec, tmp_path)
    # Closed windows, an open one and readings still held for the allowed lateness (5 s).
    for minute in range(4):
        first.engine.push(reading(minute, "total_count", 60 * minute))
        first.engine.push(reading(minute, "power_kw", 12.5 + minute))
    first.engine.push(reading(0, "state", "running"))
    first.engine.push(reading(3.05, "state", "down"))
    first.engine.take_points()
    first._checkpoint()
    first.sink.close()
    saved = json.loads((tmp_path / CHECKPOINT).read_text(encoding="utf-8"))
    assert saved == json.loads(json.dumps(first.engine.checkpoint()))
    assert any(machine["held"] for machine in saved["machines"].values())

    second = EmbeddedPipeline(plant, spec, tmp_path)
    second._restore()
    assert second.stats.restored_from == str(tmp_path / CHECKPOINT)
    assert json.loads(json.dumps(second.engine.checkpoint())) == saved
    second.sink.close()


async def test_the_gc_runs_less_often_while_the_pipeline_runs_and_as_before_after(tmp_path: Path) -> None:
    plant, spec = load_and_resolve(MINIMAL)
    pipeline = EmbeddedPipeline(plant, spec, tmp_path)
    before = gc.get_threshold()
    seen: list[tuple[int, int, int]] = []
    pipeline.sink.on_write = lambda _batch, _wall: seen.append(gc.get_threshold())
    await pipeline.feed([reading(0, "power_kw", 1.0)])
    stop = asyncio.Event()
    task = asyncio.create_task(pipeline.run(stop))
    while not seen:
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(task, 30)
    assert seen[0] == (max(before[0], GC_THRESHOLD), *before[1:])
    assert gc.get_threshold() == before
