"""The embedded runtime: the checkpoint file round-trips; the GC runs less often while it runs."""

from __future__ import annotations

import asyncio
import gc
import json
import os
from datetime import timedelta
from pathlib import Path

import pytest
from support import reading

from collectors.opcua import OpcUaCollector
from plantstream.records import EPOCH, Point, ReadingTuple
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
    assert saved.pop("delivered") == []  # no OPC UA source reads history back in this plant
    assert saved == json.loads(json.dumps(first.engine.checkpoint()))
    assert any(machine["held"] for machine in saved["machines"].values())

    second = EmbeddedPipeline(plant, spec, tmp_path)
    second._restore()
    assert second.stats.restored_from == str(tmp_path / CHECKPOINT)
    assert json.loads(json.dumps(second.engine.checkpoint())) == saved
    second.sink.close()


OPCUA_SOURCE = """
sources:
  - type: opcua
    id: plc
    endpoint: opc.tcp://127.0.0.1:4840
    security: {mode: None, allow_insecure: true}
    groups:
      - tags:
          - {node: "nsu=urn:x;s=m1.good", machine: m1, signal: good_count}
          - {node: "nsu=urn:x;s=m1.power", machine: m1, signal: power_kw}
"""


def _with_opcua(tmp_path: Path) -> Path:
    path = tmp_path / "plant.yaml"
    path.write_text(MINIMAL.read_text(encoding="utf-8") + OPCUA_SOURCE, encoding="utf-8")
    return path


def test_the_checkpoint_tells_a_history_source_what_was_delivered_before_the_restart(tmp_path: Path) -> None:
    plant, spec = load_and_resolve(_with_opcua(tmp_path))
    state = tmp_path / "state"
    state.mkdir()
    first = EmbeddedPipeline(plant, spec, state)
    readings = [
        reading(1, "good_count", 10).model_copy(update={"source": "plc"}),
        reading(3, "good_count", 30).model_copy(update={"source": "plc"}),
        reading(2, "good_count", 20).model_copy(update={"source": "plc"}),  # older: not the newest
        reading(2, "power_kw", 5.0).model_copy(update={"source": "plc"}),
        reading(9, "power_kw", 6.0),  # from no source that backfills: not counted
    ]
    first._take(readings)
    first._checkpoint()
    first.sink.close()
    saved = json.loads((state / CHECKPOINT).read_text(encoding="utf-8"))
    minute = 60_000_000  # µs
    start = (reading(0, "good_count", 0).ts - EPOCH) // timedelta(microseconds=1)
    assert sorted(saved["delivered"]) == [
        ["m1", "good_count", start + 3 * minute],
        ["m1", "power_kw", start + 2 * minute],
    ]

    second = EmbeddedPipeline(plant, spec, state)
    second._restore()
    [collector] = second.collectors
    assert isinstance(collector, OpcUaCollector)
    delivered = {item.tag.signal: item.delivered for item in collector._items}
    assert delivered == {"good_count": reading(3, "x", 0).ts, "power_kw": reading(2, "x", 0).ts}
    second.sink.close()


@pytest.mark.parametrize(
    "garbage",
    [
        "not a list",
        [["m1", "good_count"]],
        [["m1", "good_count", "08:00"]],
        [["m1", "good_count", 10**30]],  # no time at all
        [["m1", "good_count", True]],
        [[1, "good_count", 5]],
    ],
)
def test_a_garbage_delivered_entry_in_the_checkpoint_is_skipped(tmp_path: Path, garbage: object) -> None:
    plant, spec = load_and_resolve(_with_opcua(tmp_path))
    state = tmp_path / "state"
    state.mkdir()
    first = EmbeddedPipeline(plant, spec, state)
    first._checkpoint()
    first.sink.close()
    saved = json.loads((state / CHECKPOINT).read_text(encoding="utf-8"))
    saved["delivered"] = garbage
    (state / CHECKPOINT).write_text(json.dumps(saved), encoding="utf-8")
    second = EmbeddedPipeline(plant, spec, state)
    second._restore()
    assert second.stats.restored_from is not None  # the engine's state is restored all the same
    [collector] = second.collectors
    assert isinstance(collector, OpcUaCollector)
    assert all(item.delivered is None for item in collector._items)
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


async def test_the_health_line_names_lag_drops_queue_and_refusals(tmp_path: Path) -> None:
    plant, spec = load_and_resolve(MINIMAL)
    pipeline = EmbeddedPipeline(plant, spec, tmp_path)
    pipeline.stats.lag_s = {"plc": 0.25, "meters": 1.5}  # the worst source counts
    pipeline.stats.rejected["too_late"] += 2
    assert pipeline.health_line() == "lag 1.50 s, 0 dropped, 0 queued, 2 refused"
    pipeline.sink.close()


async def test_a_background_checkpoint_forces_the_points_to_disk_before_it_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plant, spec = load_and_resolve(MINIMAL)
    pipeline = EmbeddedPipeline(plant, spec, tmp_path)
    pipeline.state_dir.mkdir(parents=True, exist_ok=True)
    pipeline.engine.push(reading(0, "power_kw", 1.0))
    pipeline.sink.write([Point(measurement="m", tags={}, fields={"x": 1}, time=reading(0, "x", 1).ts)])
    order: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (order.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(os, "replace", lambda a, b: (order.append("rename"), real_replace(a, b))[1])
    await pipeline._checkpoint_in_background()
    # The points file, then the checkpoint's temporary file, then the rename, then the folder.
    assert order == ["fsync", "fsync", "rename", "fsync"]
    assert (tmp_path / CHECKPOINT).exists()
    assert pipeline.stats.checkpoints == 1
    pipeline.sink.close()


def test_metrics_carry_every_event_the_engine_counts(tmp_path: Path) -> None:
    plant, spec = load_and_resolve(MINIMAL)
    pipeline = EmbeddedPipeline(plant, spec, tmp_path)
    pipeline.engine.push(reading(0, "state", "running"))
    for minutes, count in ((0, 100), (2, 220), (3, 280)):  # 08:02 is released (5 s lateness)
        pipeline.engine.push(reading(minutes, "total_count", count))
    pipeline.engine.push(reading(1, "state", "down"))  # behind the released time: a correction
    metrics = pipeline.metrics()
    assert "plantstream_late_readings_total 1" in metrics
    assert 'plantstream_engine_events_total{event="late_readings"} 1' in metrics
    assert 'event="readings"' not in metrics  # plantstream_readings_total has them
    pipeline.sink.close()


def test_a_reading_a_year_ahead_of_its_receipt_is_dead_lettered_as_future(tmp_path: Path) -> None:
    from datetime import timedelta

    plant, spec = load_and_resolve(MINIMAL)
    pipeline = EmbeddedPipeline(plant, spec, tmp_path)
    ahead = reading(365 * 24 * 60, "total_count", 60)
    received = ahead.ts - timedelta(days=365)  # the pipeline's clock when it arrived
    pipeline._take([reading(0, "total_count", 0).model_copy(update={"ingest_ts": received})])
    pipeline._take([ahead.model_copy(update={"ingest_ts": received})])
    assert pipeline.stats.rejected == {"future": 1}
    assert 'plantstream_rejected_total{reason="future"} 1' in pipeline.metrics()
    pipeline.sink.close()


def test_a_held_reading_refused_on_release_is_dead_lettered_as_itself(tmp_path: Path) -> None:
    # The run holds readings 5 s for ordering: a register dip shows only when a later reading
    # releases it. The letter names the dip, not the reading that happened to release it.
    plant, spec = load_and_resolve(MINIMAL)
    pipeline = EmbeddedPipeline(plant, spec, tmp_path)
    dip = reading(1, "energy_kwh", 2.5)
    pipeline._take([reading(0, "energy_kwh", 3.0), dip])
    assert pipeline.stats.rejected == {}
    pipeline._take([reading(2, "state", "running")])  # the watermark passes 08:01: the dip is released
    assert pipeline.stats.rejected == {"implausible": 1}
    [letter] = [
        json.loads(line)
        for f in (tmp_path / "deadletter").glob("*.jsonl")
        for line in f.read_text().splitlines()
    ]
    assert letter["where"] == "m1.energy_kwh"
    assert json.loads(letter["raw"])["value"] == 2.5
    assert json.loads(letter["raw"])["ts"] == "2026-03-02T08:01:00Z"
    pipeline.sink.close()


async def test_post_reason_checks_against_the_engine_and_queues_a_reading_at_the_stops_start(
    tmp_path: Path,
) -> None:
    plant_file = tmp_path / "plant.yaml"
    plant_file.write_text(
        MINIMAL.read_text(encoding="utf-8")
        + "\nreasons:\n  groups: {mechanical: breakdown}\n"
        + "  codes:\n    7: {reason: jam, group: mechanical}\n",
        encoding="utf-8",
    )
    plant, spec = load_and_resolve(plant_file)
    pipeline = EmbeddedPipeline(plant, spec, tmp_path / "state")
    # m1 runs, is down 08:01-08:02, runs again; the watermark (5 s lateness) passes 08:02.
    for minute, state in ((0, "running"), (1, "down"), (2, "running"), (3, "running")):
        pipeline.engine.push(reading(minute, "state", state))
    [stop] = [p for p in pipeline.engine.take_points() if p.measurement == "stop"]
    assert stop.tags["reason"] == "unassigned"

    async def post(**fields: object) -> tuple[int, dict[str, object]]:
        body = {"machine": "m1", "at": "2026-03-02T08:01:20Z", "reason": "jam", **fields}
        return await pipeline.operator_reason(json.dumps(body).encode())

    refused = [
        (await pipeline.operator_reason(b"\x00garbage"))[1]["error"],
        (await post(reason="jamm"))[1]["error"],
        (await post(at="2026-03-02T08:02:30Z"))[1]["error"],
        (await post(machine="m9"))[1]["error"],
    ]
    assert refused == ["bad_json", "unknown_reason", "no_stop", "unknown_machine"]
    assert pipeline._queue.qsize() == 0  # nothing queued for a refusal
    status, answer = await post()
    assert (status, answer["stop_start"], answer["code"], answer["reason"]) == (
        202,
        "2026-03-02T08:01:00Z",
        "7",
        "jam",
    )
    [queued] = pipeline._queue.get_nowait()
    assert (queued.signal, queued.value, queued.ts, queued.source) == (
        "@operator_reason",
        "7",
        stop.time,
        "operator",
    )
    pipeline._take([queued])
    [again] = [p for p in pipeline.engine.take_points() if p.measurement == "stop"]
    assert (again.tags["reason"], again.fields["cause"], again.fields["revision"]) == ("jam", "operator", 1)
    pipeline.sink.close()


async def test_the_processor_lets_other_tasks_run_between_batches_of_a_full_queue(tmp_path: Path) -> None:
    plant, spec = load_and_resolve(MINIMAL)
    pipeline = EmbeddedPipeline(plant, spec, tmp_path)
    # Three batches of 1 000 readings (one hand-over each) wait in the queue before it starts.
    await pipeline.feed([reading(k / 1000, "power_kw", 1.0) for k in range(3000)])
    turns = 0

    async def other_task() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    seen: list[int] = []
    pipeline.sink.on_write = lambda _batch, _wall: seen.append(turns)
    other = asyncio.create_task(other_task())
    stop = asyncio.Event()
    task = asyncio.create_task(pipeline.run(stop))
    while len(seen) < 3:
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(task, 30)
    other.cancel()
    # Each batch's points were written in a turn of their own: the other task ran in between.
    first, second, third = seen[:3]
    assert first < second < third


async def test_without_files_readings_the_raw_readings_reach_the_views_but_not_the_points_files(
    tmp_path: Path,
) -> None:
    path = tmp_path / "plant.yaml"
    path.write_text(MINIMAL.read_text(encoding="utf-8") + "files:\n  readings: false\n", encoding="utf-8")
    plant, spec = load_and_resolve(path)
    seen: list[Point] = []
    pipeline = EmbeddedPipeline(plant, spec, tmp_path / "state", on_points=seen.extend)
    # Four minutes of a running machine: its first windows close; the readings are raw points.
    await pipeline.feed([reading(0, "state", "running")] + [reading(m, "power_kw", 1.0) for m in range(4)])
    stop = asyncio.Event()
    task = asyncio.create_task(pipeline.run(stop))

    async def windows_written() -> None:
        while not any(p.measurement != "reading" for p in seen):
            await asyncio.sleep(0.01)

    await asyncio.wait_for(windows_written(), 30)
    stop.set()
    await asyncio.wait_for(task, 30)
    assert [p.tags["signal"] for p in seen if p.measurement == "reading"] == ["state"] + 4 * ["power_kw"]
    written = [
        json.loads(line)["measurement"]
        for day in (tmp_path / "state" / "points").iterdir()
        for line in day.read_text(encoding="utf-8").splitlines()
    ]
    assert written
    assert "reading" not in written


def test_readings_taken_as_tuples_are_taken_as_the_readings_they_stand_for(tmp_path: Path) -> None:
    # The collectors hand the runtime tuples (records.ReadingTuple); tools hand it Readings.
    # Either way: the same rows, points, counts and dead letters (the letter's raw is the
    # reading's JSON, so a refused tuple is made a Reading for it).
    plant, spec = load_and_resolve(MINIMAL)
    received = reading(0, "x", 0).ts + timedelta(seconds=30)
    batches = [
        [reading(0, "energy_kwh", 3.0), reading(0, "state", "running"), reading(0.5, "power_kw", 12.5)],
        [reading(1, "energy_kwh", 2.5), reading(1, "no_such_signal", 1)],  # a dip; an unknown signal
        [reading(2, "state", "down").model_copy(update={"ingest_ts": received, "source": "plc", "seq": 7})],
        [
            reading(3, "total_count", 180),
            reading(4, "state", "running"),
            reading(4, "power_kw", 12.0),
            reading(4, "energy_kwh", 3.5),
        ],
        # Past the allowed lateness (5 s): what came before is released, windows close.
        [reading(6, "total_count", 360), reading(6, "power_kw", 12.0), reading(6, "energy_kwh", 4.0)],
    ]
    outcomes = []
    for kind in ("reading", "tuple"):
        pipeline = EmbeddedPipeline(plant, spec, tmp_path / kind)
        rows = []
        for batch in batches:
            taken = (
                batch
                if kind == "reading"
                else [ReadingTuple(*(getattr(r, f) for f in ReadingTuple._fields)) for r in batch]
            )
            rows += pipeline._take(list(taken))
        letters = [
            {key: value for key, value in json.loads(line).items() if key != "ts"}
            for f in sorted((tmp_path / kind / "deadletter").glob("*.jsonl"))
            for line in f.read_text().splitlines()
        ]
        outcomes.append((rows, pipeline.engine.take_points(), dict(pipeline.stats.rejected), letters))
        pipeline.sink.close()
    assert outcomes[0] == outcomes[1]
    rows, points, rejected, letters = outcomes[0]
    assert len(rows) == 12  # every reading of a configured signal is recorded as a row
    assert points
    assert rejected == {"unknown_signal": 1, "implausible": 1}
    assert [letter["reason"] for letter in letters] == ["unknown_signal", "implausible"]
    assert json.loads(letters[0]["raw"])["signal"] == "no_such_signal"
