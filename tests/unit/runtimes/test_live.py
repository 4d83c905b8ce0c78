"""The live per-machine view (demo and ``tail --table``): one model fed by events, one renderer."""

from __future__ import annotations

import asyncio
import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from plantstream.plant import load_plant
from plantstream.records import Point, Reading
from runtimes.live import LiveView, only_machines, shown_live
from runtimes.tail import Filters
from streams.config import build_spec

DEMO = Path(__file__).resolve().parents[3] / "examples" / "demo-line.yaml"
T = datetime(2026, 3, 2, 8, tzinfo=UTC)


def demo_spec() -> Any:
    return build_spec(load_plant(DEMO, environ={}).model)


def window(
    machine: str, minute: int, run_s: float, total: int, shift: str | None = "A", **extra: Any
) -> Point:
    """A one-minute oee point: 60 s scheduled, ``run_s`` running, the rest down, all pieces good."""
    fields = {
        "scheduled_s": 60.0,
        "planned_stop_s": 0.0,
        "run_s": run_s,
        "down_s": 60.0 - run_s,
        "total_count": total,
        "good_count": total,
        "reject_count": 0,
        "ideal_run_s": float(total),
        **extra,
    }
    tags = {"site": "hcm", "line": "line1", "machine": machine, "window": "1m"}
    if shift is not None:
        tags["shift"] = shift
    return Point(measurement="oee", tags=tags, fields=fields, time=T.replace(minute=minute))


def point(measurement: str, machine: str | None, minute: int, **fields: Any) -> Point:
    tags = {"site": "hcm", "line": "line1", "window": "1m", "shift": "A"}
    if machine is not None:
        tags["machine"] = machine
    return Point(measurement=measurement, tags=tags, fields=fields, time=T.replace(minute=minute))


def as_record(item: Point | Reading) -> dict[str, Any]:
    """What ``tail`` gets: the JSON line of /stream or of a kafka topic, decoded."""
    decoded: dict[str, Any] = json.loads(item.to_json())
    return decoded


def text_of(view: LiveView) -> str:
    console = Console(file=io.StringIO(), width=200)
    console.print(view.render())
    assert isinstance(console.file, io.StringIO)
    return console.file.getvalue()


def test_codes_become_categories_and_shift_oee_sums_elements() -> None:
    view = LiveView(demo_spec())
    view.on_reading(Reading(ts=T, machine="press1", signal="state", value=3))  # code 3: down
    # Two minutes: 60 s run with 60 pieces, then 30 s run with 30 pieces at an ideal 1 s.
    view.on_points([window("press1", 0, 60, 60), window("press1", 1, 30, 30)])
    assert view.machines["press1"].state == "down"
    [line] = [s for s in view.shift_summary() if s.startswith("press1")]
    # Elements summed: A = 90/120, P = 90/90, Q = 1 -> 75.0 %.
    assert "OEE 75.0%" in line
    assert "90 good of 90" in line
    oven = next(s for s in view.shift_summary() if s.startswith("oven1"))
    assert "OEE -" in oven  # no piece counter: no OEE


def test_the_table_from_a_stream_of_json_records_without_a_plant_file() -> None:
    view = LiveView()
    events: list[Point | Reading] = [
        Reading(ts=T, machine="press1", signal="state", value=2),
        window("press1", 0, 60, 60, oee=1.0),
        point("energy", "press1", 0, kwh=1.5, avg_kw=90.0),
        point("carbon", "press1", 0, co2e_kg=0.99),
        window("press1", 1, 30, 30, oee=0.5),
        point("energy", "press1", 1, kwh=0.5, avg_kw=30.0),
        point("carbon", "press1", 1, co2e_kg=0.33),
        # Minute 1 corrected by late data (30 more seconds of run): it replaces its first version.
        window("press1", 1, 60, 60, oee=1.0, revision=1),
        # Neither the shift window nor the line roll-up is a machine row.
        Point(
            measurement="oee",
            tags={"site": "hcm", "line": "line1", "machine": "press1", "window": "shift", "shift": "A"},
            fields={"run_s": 1.0, "scheduled_s": 999.0},
            time=T,
        ),
        point("energy", None, 1, kwh=100.0, avg_kw=6000.0),
        Reading(ts=T.replace(minute=2, second=5), machine="oven1", signal="fan_energy_kwh", value=1.0),
    ]
    for event in events:
        view.on_record(as_record(event))
    view.on_record({"machine": "press1"})  # neither a reading nor a point
    assert list(view.machines) == ["press1", "oven1"]
    press = view.machines["press1"]
    assert (press.site, press.line, press.shift) == ("hcm", "line1", "A")
    # Without the plant file nothing says which signal is the state: no guess.
    assert press.state == "-"
    # A = 120 run / 120 planned busy; P = 120 ideal / 120 run; Q = 1.
    assert view.kpis("press1") == pytest.approx(
        {"availability": 1.0, "performance": 1.0, "quality": 1.0, "oee": 1.0, "nee": 1.0}
    )
    assert press.shown_kw() == 30.0  # the latest energy window's average
    assert sum(press.kwh.values()) == 2.0  # 1.5 + 0.5
    assert sum(press.co2e.values()) == pytest.approx(1.32)  # 0.99 + 0.33
    assert view.unreadable == 1
    assert (view.readings, view.points) == (2, 9)
    text = text_of(view)
    assert "hcm/line1/press1" in text
    assert "100.0%" in text
    for shown in ("30.0", "2.00", "1.32"):
        assert shown in text
    assert "08:01:00" in text  # the newest event time of the machine (minute 1's window)
    assert "oven1" in text
    assert "08:02:05" in text
    assert "1 unreadable" in text


def test_a_new_shift_starts_the_sums_again_and_a_machine_without_shifts_shows_all_windows() -> None:
    view = LiveView()
    view.on_points([window("press1", 0, 60, 60, oee=1.0), window("press1", 1, 0, 0, shift="B", oee=0.0)])
    assert view.machines["press1"].shift == "B"
    assert view.kpis("press1")["availability"] == 0.0  # only shift B's minute: 0 of 60 s run
    view.on_points([window("m9", 0, 60, 60, shift=None, oee=1.0), window("m9", 1, 0, 0, shift=None, oee=0.0)])
    assert view.kpis("m9")["availability"] == 0.5  # 60 of 120 s run
    # A machine without piece counts (no oee, performance or quality field) shows availability only.
    view.on_points([window("oven1", 0, 60, 0)])
    assert view.kpis("oven1") == {"availability": 1.0}


def test_with_the_plant_file_every_machine_is_a_row_with_its_state_and_scaled_power() -> None:
    view = LiveView(demo_spec())
    assert list(view.machines) == ["press1", "cnc1", "packer1", "oven1"]
    view.on_record(as_record(Reading(ts=T, machine="press1", signal="state", value=5)))
    view.on_record(as_record(Reading(ts=T, machine="cnc1", signal="state", value="running")))
    view.on_record(as_record(Reading(ts=T, machine="cnc1", signal="spindle_power_kw", value=27.5)))
    view.on_record(as_record(Reading(ts=T, machine="stranger", signal="state", value=1)))
    assert view.machines["press1"].state == "planned_stop"
    assert view.machines["cnc1"].state == "running"
    assert view.machines["cnc1"].shown_kw() == 27.5
    assert "stranger" not in view.machines  # not in the plant file
    text = text_of(view)
    for row in ("hcm/line1/press1", "hcm/line1/cnc1", "hcm/line1/packer1", "hcm/line1/oven1"):
        assert row in text


def test_the_filters_choose_the_rows_of_the_plant_file() -> None:
    spec = demo_spec()
    assert list(LiveView(only_machines(spec, line="line1")).machines) == [
        "press1",
        "cnc1",
        "packer1",
        "oven1",
    ]
    assert list(LiveView(only_machines(spec, site="hcm", machine="cnc1")).machines) == ["cnc1"]
    assert not LiveView(only_machines(spec, line="line2")).machines


def test_the_plant_file_lets_site_and_line_filters_select_readings() -> None:
    places = {mid: (m.site, m.line) for mid, m in demo_spec().machines.items()}
    reading = as_record(Reading(ts=T, machine="press1", signal="state", value=2))
    assert not Filters(line="line1").match(reading)  # a reading alone names no line
    assert Filters(line="line1", places=places).match(reading)
    assert not Filters(line="line2", places=places).match(reading)
    assert Filters(site="hcm", places=places).match(as_record(window("press1", 0, 60, 60)))


async def test_without_a_terminal_the_table_is_printed_once_when_the_body_ends() -> None:
    out = io.StringIO()
    view = LiveView(title="seen")

    async def follow_until_the_stream_ends() -> None:
        async with shown_live(view, Console(file=out, width=40), every_s=0.01):
            view.on_reading(Reading(ts=T, machine="a-machine-with-a-long-name", signal="s", value=1))
            await asyncio.sleep(0.05)
            raise ConnectionError("the stream ended")

    with pytest.raises(ConnectionError):
        await follow_until_the_stream_ends()
    text = out.getvalue()
    assert text.count("seen") == 1
    assert "a-machine-with-a-long-name" in text  # wider than the 40 columns: not cut


def test_the_caption_carries_the_pipelines_own_health_line() -> None:
    view = LiveView(title="t")
    assert "lag" not in text_of(view)
    view.health = lambda: "lag 0.25 s, 3 dropped, 0 queued, 0 refused"
    assert "lag 0.25 s, 3 dropped" in text_of(view)


def shift_record(machine: str, good: int, **extra: Any) -> Point:
    """A ``shift_so_far`` record of the pipeline: 120 s planned, 90 s run, ``good`` of 100 pieces.

    Its ratios as the pipeline computes them: A = 90 / 120, P = 90 ideal s / 90 s run = 1,
    Q = good / 100, OEE = A x P x Q.
    """
    fields = {
        "availability": 0.75,
        "performance": 1.0,
        "quality": good / 100,
        "oee": 0.75 * good / 100,
        "scheduled_s": 120.0,
        "planned_stop_s": 0.0,
        "run_s": 90.0,
        "down_s": 30.0,
        "total_count": 100,
        "good_count": good,
        "reject_count": 100 - good,
        "ideal_run_s": 90.0,
        "through": "2026-03-02T08:02:00Z",
        **extra,
    }
    tags = {"site": "hcm", "line": "line1", "machine": machine, "shift": "A"}
    return Point(measurement="shift_so_far", tags=tags, fields=fields, time=T)


def test_without_the_pipelines_shift_figures_a_row_says_since_when_it_sums_the_windows() -> None:
    view = LiveView()
    view.on_record(as_record(window("press1", 1, 60, 60, oee=1.0)))
    view.on_record(as_record(point("energy", "press1", 1, kwh=1.5, avg_kw=90.0)))
    assert "A since 08:01" in text_of(view)  # the kafka topics: only the windows seen here
    assert view.kpis("press1")["availability"] == 1.0
    # The pipeline's figures of the whole shift so far take over, whatever was summed here.
    view.on_record(as_record(shift_record("press1", 95, kwh=12.25, co2e_kg=8.08)))
    text = text_of(view)
    assert "since" not in text
    for shown in ("12.25", "8.08"):
        assert shown in text
    # The record's ratios, not a sum of what the view saw: 0.75 x 1 x 0.95 = 71.25 %.
    assert view.kpis("press1") == {"availability": 0.75, "performance": 1.0, "quality": 0.95, "oee": 0.7125}
    assert "71.2%" in text
    assert view.points == 2  # the shift record is not a point the pipeline wrote
    [line] = view.shift_summary()
    assert line == "press1: shift A so far: OEE 71.2%, 95 good of 100, 12.25 kWh, 8.08 kg CO2e"


def test_tail_shows_the_shift_records_only_when_asked() -> None:
    record = as_record(shift_record("press1", 95))
    assert not Filters().match(record)
    assert not Filters(machine="press1").match(record)
    assert Filters(measurement="shift_so_far").match(record)
    assert Filters(shift_so_far=True, machine="press1").match(record)  # tail --table
    assert not Filters(shift_so_far=True, machine="cnc1").match(record)


def test_a_shift_first_seen_after_its_start_says_from_when() -> None:
    view = LiveView()
    # The shift began at 08:00; the machine's first reading came an hour later.
    view.on_record(as_record(shift_record("press1", 95, unobserved_s=3600.0)))
    assert view.machines["press1"].shown_shift() == "A from 09:00"
    view.on_record(as_record(shift_record("press1", 95, unobserved_s=0.0)))
    assert view.machines["press1"].shown_shift() == "A"


def test_the_ratios_shown_are_the_pipelines_whatever_method_the_view_would_assume() -> None:
    # A Vorne plant caps performance at 1 and keeps the raw value; tail without the plant file
    # knows no method, yet shows what the pipeline computed.
    view = LiveView()
    record = shift_record("press1", 95, ideal_run_s=99.0, performance=1.0, performance_uncapped=1.1)
    view.on_record(as_record(record))
    assert view.kpis("press1")["performance"] == 1.0
    assert view.kpis("press1")["performance_uncapped"] == 1.1


def test_the_stop_reason_column_shows_the_pipelines_open_stop() -> None:
    view = LiveView()
    shift = {"shift": "A"}

    def record(**fields: Any) -> Point:
        tags = {"site": "hcm", "line": "line1", "machine": "packer1", **shift}
        return Point(measurement="shift_so_far", tags=tags, fields={"scheduled_s": 60.0, **fields}, time=T)

    view.on_points([record()])
    assert view.machines["packer1"].shown_stop(None, "packer1") == "-"  # running: no stop
    view.on_points([record(stop_reason="film break", stop_reason_group="material", stop_cause="first")])
    assert view.machines["packer1"].shown_stop(None, "packer1") == "film break (material)"
    assert "film break (material)" in text_of(view)
    view.on_points([record(stop_reason="jam", stop_reason_group="mechanical", stop_cause="operator")])
    assert view.machines["packer1"].shown_stop(None, "packer1") == "jam (mechanical), operator"
    view.on_points([record(stop_reason="unassigned", stop_reason_group="unassigned", stop_cause="first")])
    assert view.machines["packer1"].shown_stop(None, "packer1") == "unassigned"


def test_without_the_pipelines_figures_the_stop_reason_is_the_latest_code_through_the_tree() -> None:
    # The kafka topics carry no shift_so_far records: the view resolves the code itself.
    spec = build_spec(load_plant(DEMO.parent / "stop-reasons.yaml", environ={}).model)
    view = LiveView(spec)
    packer = view.machines["packer1"]
    view.on_reading(Reading(ts=T, machine="packer1", signal="fault", value=302))
    view.on_reading(Reading(ts=T, machine="packer1", signal="state", value="running"))
    assert packer.shown_stop(spec, "packer1") == "-"
    view.on_reading(Reading(ts=T, machine="packer1", signal="state", value="down"))
    # On a packer, code 302 is its own: a film break (the shared 302 is a guard door open).
    assert packer.shown_stop(spec, "packer1") == "film break (material)"
    view.on_reading(Reading(ts=T, machine="press1", signal="state", value=3))  # code 3: down
    view.on_reading(Reading(ts=T, machine="press1", signal="fault", value=4711))
    assert view.machines["press1"].shown_stop(spec, "press1") == "code 4711 (unknown)"
    assert "code 4711 (unknown)" in text_of(view)
