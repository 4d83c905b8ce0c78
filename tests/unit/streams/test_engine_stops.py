"""Stops, losses and KPIs through the engine: reasons, corrections, checkpoints, roll-ups."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support import build_engine, reading, select

from plantstream.records import Point
from streams.engine import ReadingRejected
from streams.losses import LOSS_FIELDS

PLANT = """
sites:
  - id: demo
    timezone: UTC
    country: VN
    lines:
      - id: l1
        machines:
          - id: m1
            type: packer
            ideal_cycle_s: 1.0
            signals:
              state: state
              total_count: total_count
              fault: reason
          - id: m2
            signals:
              state: state
reasons:
  groups: {material: small_stop, mechanical: breakdown}
  codes:
    12: {reason: film break, group: material}
    7: {reason: jam, group: mechanical}
production:
  micro_stop_max_s: 10
  allowed_lateness_s: 5
  correction_horizon_s: 3600
"""


def run(readings: list, *, flush: bool = True) -> list[Point]:
    engine = build_engine(PLANT)
    for r in readings:
        engine.push(r)
    if flush:
        engine.flush()
    return engine.take_points()


def morning() -> list:
    """m1: running; code 12 and down at 08:01:30 for 30 s; code 4711 and idle 08:03-08:04:30;
    a 6 s micro-stop (down, code 7) at 08:05; m2 running, idle 08:02-08:03."""
    items = [
        (0, "state", "running"),
        (0, "total_count", 0),
        (1.5, "fault", 12),
        (1.5, "state", "down"),
        (2, "state", "running"),
        (2, "fault", 0),
        (3, "fault", "4711"),
        (3, "state", "idle"),
        (4.5, "state", "running"),
        (5, "fault", 7),
        (5, "state", "down"),
        (5.1, "state", "running"),
        (6, "total_count", 300),
        (7, "state", "running"),
    ]
    out = [reading(*item) for item in items]
    out += [reading(0, "state", "running", "m2"), reading(2, "state", "idle", "m2")]
    out += [reading(3, "state", "running", "m2"), reading(7, "state", "running", "m2")]
    return sorted(out, key=lambda r: r.ts)


def test_each_stop_is_a_point_with_its_reason() -> None:
    stops = select(run(morning()), "stop", machine="m1")
    rows = [
        (p.tags["category"], p.tags["reason"], p.tags["reason_group"], p.fields["duration_s"]) for p in stops
    ]
    assert rows == [
        ("down", "film break", "material", 30.0),
        ("idle", "code 4711", "unknown", 90.0),  # never lost: its own reason
        ("down", "jam", "mechanical", 6.0),
    ]
    assert [p.fields["micro"] for p in stops] == [False, False, True]  # 6 s <= 10 s
    # The loss category: the group's, or for an unknown code the state's (idle: a small stop).
    assert [p.fields["loss"] for p in stops] == ["small_stop", "small_stop", "breakdown"]
    assert stops[0].fields["start"] == "2026-03-02T08:01:30Z"
    assert stops[0].fields["code"] == "12"
    assert all(p.fields["revision"] == 0 for p in stops)


def test_stop_counts_and_kpis_land_in_the_window_the_stop_ended_in() -> None:
    points = run(morning())
    oee = {p.time.minute: p.fields for p in select(points, "oee", machine="m1", window="1m")}
    # The 30 s stop ends at 08:02: counted in the window 08:02-08:03 (one failure: state down).
    assert (oee[2]["stops"], oee[2]["failures"]) == (1, 1)
    assert oee[4]["stops"] == 1  # the idle stop ended 08:04:30
    assert (oee[5]["stops"], oee[5]["micro_stops"], oee[5]["failures"]) == (0, 1, 0)
    # 08:01-08:02: run 30 s, down 30 s: technical efficiency 30 / 60; no failure ended in it: no MTBF.
    assert oee[1]["technical_efficiency"] == 0.5
    assert "mtbf_s" not in oee[1]
    # 08:02: run 60 s, no down, 1 failure: MTBF 60 s, MTTR 0 s (the repair time was booked before).
    assert (oee[2]["mtbf_s"], oee[2]["mttr_s"]) == (60.0, 0.0)


def test_the_six_losses_add_up_in_every_window_and_roll_up() -> None:
    points = run(morning())
    oee = {(p.tags.get("machine"), p.tags["window"], p.time): p.fields for p in select(points, "oee")}
    # The last emission of each window (a roll-up is re-emitted as its members report).
    last = {(p.tags.get("machine"), p.tags["window"], p.time): p for p in select(points, "losses")}
    losses = list(last.values())
    assert losses
    for p in losses:
        f = p.fields
        e = oee[(p.tags.get("machine"), p.tags["window"], p.time)]
        total = sum(float(f[name]) for name in LOSS_FIELDS) + float(f["unobserved_s"])
        assert total == pytest.approx(float(e["planned_busy_s"]) - float(f["fully_productive_s"]), abs=1e-6)
    # The line's losses are its machines' summed (m2 has no counter: its net run is fully productive).
    line = {p.time: p.fields for p in losses if "machine" not in p.tags}
    mine = {(p.tags["machine"], p.time): p.fields for p in losses if "machine" in p.tags}
    for time, f in line.items():
        for name in (*LOSS_FIELDS, "unobserved_s", "fully_productive_s"):
            parts = float(mine[("m1", time)][name]) + float(mine[("m2", time)][name])
            assert float(f[name]) == pytest.approx(parts)


def test_a_late_reason_corrects_the_stop_with_revision_1() -> None:
    # The code for the stop at 08:01:30 arrives after the stop was written (watermark past 08:02).
    items = [r for r in morning() if not (r.signal == "fault" and r.value == 12)]
    engine = build_engine(PLANT)
    for r in items[:-1]:
        engine.push(r)
    first = select(engine.take_points(), "stop", machine="m1")
    assert first[0].tags["reason"] == "unassigned"
    engine.push(reading(1.5, "fault", 12))
    corrected = select(engine.take_points(), "stop", machine="m1")
    assert [(p.tags["reason"], p.fields["revision"], p.time) for p in corrected] == [
        ("film break", 1, first[0].time)
    ]
    assert engine.stats["stops_corrected"] == 1


def test_stops_survive_a_checkpoint_in_the_middle_of_one() -> None:
    readings = morning()
    whole = select(run(readings), "stop")
    # Stop the engine during the idle stop (08:03-08:04:30), restore, and go on.
    cut = next(i for i, r in enumerate(readings) if r.ts.minute == 4)
    a = build_engine(PLANT)
    for r in readings[:cut]:
        a.push(r)
    before = select(a.take_points(), "stop")
    saved = json.loads(json.dumps(a.checkpoint()))
    b = build_engine(PLANT)
    b.restore(saved)
    for r in readings[cut:]:
        b.push(r)
    b.flush()
    after = select(b.take_points(), "stop")
    assert before + after == whole


def test_a_stop_still_open_at_the_end_has_not_ended() -> None:
    points = run([reading(0, "state", "running"), reading(1, "state", "down"), reading(3, "total_count", 0)])
    assert select(points, "stop") == []


def test_garbage_reason_values_are_bounded_or_their_own_reason() -> None:
    engine = build_engine(PLANT)
    with pytest.raises(ReadingRejected) as info:
        engine.push(reading(0, "fault", "x" * 65))
    assert info.value.reason == "bad_value"
    points = run(
        [
            reading(0, "state", "running"),
            reading(1, "fault", 1e300),
            reading(1, "state", "down"),
            reading(2, "state", "running"),
            reading(3, "state", "running"),
        ]
    )
    (stop,) = select(points, "stop")
    assert stop.tags["reason"] == "code 1e+300"


STARTUP_PLANT = """
sites:
  - id: demo
    timezone: UTC
    country: VN
    lines:
      - id: l1
        machines:
          - id: m1
            ideal_cycle_s: 1.0
            startup_reject_s: 120
            signals:
              state: state
              total_count: total_count
              reject_count: reject_count
production:
  allowed_lateness_s: 0
"""


def test_rejects_within_the_start_up_time_after_a_setup_are_start_up_rejects() -> None:
    # Setup 08:00-08:10; rejects counted until 08:12 (120 s after) are start-up rejects.
    engine = build_engine(STARTUP_PLANT)
    items = [
        (0, "state", "setup"),
        (0, "total_count", 0),
        (0, "reject_count", 0),
        (10, "state", "running"),
        (11, "total_count", 60),  # (08:10, 08:11]: 60 pieces, 3 rejects -> window 08:10
        (11, "reject_count", 3),
        (20, "total_count", 120),  # (08:11, 08:20]: 60 pieces, 2 rejects -> window 08:19
        (20, "reject_count", 5),
        (30, "state", "running"),
    ]
    for item in items:
        engine.push(reading(*item))
    losses = {p.time.minute: p.fields for p in select(engine.take_points(), "losses", window="1m")}
    # Window 08:10: ideal 60 s for 60 pieces, all 3 rejects at start-up: 60 × 3 / 60 = 3 s.
    assert (losses[10]["startup_reject_s"], losses[10]["production_reject_s"]) == (3.0, 0.0)
    # Window 08:19: 2 rejects after the start-up time: 60 × 2 / 60 = 2 s of production rejects.
    assert (losses[19]["startup_reject_s"], losses[19]["production_reject_s"]) == (0.0, 2.0)
    # The setup itself is setup and adjustments: 60 s in each of the windows 08:00 to 08:09.
    assert losses[5]["setup_s"] == 60.0


def test_a_checkpoint_written_before_stops_existed_still_loads() -> None:
    # The same run, cut at 08:04 during the idle stop; the checkpoint stripped of what this
    # change added (the stop tracker, ended stops, start-up time, per-window stop counts).
    readings = morning()
    cut = next(i for i, r in enumerate(readings) if r.ts.minute == 4)
    a = build_engine(PLANT)
    for r in readings[:cut]:
        a.push(r)
    saved = json.loads(json.dumps(a.checkpoint()))
    for machine in saved["machines"].values():
        state = machine["state"]
        for key in ("stop", "ended", "startup_until"):
            del state[key]
        state["windows"] = [w[:9] for w in state["windows"]]
    b = build_engine(PLANT)
    b.restore(saved)
    for r in readings[cut:]:
        b.push(r)
    b.flush()
    # The idle stop's readings (08:03) were still held for ordering, and held readings are in the
    # checkpoint: the stop is tracked after the restore, and the later micro-stop as before.
    stops = select(b.take_points(), "stop", machine="m1")
    assert [(p.tags["reason"], p.fields["micro"]) for p in stops] == [("code 4711", False), ("jam", True)]


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 3_600),
            st.sampled_from(["state", "fault"]),
            st.one_of(
                st.sampled_from(["running", "down", "idle", "setup", "off", "planned_stop", "jam"]),
                st.integers(-(2**70), 2**70),
                st.floats(allow_nan=True, allow_infinity=True),
                st.text(max_size=80),
                st.booleans(),
            ),
        ),
        max_size=60,
    )
)
def test_garbage_on_the_reason_and_state_tags_is_refused_or_kept_never_lost(items: list) -> None:
    # Whatever comes on the two tags: a refusal names its reason, every other code is a reason
    # (bounded in its tag), and every second of stop is in exactly one stop point.
    engine = build_engine(PLANT)
    refused = []
    for second, signal, value in [*sorted(items, key=lambda i: i[0]), (3_601, "state", "running")]:
        try:
            engine.push(reading(second / 60, signal, value))
        except ReadingRejected as exc:
            refused.append(exc.reason)
    assert set(refused) <= {"bad_value"}
    engine.push(reading(3_700 / 60, "state", "running"))
    engine.flush()
    points = engine.take_points()
    stops = select(points, "stop", machine="m1")
    assert all(len(p.tags["reason"]) <= 5 + 64 for p in stops)
    minutes = select(points, "oee", machine="m1", window="1m")
    stopped = sum(
        f["down_s"] + f["idle_s"] + f["setup_s"] + f["off_s"] + f["micro_stop_s"]
        for f in (p.fields for p in minutes)
    )
    assert sum(p.fields["duration_s"] for p in stops) == pytest.approx(stopped, abs=1e-6)
    assert engine.stats["rejected_bad_value"] == len(refused)


def test_a_state_repeated_during_a_stop_does_not_split_it_into_micro_and_real() -> None:
    # A PLC (or a catch-up read) repeats "down" 5 s into a 60 s stop, under the 10 s micro-stop
    # threshold: the stop is one 60 s breakdown, none of it a micro-stop.
    items = [(0, "state", "running"), (1, "state", "down"), (1 + 5 / 60, "state", "down")]
    items += [(2, "state", "running"), (3, "state", "running")]
    points = run([reading(*item) for item in items])
    [minute] = [p.fields for p in select(points, "oee", machine="m1", window="1m") if p.time.minute == 1]
    assert (minute["down_s"], minute["micro_stop_s"]) == (60.0, 0.0)
    [stop] = select(points, "stop", machine="m1")
    assert (stop.fields["duration_s"], stop.fields["micro"]) == (60.0, False)
