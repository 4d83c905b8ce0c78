"""Ticks: a quiet machine's windows close on its source's clock; late data still corrects them."""

from __future__ import annotations

import pytest
from support import T0, build_engine, plant_text, reading, select

from runtimes.idle import IdleTicker
from streams.engine import ReadingRejected

US_PER_MIN = 60_000_000
T0_US = int(T0.timestamp()) * 1_000_000


def at(minutes: float) -> int:
    return T0_US + int(minutes * US_PER_MIN)


def test_a_tick_closes_the_windows_of_a_quiet_machine_and_invents_nothing() -> None:
    engine = build_engine(plant_text(calendar=None))  # planned 24/7, 5 s allowed lateness
    engine.push(reading(0, "state", "running"))
    engine.push(reading(0, "total_count", 100))
    engine.tick("m1", at(0.5))  # newer than the data, but no window can close yet
    assert not select(engine.take_points(), "oee")
    engine.tick("m1", at(5))
    windows = select(engine.take_points(), "oee", window="1m")
    # The tick stands at 08:04:55 (5 s of lateness behind the clock): the windows ending by then close.
    assert [p.time.strftime("%H:%M") for p in windows] == ["08:00", "08:01", "08:02", "08:03"]
    assert all(p.fields["run_s"] == 60 and p.fields["total_count"] == 0 for p in windows)
    assert engine.stats["readings"] == 2
    assert engine.stats["ticks"] == 2


def test_data_older_than_a_tick_corrects_what_it_closed() -> None:
    engine = build_engine(plant_text(calendar=None))
    engine.push(reading(0, "state", "running"))
    engine.push(reading(0, "total_count", 100))
    engine.tick("m1", at(5))
    engine.take_points()
    engine.push(reading(2.5, "total_count", 160))  # 60 pieces, arriving after the tick closed 08:02
    engine.tick("m1", at(6))
    corrected = {p.time.strftime("%H:%M"): p for p in select(engine.take_points(), "oee", window="1m")}
    assert corrected["08:02"].fields["total_count"] == 60
    assert corrected["08:02"].fields["revision"] == 1
    assert engine.stats["late_readings"] == 1


def test_a_machine_without_data_is_not_ticked_and_old_ticks_are_ignored() -> None:
    engine = build_engine(plant_text(calendar=None))
    engine.tick("m1", at(5))  # nothing seen yet: the time stays unknown
    assert engine.stats["ticks"] == 0
    engine.push(reading(3, "state", "running"))
    engine.tick("m1", at(3))  # not newer than what the machine has seen
    assert engine.stats["ticks"] == 0
    assert not engine.take_points()


def test_ticks_survive_a_checkpoint() -> None:
    text = plant_text(calendar=None)
    engine = build_engine(text)
    engine.push(reading(0, "state", "running"))
    engine.tick("m1", at(3))
    engine.push(reading(3.01, "state", "down"))  # held: within the lateness of the tick's clock
    saved = engine.checkpoint()
    restored = build_engine(text)
    restored.restore(saved)
    restored.tick("m1", at(6))
    windows = {p.time.strftime("%H:%M"): p.fields for p in select(restored.take_points(), "oee", window="1m")}
    assert windows["08:03"]["down_s"] == 60 - 0.6
    assert restored.stats["ticks"] == 2


def test_the_idle_ticker_follows_each_opcua_sources_clock() -> None:
    ticks: list[tuple[str, int]] = []
    idle_us = US_PER_MIN
    ticker = IdleTicker(lambda machine, ts: ticks.append((machine, ts)), idle_us, ["plc"])

    def seen(machine: str, minutes: float, source: str = "plc") -> None:
        ticker.seen(source, machine, at(minutes))

    seen("oven", 0)
    seen("press", 0.5)
    seen("meter", 0, source="meters")  # MQTT: its own clocks, never ticked
    assert ticker.tick_quiet() == 0
    seen("press", 1.5)  # the source clock reaches 08:01:30; the oven has been quiet for 90 s
    assert ticker.tick_quiet() == 1
    assert ticks == [("oven", at(1.5) - idle_us // 2)]
    ticker.forget("plc")  # disconnected: the gap stays unknown
    assert ticker.tick_quiet() == 0


def test_after_a_restore_data_behind_the_released_time_but_after_the_checkpoint_corrects() -> None:
    text = plant_text(calendar=None)
    engine = build_engine(text)
    engine.push(reading(0, "state", "running"))
    for minutes, count in ((0, 100), (2, 220), (2.5, 250)):
        engine.push(reading(minutes, "total_count", count))
    saved = engine.checkpoint()  # released up to 08:02 (08:02:30 waits out the 5 s lateness)
    restored = build_engine(text)
    restored.restore(saved)
    restored.push(reading(4, "total_count", 340))
    restored.tick("m1", at(6))  # closes 08:00 to 08:04 (the tick stands at 08:05:55)
    restored.take_points()
    restored.push(reading(3, "total_count", 280))  # behind the released time, after the checkpoint
    assert restored.stats["late_readings"] == 1
    with pytest.raises(ReadingRejected) as refused:
        restored.push(reading(1, "total_count", 160))  # before the checkpoint: its history is gone
    # Not "too late" (08:01 is well inside the hour's horizon): it was counted before the restart.
    assert refused.value.reason == "before_restart"
    assert "already counted before the restart" in str(refused.value)


def test_a_late_counter_value_beyond_the_last_one_is_counted_not_refused() -> None:
    # After a restart, a counter's latest change can arrive stamped before the restored base (it
    # happened before the checkpoint's released time but reached the pipeline after it). Refused,
    # its increase would be lost if the counter never changed again.
    text = plant_text(calendar=None)
    engine = build_engine(text)
    engine.push(reading(0, "state", "running"))
    for minutes, count in ((0, 100), (2, 220), (2.5, 250)):
        engine.push(reading(minutes, "total_count", count))
    restored = build_engine(text)
    restored.restore(engine.checkpoint())
    restored.push(reading(4, "total_count", 340))
    restored.tick("m1", at(6))
    restored.push(reading(1, "total_count", 360))  # before the base, higher than anything seen
    assert restored.stats["late_cumulative_retimed"] == 1
    with pytest.raises(ReadingRejected) as refused:
        restored.push(reading(1.5, "total_count", 200))  # a stale value: nothing new, refused
    assert refused.value.reason == "before_restart"
    restored.flush()
    windows = select(restored.take_points(), "oee", window="1m")
    # The first engine closed no window before its checkpoint, so the restored one holds them all:
    # every piece from the first sample (100) to the late 360, the 20 beyond 340 included.
    assert sum(p.fields["total_count"] for p in {p.time: p for p in windows}.values()) == 360 - 100
