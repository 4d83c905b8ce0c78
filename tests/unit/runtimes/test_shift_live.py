"""The shift so far from the pipeline's state: continued after a restart, the same in the demo's
view, on ``/stream`` and in ``tail --table``; and the one-line status of a run without a table."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import pytest
from support import a_morning, reading

from plantstream.records import Point, Reading
from runtimes.embedded import EmbeddedPipeline
from runtimes.live import LiveView
from runtimes.plant import load_and_resolve
from runtimes.shift_so_far import MEASUREMENT, shift_points
from runtimes.tail import Filters, follow
from streams.engine import Engine

MINIMAL = Path(__file__).resolve().parents[3] / "examples" / "minimal.yaml"


async def run_through(pipeline: EmbeddedPipeline, readings: list[Reading], then: asyncio.Event) -> None:
    """Run ``pipeline`` until it has taken ``readings`` and ``then`` is set."""
    await pipeline.feed(readings)
    stop = asyncio.Event()
    task = asyncio.create_task(pipeline.run(stop))
    while pipeline.stats.readings < len(readings):
        await asyncio.sleep(0.01)
    await then.wait()
    stop.set()
    await asyncio.wait_for(task, 30)


def set_now() -> asyncio.Event:
    event = asyncio.Event()
    event.set()
    return event


async def test_a_restart_continues_the_shift_from_the_checkpoint(tmp_path: Path) -> None:
    plant, spec = load_and_resolve(MINIMAL)
    first: list[list[Point]] = []
    await run_through(EmbeddedPipeline(plant, spec, tmp_path, on_shift=first.append), a_morning(), set_now())
    [shift] = first[-1]  # once more after the last checkpoint
    assert shift.measurement == MEASUREMENT
    assert shift.tags == {"site": "demo", "line": "l1", "machine": "m1", "shift": "day"}
    assert (shift.fields["good_count"], shift.fields["total_count"]) == (175, 180)

    second: list[list[Point]] = []
    # The PLC's counters went on to 260 made, 250 good, while the pipeline was stopped.
    more = [reading(5, "total_count", 260), reading(5, "good_count", 250), reading(5.5, "state", "running")]
    await run_through(EmbeddedPipeline(plant, spec, tmp_path, on_shift=second.append), more, set_now())
    assert second[0] == first[-1]  # restored, before any reading: where the first run stopped
    [shift] = second[-1]
    # Continued, not reset: 175 + (250 - 175) good, as the PLC says.
    assert (shift.fields["good_count"], shift.fields["total_count"]) == (250, 260)
    assert shift.fields["through"] == "2026-03-02T08:05:00Z"


async def test_the_demo_view_the_stream_and_tail_table_show_the_same_shift(tmp_path: Path) -> None:
    plant, spec = load_and_resolve(MINIMAL)
    demo = LiveView(spec)
    handed: list[list[Point]] = []

    def on_shift(points: list[Point]) -> None:
        handed.append(points)
        demo.on_shift(points)

    pipeline = EmbeddedPipeline(
        plant, spec, tmp_path, on_shift=on_shift, on_reading=demo.on_reading, http_port=0, shift_every_s=0.02
    )
    tail = LiveView(spec)
    streamed: list[dict[str, object]] = []
    done = asyncio.Event()

    async def follow_the_stream() -> None:
        # Every reading taken, then an update of the shift figures: the state no longer changes.
        while pipeline.stats.readings < len(a_morning()) or len(handed) < 3:
            await asyncio.sleep(0.01)
        assert pipeline.http is not None

        def show(record: dict[str, object], _text: str) -> None:
            streamed.append(record)
            tail.on_record(record)

        # A new listener first gets the machine's state and its shift so far (as tail --table).
        url = f"http://127.0.0.1:{pipeline.http.port}/stream"
        await asyncio.wait_for(follow(url, Filters(shift_so_far=True), count=2, show=show), 60)
        done.set()

    follower = asyncio.create_task(follow_the_stream())
    await run_through(pipeline, a_morning(), done)
    await follower
    [record] = [r for r in streamed if r.get("measurement") == MEASUREMENT]
    [latest] = handed[-1]
    assert record == json.loads(latest.to_json())
    # The arithmetic (elements summed, 195 s planned through 08:03:15): A = 165 / 195, P = 180 ideal
    # seconds / 165 s run, Q = 175 / 180, OEE = A x P x Q = 175 / 195.
    assert demo.kpis("m1") == pytest.approx(
        {
            "availability": 165 / 195,
            "performance": 180 / 165,
            "quality": 175 / 180,
            "oee": 175 / 195,
            "nee": 175 / 195,
        }
    )
    assert tail.kpis("m1") == demo.kpis("m1")
    assert tail.shift_summary() == demo.shift_summary()
    assert demo.shift_summary() == [
        "m1: shift day so far: OEE 89.7%, 175 good of 180, 0.00 kWh, 0.00 kg CO2e"
    ]


async def test_a_run_without_a_table_says_how_it_goes_every_few_seconds(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    plant, spec = load_and_resolve(MINIMAL)
    pipeline = EmbeddedPipeline(plant, spec, tmp_path, status_every_s=0.02)
    caplog.set_level(logging.INFO, logger="plantstream.runtime")

    async def two_lines() -> None:
        while sum("windows closed" in r.message for r in caplog.records) < 2:
            await asyncio.sleep(0.01)

    waiting = asyncio.create_task(two_lines())
    went = asyncio.Event()
    waiting.add_done_callback(lambda _: went.set())
    await run_through(pipeline, a_morning(), went)
    lines = [r.message for r in caplog.records if "windows closed" in r.message]
    # Periodic lines while it runs, and a last one after it stopped with everything taken:
    # 12 readings; 08:00, 08:01 and 08:02 closed; the line's OEE as in the test above.
    assert len(lines) >= 3
    assert lines[-1] == (
        "12 readings, 3 windows closed (0 re-emitted), 0 late readings, 0 dead letters; "
        "shift so far: demo/l1 OEE 89.7% (A 84.6%, P 109.1%, Q 97.2%)"
    )


def test_the_record_says_how_much_of_the_shift_came_before_the_machines_first_reading() -> None:
    _, spec = load_and_resolve(MINIMAL)
    engine = Engine(spec)
    for minutes in (30, 31, 33):  # the day shift began at 08:00; 08:33 is held (5 s lateness)
        engine.push(reading(minutes, "state", "running"))
    [record] = shift_points(engine)
    assert record.fields["through"] == "2026-03-02T08:31:00Z"  # the last reading released
    # 08:00-08:30 is in no window: not in the figures, and said so.
    assert record.fields["unobserved_s"] == 1800.0
    assert record.fields["scheduled_s"] == 60.0  # 08:30 to 08:31
    assert record.fields["availability"] == 1.0


def test_the_record_carries_the_open_stop_and_its_reason_while_the_machine_is_stopped() -> None:
    _, spec = load_and_resolve(MINIMAL)
    engine = Engine(spec)
    for minutes, state in ((30, "running"), (31, "down"), (32, "down"), (33, "down")):
        engine.push(reading(minutes, "state", state))
    [record] = shift_points(engine)  # released to 08:32 (08:33 is held: 5 s lateness)
    # MINIMAL has no reason signal and no tree: the open stop is unassigned.
    assert {k: v for k, v in record.fields.items() if k.startswith("stop_")} == {
        "stop_since": "2026-03-02T08:31:00Z",
        "stop_category": "down",
        "stop_reason": "unassigned",
        "stop_reason_group": "unassigned",
        "stop_cause": "first",
    }
    engine.push(reading(31, "@operator_reason", "4711"))  # an operator's code, not in the (empty) tree
    [record] = shift_points(engine)
    assert (record.fields["stop_reason"], record.fields["stop_cause"]) == ("code 4711", "operator")
    for minutes in (34, 35):
        engine.push(reading(minutes, "state", "running"))
    [record] = shift_points(engine)
    assert not any(k.startswith("stop_") for k in record.fields)
