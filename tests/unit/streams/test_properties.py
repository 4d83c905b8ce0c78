"""Properties of the calculators (hypothesis): what must hold for any input, not just the vectors."""

from __future__ import annotations

import contextlib
import json
import math

from hypothesis import given, settings
from hypothesis import strategies as st
from support import build_engine, plant_text, reading, run_engine, select

from plantstream.plant.schema import OeeMethod
from streams.engine import Engine, ReadingRejected
from streams.losses import LOSS_FIELDS
from streams.oee import OeeElements, oee_kpis

STATES = ["running", "down", "idle", "setup", "planned_stop", "off"]
ELEMENT_KEYS = (
    "scheduled_s",
    "planned_busy_s",
    "planned_stop_s",
    "run_s",
    "micro_stop_s",
    "down_s",
    "idle_s",
    "setup_s",
    "off_s",
    "unknown_s",
    "total_count",
    "good_count",
    "reject_count",
    "ideal_run_s",
)


@st.composite
def timelines(draw: st.DrawFn) -> list:
    """A machine's readings over 08:00-09:00: state changes at whole seconds, counters each minute."""
    changes = draw(
        st.lists(st.tuples(st.integers(0, 3599), st.sampled_from(STATES)), min_size=1, max_size=25)
    )
    out = [reading(0, "state", "running")]
    out += [reading(second / 60, "state", state) for second, state in sorted(set(changes))]
    total = reject = 0
    for minute in range(61):
        made = draw(st.integers(0, 60))
        total += made
        # Rejects come out of this minute's pieces: the good counter, like any counter, never falls.
        reject += min(made, draw(st.integers(0, 3)))
        out += [
            reading(minute, "total_count", total),
            reading(minute, "reject_count", reject),
            reading(minute, "good_count", total - reject),
        ]
    return sorted(out, key=lambda r: (r.ts, r.signal))


@settings(max_examples=30, deadline=None)
@given(timeline=timelines(), threshold=st.integers(0, 600))
def test_oee_is_invariant_when_micro_stops_move_between_availability_and_performance(
    timeline, threshold
) -> None:
    # A micro-stop moves time from down/idle into run: A rises, P falls, A x P and OEE stay (TV-OEE-5).
    base = select(run_engine(plant_text(), timeline), "oee", machine="m1", window="shift")[0].fields
    moved = select(run_engine(plant_text(micro=threshold), timeline), "oee", machine="m1", window="shift")[
        0
    ].fields
    assert moved["planned_busy_s"] == base["planned_busy_s"]
    assert abs(moved["oee"] - base["oee"]) < 1e-9
    assert moved["run_s"] - moved["micro_stop_s"] == base["run_s"]
    assert moved["down_s"] + moved["idle_s"] + moved["micro_stop_s"] == base["down_s"] + base["idle_s"]


@settings(max_examples=30, deadline=None)
@given(timeline=timelines(), micro=st.integers(0, 120))
def test_a_shift_window_equals_the_sum_of_its_tumbling_windows(timeline, micro) -> None:
    points = run_engine(plant_text(micro=micro), timeline)
    [shift] = select(points, "oee", machine="m1", window="shift")
    minutes = select(points, "oee", machine="m1", window="1m")
    # The shift runs to 16:00 but data stops at 09:00: the rest of the shift is unknown.
    tail = 7 * 3600
    for key in ELEMENT_KEYS:
        expected = sum(p.fields[key] for p in minutes) + (
            tail if key in ("scheduled_s", "planned_busy_s", "unknown_s") else 0
        )
        assert abs(shift.fields[key] - expected) < 1e-6, key
    summed = OeeElements()
    for p in minutes:
        f = p.fields
        summed.add(
            OeeElements(
                scheduled=round(f["scheduled_s"] * 1e6),
                planned_stop=round(f["planned_stop_s"] * 1e6),
                run=round(f["run_s"] * 1e6),
                total=f["total_count"],
                good=f["good_count"],
                ideal=f["ideal_run_s"] * 1e6,
            )
        )
    summed.scheduled += tail * 1_000_000
    # Ratios from summed elements, never averaged ratios.
    assert abs(oee_kpis(summed, OeeMethod.ISO22400)["oee"] - shift.fields["oee"]) < 1e-9
    f = shift.fields
    assert (
        f["planned_busy_s"]
        == f["run_s"] + f["down_s"] + f["idle_s"] + f["setup_s"] + f["off_s"] + f["unknown_s"]
    )


@settings(max_examples=25, deadline=None)
@given(timeline=timelines())
def test_counts_are_exact_whatever_the_windows(timeline) -> None:
    points = run_engine(plant_text(), timeline)
    [shift] = select(points, "oee", machine="m1", window="shift")
    totals = [r.value for r in timeline if r.signal == "total_count"]
    # The first sample is the baseline of a cumulative counter; everything after it is counted.
    made = totals[-1] - totals[0]
    assert shift.fields["total_count"] == made
    assert sum(p.fields["total_count"] for p in select(points, "oee", machine="m1", window="1m")) == made


@settings(max_examples=30, deadline=None)
@given(timeline=timelines(), micro=st.integers(0, 120))
def test_every_second_of_stop_is_in_exactly_one_stop_point_and_the_losses_add_up(timeline, micro) -> None:
    # Running again at 09:00 ends whatever stop is open, so every stop of the hour is written.
    points = run_engine(plant_text(micro=micro), [*timeline, reading(60, "state", "running")])
    minutes = select(points, "oee", machine="m1", window="1m")
    stopped = sum(
        p.fields["down_s"]
        + p.fields["idle_s"]
        + p.fields["setup_s"]
        + p.fields["off_s"]
        + p.fields["micro_stop_s"]
        for p in minutes
    )
    stops = select(points, "stop", machine="m1")
    assert abs(sum(p.fields["duration_s"] for p in stops) - stopped) < 1e-6
    assert sum(p.fields["stops"] + p.fields["micro_stops"] for p in minutes) == len(stops)
    for p in select(points, "losses", machine="m1"):
        f = p.fields
        total = sum(f[name] for name in LOSS_FIELDS) + f["unobserved_s"]
        pbt = next(
            q.fields["planned_busy_s"]
            for q in select(points, "oee", machine="m1", window=p.tags["window"])
            if q.time == p.time
        )
        assert abs(total - (pbt - f["fully_productive_s"])) < 1e-6


HOSTILE_PLANT = plant_text(calendar=None).replace(
    "correction_horizon_s: 3600", "correction_horizon_s: 3600\n  max_gap_fill_s: 3600"
)
"""Planned all the time, 1-minute windows; a silence over an hour resumes without its windows."""
T0_US = 1_772_438_400_000_000  # 2026-03-02T08:00:00Z, the T0 of support.reading
SIGNALS = ["state", "total_count", "good_count", "reject_count", "power_kw", "energy_kwh", "nope"]
hostile_times = st.one_of(
    st.integers(T0_US - 3_600_000_000, T0_US + 7_200_000_000),  # around the shift, out of order
    st.integers(-(2**62), 2**62),  # anything, 1970 and year 146 000 included
    st.sampled_from([0, T0_US + 365 * 86_400_000_000, T0_US + 9 * 86_400_000_000]),
)
hostile_values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(2**70), 2**70),
    st.integers(0, 10_000),
    st.sampled_from([*STATES, 1e38, 1.23e35, -0.5, 2.0**53]),
    st.text(max_size=120),
    st.booleans(),
    st.none(),
)
hostile_readings = st.lists(
    st.tuples(
        hostile_times,
        st.sampled_from(SIGNALS),
        hostile_values,
        st.sampled_from(["good", "uncertain", "bad"]),
        st.one_of(st.none(), st.integers(-(10**9), 10**12)),  # receipt time minus event time
    ),
    max_size=40,
)


@settings(max_examples=80, deadline=None)
@given(readings=hostile_readings, reorder=st.booleans(), restart_at=st.integers(0, 40))
def test_hostile_readings_never_raise_stay_bounded_and_emit_only_finite_numbers(
    readings, reorder, restart_at
) -> None:
    engine: Engine = build_engine(HOSTILE_PLANT, reorder=reorder)
    points = []
    for i, (ts, signal, value, quality, delay) in enumerate(readings):
        if i == restart_at:  # a restart from a checkpoint through JSON, as the runtimes do
            saved = json.loads(json.dumps(engine.checkpoint()))
            engine = build_engine(HOSTILE_PLANT, reorder=reorder)
            engine.restore(saved)
        received = None if delay is None else ts + delay
        with contextlib.suppress(ReadingRejected):  # the only exception a reading may cause
            engine.push_raw(ts, "m1", signal, value, quality, received)
        points += engine.take_points()
        track = engine._tracks["m1"]
        kept = len(track.history) + len(track.held) + len(track.snapshots) + len(track.emitted)
        # Each reading opens at most an hour of 1-minute windows (max_gap_fill_s) before the rest
        # of a longer silence is skipped: the state held is proportional to the input.
        assert kept + len(track.calc.state.windows) <= 200 * (len(readings) + 1)
    engine.flush()
    points += engine.take_points()
    # Per reading at most 61 windows, each an oee, energy and carbon point for the machine, its
    # line and its site: 61 x 3 x 3 = 549 points.
    assert len(points) <= 549 * (len(readings) + 1)
    for point in points:
        for name, field in point.fields.items():
            assert not isinstance(field, float) or math.isfinite(field), (name, point)
