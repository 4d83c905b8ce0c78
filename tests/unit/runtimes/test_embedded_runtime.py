"""The embedded runtime: the checkpoint file round-trips; queued readings are written in batches."""

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


async def test_readings_queued_together_are_written_in_batches_of_at_most_1000(tmp_path: Path) -> None:
    plant, spec = load_and_resolve(MINIMAL)
    pipeline = EmbeddedPipeline(plant, spec, tmp_path, queue_size=2_000)
    batches: list[list[float]] = []
    pipeline.sink.on_write = lambda batch, _wall: batches.append(
        [float(p.fields["value"]) for p in batch if p.measurement == "reading"]
    )
    for k in range(1_500):  # queued before the processor runs: it finds them all waiting
        pipeline._queue.put_nowait(reading(k / 600, "power_kw", float(k)))
    stop = asyncio.Event()
    task = asyncio.create_task(pipeline.run(stop))
    while pipeline.stats.readings < 1_500:
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(task, 30)
    reading_batches = [b for b in batches if b]
    assert [len(b) for b in reading_batches] == [1_000, 500]
    assert [v for b in reading_batches for v in b] == [float(k) for k in range(1_500)]  # in order


async def test_the_gc_runs_less_often_while_the_pipeline_runs_and_as_before_after(tmp_path: Path) -> None:
    plant, spec = load_and_resolve(MINIMAL)
    pipeline = EmbeddedPipeline(plant, spec, tmp_path)
    before = gc.get_threshold()
    seen: list[tuple[int, int, int]] = []
    pipeline.sink.on_write = lambda _batch, _wall: seen.append(gc.get_threshold())
    pipeline._queue.put_nowait(reading(0, "power_kw", 1.0))
    stop = asyncio.Event()
    task = asyncio.create_task(pipeline.run(stop))
    while not seen:
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(task, 30)
    assert seen[0] == (max(before[0], GC_THRESHOLD), *before[1:])
    assert gc.get_threshold() == before
