"""Where the demo's simulated clock starts: always in a shift of the demo line, never before saved state."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from plantstream.plant import load_plant
from plantstream.records import Reading
from runtimes.cli import pipeline as cli
from runtimes.embedded import CHECKPOINT
from runtimes.simulator import DEMO_PLANT
from runtimes.simulator.model import PlantSimulation
from streams.calendar import US, Schedule
from streams.config import build_spec
from streams.engine import Engine


def _schedule() -> Schedule:
    plant = load_plant(DEMO_PLANT, environ={"OPCUA_ENDPOINT": "opc.tcp://127.0.0.1:4840/"})
    return next(iter(build_spec(plant.model).machines.values())).schedule


def _us(moment: datetime) -> int:
    return int(moment.timestamp()) * US


# The demo line works shifts A 06:00-14:00 and B 14:00-22:00, Monday to Saturday, in
# Ho Chi Minh City (UTC+7): shift A starts at 23:00 UTC the day before.
@pytest.mark.parametrize(
    ("now", "expected"),
    [
        # Monday 09:00 local, in shift A: stays.
        (datetime(2026, 3, 2, 2, 0, tzinfo=UTC), datetime(2026, 3, 2, 2, 0, tzinfo=UTC)),
        # Monday 23:30 local, after shift B: Tuesday 06:00 local.
        (datetime(2026, 3, 2, 16, 30, tzinfo=UTC), datetime(2026, 3, 2, 23, 0, tzinfo=UTC)),
        # Saturday 22:20 local: no shift on Sunday, so Monday 06:00 local.
        (datetime(2026, 11, 28, 15, 20, tzinfo=UTC), datetime(2026, 11, 29, 23, 0, tzinfo=UTC)),
    ],
)
def test_the_next_shift_time_of_the_demo_calendar(now: datetime, expected: datetime) -> None:
    assert _schedule().next_shift_time(_us(now)) == _us(expected)


@pytest.mark.parametrize(
    ("now", "watch_min", "expected"),
    [
        # Monday 21:50 local, ten minutes before shift B ends: a 30-minute watch starts Tuesday 06:00.
        (datetime(2026, 3, 2, 14, 50, tzinfo=UTC), 30, datetime(2026, 3, 2, 23, 0, tzinfo=UTC)),
        # The same instant with a 5-minute watch: the ten minutes left are enough.
        (datetime(2026, 3, 2, 14, 50, tzinfo=UTC), 5, datetime(2026, 3, 2, 14, 50, tzinfo=UTC)),
        # Monday 13:50 local, ten minutes before A ends: shift B follows at once, 14:00 local.
        (datetime(2026, 3, 2, 6, 50, tzinfo=UTC), 30, datetime(2026, 3, 2, 7, 0, tzinfo=UTC)),
        # A watch longer than any shift (8 h): a whole shift is enough.
        (datetime(2026, 3, 2, 2, 0, tzinfo=UTC), 24 * 60, datetime(2026, 3, 2, 7, 0, tzinfo=UTC)),
        # Monday 19:37 local, in shift B's meal break (19:30-20:00): from the break's end.
        (datetime(2026, 3, 2, 12, 37, tzinfo=UTC), 8, datetime(2026, 3, 2, 13, 0, tzinfo=UTC)),
        # Monday 17:05 local, in the tea break (17:00-17:15): from 17:15 local.
        (datetime(2026, 3, 2, 10, 5, tzinfo=UTC), 8, datetime(2026, 3, 2, 10, 15, tzinfo=UTC)),
    ],
)
def test_the_demo_starts_where_its_run_has_a_shift_to_watch(
    now: datetime, watch_min: int, expected: datetime
) -> None:
    start = cli._start_in_production(_schedule(), _us(now), watch_min * 60 * US)
    assert start == _us(expected)


def test_the_demo_continues_after_the_newest_saved_event(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A checkpoint whose newest event is 2099-03-02 10:00 local (a Monday, in shift A), in the future.
    newest = datetime(2099, 3, 2, 3, 0, tzinfo=UTC)
    (tmp_path / CHECKPOINT).write_text(
        json.dumps({"machines": {"press1": {"newest": _us(newest)}, "oven1": {"newest": None}}})
    )
    assert cli._demo_start(tmp_path)[0] == datetime(2099, 3, 2, 3, 0, 1, tzinfo=UTC)


def test_a_first_demo_starts_in_a_shift(tmp_path: Path) -> None:
    start, resume = cli._demo_start(tmp_path)
    assert resume == {}
    assert _schedule().shift_at(_us(start)) is not None


def test_a_damaged_checkpoint_does_not_stop_the_demo_from_choosing_a_start(tmp_path: Path) -> None:
    (tmp_path / CHECKPOINT).write_text("{not json")
    start, resume = cli._demo_start(tmp_path)  # the pipeline reports the damage when it restores
    assert _schedule().shift_at(_us(start)) is not None
    assert resume == {}


def test_a_second_demo_continues_every_counter_and_register_where_the_checkpoint_left_it(
    tmp_path: Path,
) -> None:
    plant = load_plant(DEMO_PLANT, environ={"OPCUA_ENDPOINT": "opc.tcp://127.0.0.1:4840/"})
    spec = build_spec(plant.model)
    start = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)  # Monday 09:00 local, shift A
    first = PlantSimulation(plant.model, 1, start=start)
    engine = Engine(spec)
    last: dict[tuple[str, str], float] = {}
    for update in first.step(start + timedelta(minutes=20)):
        engine.push(
            Reading(ts=update.source_ts, machine=update.machine, signal=update.signal, value=update.value)
        )
        last[update.machine, update.signal] = update.value
    (tmp_path / CHECKPOINT).write_text(json.dumps(engine.checkpoint()))

    _, resume = cli._demo_start(tmp_path)
    second = PlantSimulation(plant.model, 1, start=start + timedelta(minutes=30), resume=resume)
    initial = {(u.machine, u.signal): u.value for u in second.step(start + timedelta(minutes=30))}
    cumulative = [
        (machine, signal)
        for machine, m in spec.machines.items()
        for signal in [*m.counters, *m.fuels, m.energy_signal]
        if signal is not None
    ]
    assert len(cumulative) >= 8  # three counters on each of press1, cnc1, packer1; meters; the gas
    for key in cumulative:
        # The held readings are part of the checkpoint: the very last value counts.
        assert initial[key] == pytest.approx(last[key]), key
