"""The roll-up rule (streams/rollup.py): sums, waiting for every member, corrections, checkpoints."""

from __future__ import annotations

import json

import pytest

from plantstream.plant import parse_plant
from plantstream.records import Point
from streams.config import EngineSpec, build_spec
from streams.machine import WindowResult
from streams.oee import OeeElements, element_fields
from streams.rollup import Rollups, Scope, rollup_scopes

# Site s: line a of m1 and m2, line b of m3 alone. Rolled up: line a (m1, m2) and site s (all
# three); line b is not (a roll-up of one machine would repeat it).
PLANT = """
sites:
  - id: s
    timezone: UTC
    country: VN
    lines:
      - id: a
        machines:
          - id: m1
            ideal_cycle_s: 1.0
            signals: {state: state, total_count: total_count, power_kw: power_kw}
          - id: m2
            ideal_cycle_s: 1.0
            signals: {state: state, total_count: total_count, power_kw: power_kw}
      - id: b
        machines:
          - id: m3
            ideal_cycle_s: 1.0
            signals: {state: state, total_count: total_count, power_kw: power_kw}
production:
  window_s: 60
  correction_horizon_s: 600
"""
LINE: Scope = ("line", "s", "a")
SITE: Scope = ("site", "s")
S = 1_000_000  # µs in a second
T0 = 1_772_438_400 * S  # 2026-03-02 08:00 UTC


def spec() -> EngineSpec:
    return build_spec(parse_plant(PLANT).model)


def window(minute: int, run_s: int, total: int, kwh: float) -> WindowResult:
    """A closed one-minute window ``minute`` minutes after 08:00, planned all through."""
    elements = OeeElements(scheduled=60 * S, run=run_s * S, down=(60 - run_s) * S, total=total, good=total)
    elements.ideal = total * 1.0 * S
    start = T0 + minute * 60 * S
    return WindowResult("window", start, start + 60 * S, None, elements, kwh=kwh, energy_covered_us=60 * S)


def fields(points: list[Point], measurement: str) -> dict:
    [point] = [p for p in points if p.measurement == measurement]
    return point.fields


def test_the_scopes_are_lines_and_sites_of_more_than_one_member() -> None:
    assert rollup_scopes(spec()) == {LINE: ["m1", "m2"], SITE: ["m1", "m2", "m3"]}
    rollups = Rollups(spec())
    assert (rollups.scopes_of("m1"), rollups.scopes_of("m3")) == ([LINE, SITE], [SITE])


def test_a_roll_up_sums_the_elements_and_never_averages_ratios() -> None:
    rollups = Rollups(spec())
    marks = {"m1": T0 + 60 * S, "m2": T0 + 60 * S}
    assert rollups.add(LINE, "m1", window(0, run_s=30, total=30, kwh=1.5)) == []
    assert rollups.add(LINE, "m2", window(0, run_s=60, total=40, kwh=2.25)) == []
    points = rollups.ready(LINE, marks.get)
    assert {p.tags["line"] for p in points} == {"a"}
    oee = fields(points, "oee")
    # run 30 + 60 = 90 s of 60 + 60 = 120 s planned: availability 0.75 (the mean of 0.5 and 1.0
    # would be 0.75 too, so the counts tell sums from means: performance = (30 + 40) s ideal / 90 s).
    assert (oee["run_s"], oee["planned_busy_s"], oee["down_s"], oee["total_count"]) == (90, 120, 30, 70)
    assert oee["availability"] == 0.75
    assert oee["performance"] == pytest.approx(70 / 90)  # the mean of 1.0 and 40/60 would be 5/6
    assert (oee["machines"], oee["revision"]) == (2, 0)
    energy = fields(points, "energy")
    assert energy["kwh"] == 3.75  # 1.5 + 2.25
    assert energy["avg_kw"] == 3.75 * 60  # over one minute
    assert energy["coverage"] == 2.0  # two machines, each covered the whole minute


def test_a_machine_without_a_piece_counter_counts_in_availability_but_not_in_performance() -> None:
    # Line a of m1 (counts pieces) and an oven (a state, no counter): the oven's run time has no
    # ideal time beside it, so the line's performance is m1's alone (E = PRU x PQ / APT over the
    # same units, ISO 22400-2), while the line's availability is both machines'.
    mixed = PLANT.replace(
        "            signals: {state: state, total_count: total_count, power_kw: power_kw}\n      - id: b",
        "            signals: {state: state, power_kw: power_kw}\n      - id: b",
    )
    oven_spec = build_spec(parse_plant(mixed).model)
    assert not oven_spec.machines["m2"].counters
    rollups = Rollups(oven_spec)
    oven = window(0, run_s=50, total=0, kwh=4.0)
    rollups.add(LINE, "m1", window(0, run_s=30, total=27, kwh=1.5))
    rollups.add(LINE, "m2", oven)
    oee = fields(rollups.ready(LINE, {"m1": T0 + 60 * S, "m2": T0 + 60 * S}.get), "oee")
    # Availability: (30 + 50) s run of 120 s planned = 2/3. Performance: 27 pieces x 1 s ideal
    # over m1's 30 s = 0.9, not over 80 s (0.3375). Quality 27/27. OEE = 2/3 x 0.9 x 1 = 0.6.
    assert (oee["run_s"], oee["counted_run_s"], oee["ideal_run_s"]) == (80, 30, 27)
    assert oee["availability"] == pytest.approx(2 / 3)
    assert oee["performance"] == pytest.approx(0.9)
    assert oee["oee"] == pytest.approx(0.6)
    # A machine's own points have no counted_run_s: its performance is over its own run time.
    assert "counted_run_s" not in element_fields(OeeElements(run=30 * S, ideal=27.0 * S))


def test_a_roll_up_waits_for_every_member_that_has_reported() -> None:
    rollups = Rollups(spec())
    end = T0 + 60 * S
    marks: dict[str, int | None] = {"m1": end, "m2": end - S, "m3": None}
    rollups.add(SITE, "m1", window(0, 60, 60, 1.0))
    assert rollups.ready(SITE, marks.get) == [], "m2 has not closed the window"
    rollups.add(SITE, "m2", window(0, 60, 60, 1.0))
    marks["m2"] = end
    # m3 has not reported: in one process that means it has no data, so it is not waited for.
    points = rollups.ready(SITE, marks.get)
    assert fields(points, "oee")["machines"] == 2
    assert fields(points, "energy")["kwh"] == 2.0


def test_the_stream_form_waits_for_a_member_not_heard_from_until_it_says_it_is_silent() -> None:
    rollups = Rollups(spec(), from_stream=True)
    end = T0 + 60 * S
    marks: dict[str, int | None] = {"m1": end, "m2": end, "m3": None}
    rollups.add(SITE, "m1", window(0, 60, 60, 1.0))
    rollups.add(SITE, "m2", window(0, 60, 60, 1.0))
    assert rollups.ready(SITE, marks.get) == [], "m3 may only be behind on its partition"
    marks["m3"] = end  # its partition has passed the window's end without a reading of m3
    assert fields(rollups.ready(SITE, marks.get), "oee")["machines"] == 2


def test_a_correction_of_one_machine_emits_the_roll_up_again() -> None:
    rollups = Rollups(spec())
    marks = {"m1": T0 + 60 * S, "m2": T0 + 60 * S}
    rollups.add(LINE, "m1", window(0, 60, 60, 1.0))
    rollups.add(LINE, "m2", window(0, 60, 60, 1.0))
    first = rollups.ready(LINE, marks.get)
    corrected = rollups.add(LINE, "m2", window(0, 45, 45, 0.75))  # a late `down` of 15 s
    assert [p.identity() for p in corrected] == [p.identity() for p in first]
    oee = fields(corrected, "oee")
    assert (oee["revision"], oee["run_s"], oee["total_count"]) == (1, 105, 105)  # 60 + 45
    assert fields(corrected, "energy")["kwh"] == 1.75  # 1.0 + 0.75
    # The same result again (a batch repeated by a restarted kafka worker) emits nothing there...
    stream = Rollups(spec(), from_stream=True)
    stream.add(LINE, "m1", window(0, 60, 60, 1.0))
    stream.add(LINE, "m2", window(0, 60, 60, 1.0))
    stream.ready(LINE, marks.get)
    assert stream.add(LINE, "m2", window(0, 60, 60, 1.0)) == []
    assert fields(stream.add(LINE, "m2", window(0, 45, 45, 0.75)), "oee")["revision"] == 1
    # ... and the embedded engine's form, which never gets one, keeps its old rule.
    assert fields(rollups.add(LINE, "m2", window(0, 45, 45, 0.75)), "oee")["revision"] == 2


def test_waiting_roll_ups_are_emitted_in_time_order() -> None:
    rollups = Rollups(spec())
    for minute in (1, 0):
        rollups.add(LINE, "m1", window(minute, 60, 60, 1.0))
        rollups.add(LINE, "m2", window(minute, 60, 60, 1.0))
    marks = {"m1": T0 + 120 * S, "m2": T0 + 120 * S}
    points = rollups.ready(LINE, marks.get)
    assert [p.time.strftime("%H:%M") for p in points if p.measurement == "oee"] == ["08:00", "08:01"]


def test_emitted_roll_ups_are_kept_for_corrections_until_the_horizon_has_passed_them() -> None:
    rollups = Rollups(spec())
    for minute, closed in ((0, 1), (1, 2), (11, 12)):
        rollups.add(LINE, "m1", window(minute, 60, 60, 1.0))
        rollups.add(LINE, "m2", window(minute, 60, 60, 1.0))
        rollups.ready(LINE, {"m1": T0 + closed * 60 * S, "m2": T0 + closed * 60 * S}.get)
    # Closed until 08:12, the horizon (600 s) is at 08:02: the 08:00 window (ended 08:01) is
    # forgotten, 08:01 (ended 08:02) and 08:11 are kept.
    kept = {(item["start"] - T0) // (60 * S) for item in rollups.stream_checkpoint()["rollups"]}
    assert kept == {1, 11}


def test_a_checkpoint_keeps_what_waits_and_in_the_stream_form_what_was_emitted() -> None:
    rollups = Rollups(spec())
    marks = {"m1": T0 + 60 * S, "m2": T0 + 60 * S}
    rollups.add(LINE, "m1", window(0, 60, 60, 1.0))
    rollups.add(LINE, "m2", window(0, 60, 60, 1.0))
    rollups.ready(LINE, marks.get)
    rollups.add(LINE, "m1", window(1, 30, 30, 0.5))  # waits for m2
    embedded = rollups.checkpoint()
    # The embedded engine's checkpoint form (version 1): only what waits, no revision.
    assert [(item["start"] - T0, sorted(item["parts"]), "revision" in item) for item in embedded] == [
        (60 * S, ["m1"], False)
    ]
    stream = rollups.stream_checkpoint()
    restored = Rollups(spec(), from_stream=True)
    restored.restore_stream(json.loads(json.dumps(stream)))
    assert restored.stream_checkpoint() == stream
    # The restored copy corrects the emitted window with the next revision, and still waits for m2.
    corrected = restored.add(LINE, "m2", window(0, 30, 30, 0.5))
    assert fields(corrected, "oee")["revision"] == 1
    assert fields(corrected, "oee")["run_s"] == 90
    restored.add(LINE, "m2", window(1, 30, 30, 0.5))
    later = restored.ready(LINE, {"m1": T0 + 120 * S, "m2": T0 + 120 * S}.get)
    assert fields(later, "oee")["total_count"] == 60  # 30 + 30


def test_an_emitted_roll_up_is_forgotten_once_no_member_can_correct_it() -> None:
    # Where each member's corrections start: m1 from 08:03, m2 from 08:05, until m2 moves on.
    starts: dict[str, int | None] = {"m1": T0 + 3 * 60 * S, "m2": T0 + 5 * 60 * S}
    rollups = Rollups(spec(), kept_from=starts.get)
    for minute in range(6):
        rollups.add(LINE, "m1", window(minute, 60, 60, 1.0))
        rollups.add(LINE, "m2", window(minute, 60, 60, 1.0))
        rollups.ready(LINE, {"m1": T0 + (minute + 1) * 60 * S, "m2": T0 + (minute + 1) * 60 * S}.get)
    # The horizon (600 s behind 08:06) forgets nothing; m1 can still correct from 08:03, so the
    # windows that ended before (08:00 and 08:01, ended 08:01 and 08:02) are forgotten; 08:02
    # (ended 08:03) is kept: m1's snapshot at 08:03 holds it closed, but the rule is strict, as the
    # engine's own (a window is forgotten once it ended before the base).
    kept = {(item["start"] - T0) // (60 * S) for item in rollups.stream_checkpoint()["rollups"]}
    assert kept == {2, 3, 4, 5}
    # A member that has not started its corrections (silent so far) holds every roll-up back.
    starts["m2"] = None
    rollups.add(LINE, "m1", window(6, 60, 60, 1.0))
    rollups.add(LINE, "m2", window(6, 60, 60, 1.0))
    rollups.ready(LINE, {"m1": T0 + 7 * 60 * S, "m2": T0 + 7 * 60 * S}.get)
    kept = {(item["start"] - T0) // (60 * S) for item in rollups.stream_checkpoint()["rollups"]}
    assert kept == {2, 3, 4, 5, 6}
