"""The engine's view of the current shift so far: closed windows plus the open one, state unchanged."""

from __future__ import annotations

import json

import pytest
from support import a_morning, build_engine, plant_text, reading

from streams.calendar import US
from streams.engine import Engine

T0_US = 1_772_438_400 * US
"""2026-03-02 08:00 UTC (the start of the minimal plant's day shift), as the readings of ``support``."""


def fed(engine: Engine, *readings_: tuple[float, str, float | str]) -> Engine:
    for minutes, signal, value in readings_:
        engine.push(reading(minutes, signal, value))
    return engine


def with_a_morning(engine: Engine) -> Engine:
    """``engine`` fed :func:`support.a_morning` up to 08:03:15 (without its last reading)."""
    for item in a_morning()[:-1]:
        engine.push(item)
    return engine


def test_closed_windows_and_the_open_one_up_to_the_released_time() -> None:
    engine = with_a_morning(build_engine(plant_text(), reorder=False))
    now = engine.shift_so_far("m1")
    assert now is not None
    result, through = now
    assert through == T0_US + 195 * US  # 08:03:15, the last reading
    assert (result.kind, result.shift, result.start) == ("shift", "day", T0_US)
    assert result.end == T0_US + 8 * 3600 * US  # the shift's bounds: 08:00-16:00
    e = result.elements
    # Three closed minutes and 15 s of the open one: 195 s planned, of which 30 s down.
    assert e.scheduled == 195 * US
    assert e.run == (60 + 30 + 60 + 15) * US
    assert e.down == 30 * US
    assert e.unknown == 0
    assert (e.total, e.good, e.reject) == (180, 175, 5)
    assert e.ideal == 180 * US  # 180 pieces x 1 s
    # Reading it changes nothing: the same again, and the windows close as before.
    assert engine.shift_so_far("m1") == now


def test_the_figures_survive_a_checkpoint_and_a_restore() -> None:
    first = with_a_morning(build_engine(plant_text(), reorder=False))
    saved = json.loads(json.dumps(first.checkpoint()))
    second = build_engine(plant_text(), reorder=False)
    second.restore(saved)
    assert second.shift_so_far("m1") == first.shift_so_far("m1")
    # And they continue: 20 more pieces at 08:04.
    fed(second, (4, "total_count", 200), (4, "good_count", 195))
    now = second.shift_so_far("m1")
    assert now is not None
    assert (now[0].elements.total, now[0].elements.good) == (200, 195)
    assert now[0].elements.run == (60 + 30 + 60 + 60) * US


def test_held_readings_are_not_in_the_figures_until_released() -> None:
    engine = with_a_morning(build_engine(plant_text(lateness=5)))
    now = engine.shift_so_far("m1")
    assert now is not None
    # The last reading (08:03:15) waits for the 5 s lateness: released up to 08:02:30.
    assert now[1] == T0_US + 150 * US
    assert now[0].elements.total == 150


def test_a_stop_that_may_still_be_a_micro_stop_is_left_out_until_its_length_is_known() -> None:
    engine = fed(
        build_engine(plant_text(micro=60), reorder=False),
        (0, "state", "running"),
        (1, "state", "idle"),
        (1.5, "total_count", 0),  # 30 s into the stop: it may still turn out a micro-stop
    )
    now = engine.shift_so_far("m1")
    assert now is not None
    assert now[1] == T0_US + 60 * US  # up to where the stop began
    assert now[0].elements.scheduled == 60 * US
    assert now[0].elements.run == 60 * US


def test_no_figures_before_any_reading_without_a_calendar_or_between_shifts() -> None:
    assert build_engine(plant_text()).shift_so_far("m1") is None
    always = fed(build_engine(plant_text(calendar=None), reorder=False), (0, "state", "running"))
    assert always.shift_so_far("m1") is None
    # 16:00 ends the day shift: once its windows have closed, no shift is running.
    evening = fed(build_engine(plant_text(), reorder=False), (0, "state", "running"), (481, "state", "off"))
    assert evening.shift_so_far("m1") is None
    with pytest.raises(KeyError):
        evening.shift_so_far("nobody")
