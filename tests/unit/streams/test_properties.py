"""Properties of the calculators (hypothesis): what must hold for any input, not just the vectors."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from support import plant_text, reading, run_engine, select

from plantstream.plant.schema import OeeMethod
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
