"""``Engine.push_many`` against ``Engine.push_raw`` in turn: the same points, refusals and state."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support import build_engine, plant_text

from streams.engine import Engine, ReadingRejected

PLANT = plant_text(calendar=None).replace(
    "correction_horizon_s: 3600", "correction_horizon_s: 3600\n  max_gap_fill_s: 3600"
)
"""Planned 24/7, 1-minute windows, 5 s lateness; a silence over an hour resumes without its windows."""
T0_US = 1_772_438_400_000_000  # 2026-03-02T08:00:00Z
SIGNALS = ["state", "total_count", "good_count", "reject_count", "power_kw", "energy_kwh", "nope"]
STATES = ["running", "down", "idle", "setup", "planned_stop", "off"]
values = st.one_of(
    st.integers(0, 10_000),
    st.floats(0, 500),
    st.sampled_from(STATES),
    # Anything else a reading may carry: each must be refused (or taken) exactly as one by one.
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(2**70), 2**70),
    st.sampled_from([1e38, -0.5, 2.0**53, True, None, "x" * 65]),
    st.text(max_size=70),
)
times = st.one_of(
    st.integers(0, 7_200_000_000),  # offsets from T0: mostly in order once sorted
    st.sampled_from([-(2**62), -T0_US, 365 * 86_400_000_000, 9 * 86_400_000_000]),  # implausible, far ahead
)
batches = st.lists(
    st.tuples(
        times,
        st.sampled_from(["m1", "m1", "m1", "nope"]),
        st.sampled_from(SIGNALS),
        values,
        st.sampled_from(["good", "good", "uncertain", "bad"]),
        st.one_of(st.none(), st.integers(-(10**9), 10**12)),  # receipt time minus event time
    ),
    max_size=60,
)


def one_by_one(engine: Engine, readings: list[tuple[Any, ...]], received: list[int | None]) -> list[Any]:
    """What ``push_raw`` on each does: the refusals as (index, reason, message, held)."""
    refused = []
    for i, ((ts, machine, signal, value, quality), at) in enumerate(zip(readings, received, strict=True)):
        try:
            engine.push_raw(ts, machine, signal, value, quality, at)
        except ReadingRejected as exc:
            refused.append((i, exc.reason, str(exc), exc.held))
    return refused


def state_of(engine: Engine) -> tuple[Any, ...]:
    """Everything the engine shows after a batch: its points, counters and checkpoint."""
    engine.flush()
    points = [p.to_json() for p in engine.take_points()]
    return points, dict(engine.stats), json.dumps(engine.checkpoint(), sort_keys=True)


@settings(max_examples=150, deadline=None)
@given(
    drawn=batches,
    in_order=st.booleans(),
    reorder=st.booleans(),
    with_receipt=st.booleans(),
    cut=st.integers(0, 60),
)
def test_a_batch_is_taken_exactly_as_its_readings_one_by_one(
    drawn: list[tuple[Any, ...]], in_order: bool, reorder: bool, with_receipt: bool, cut: int
) -> None:
    if in_order:
        drawn = sorted(drawn, key=lambda r: r[0])  # the common case: in time order, taken inline
    readings = [
        (T0_US + offset, machine, signal, value, quality)
        for offset, machine, signal, value, quality, _ in drawn
    ]
    received = [
        None if delay is None or not with_receipt else T0_US + offset + delay for offset, *_, delay in drawn
    ]
    single, batched = build_engine(PLANT, reorder=reorder), build_engine(PLANT, reorder=reorder)
    expected = one_by_one(single, readings, received)
    # Two batches, so the second starts from a state the first left.
    got = []
    for start, stop in ((0, cut), (cut, len(readings))):
        part = batched.push_many(readings[start:stop], received[start:stop] if with_receipt else None)
        got += [(start + i, exc.reason, str(exc), exc.held) for i, exc in part]
    assert got == expected
    assert state_of(batched) == state_of(single)


def test_a_batch_of_in_order_readings_makes_the_points_of_its_readings_one_by_one() -> None:
    # 30 minutes of one machine, in order, without reordering: the inline path takes nearly all.
    # Each minute: the state, three counters (4 pieces, 1 reject) and power every 10 s.
    readings: list[tuple[int, str, str, Any, str]] = []
    for minute in range(30):
        at = T0_US + minute * 60_000_000
        readings.append((at, "m1", "state", "down" if minute % 7 == 3 else "running", "good"))
        readings += [
            (at + 1, "m1", "total_count", 4 * minute, "good"),
            (at + 2, "m1", "good_count", 3 * minute, "good"),
            (at + 3, "m1", "reject_count", minute, "good"),
        ]
        readings += [(at + 10_000_000 * k, "m1", "power_kw", 10.0 + k, "good") for k in range(1, 6)]
    single, batched = build_engine(PLANT, reorder=False), build_engine(PLANT, reorder=False)
    assert one_by_one(single, readings, [None] * len(readings)) == []
    assert batched.push_many(readings) == []
    single_state, batched_state = state_of(single), state_of(batched)
    assert batched_state == single_state
    # 30 minutes: 30 one-minute windows of oee, energy and carbon for the machine at least.
    assert len(batched_state[0]) >= 30 * 3


def test_a_live_batch_takes_held_late_and_refused_readings_as_one_by_one() -> None:
    # Held for ordering (5 s lateness), as `run` takes them: 20 minutes of power every 2 s and a
    # counter every 10 s. Every 17th power reading arrives 3 s late (still in order once held),
    # every 41st 90 s late (behind the released time: a correction), and the counter dips once
    # (refused when the reading after it releases it).
    readings: list[tuple[int, str, str, Any, str]] = []
    late: list[tuple[int, str, str, Any, str]] = []
    for k in range(600):
        at = T0_US + k * 2_000_000
        power = (at, "m1", "power_kw", 10.0 + k % 7, "good" if k % 13 else "uncertain")
        if k % 41 == 40:
            late.append(power)
        elif k % 17 == 16:
            readings.append((at + 1, "m1", "state", "running", "good"))
            readings.append((at + 3_000_000, *power[1:]))  # arrives 3 s late: out of order
        else:
            readings.append(power)
        if k % 5 == 0:
            readings.append((at + 1, "m1", "total_count", 4 * k - (40 if k == 300 else 0), "good"))
        if late and late[0][0] <= at - 90_000_000:
            readings.append(late.pop(0))
    readings += late  # the last one, 52 s late
    single, batched = build_engine(PLANT, reorder=True), build_engine(PLANT, reorder=True)
    expected = one_by_one(single, readings, [None] * len(readings))
    assert {reason for _, reason, _, _ in expected} == {"implausible"}
    general: list[str] = []
    push_raw = batched.push_raw

    def counted(*parts: Any) -> None:
        general.append(parts[2])
        push_raw(*parts)

    batched.push_raw = counted  # type: ignore[method-assign]
    got = []
    for start in range(0, len(readings), 97):  # batches as a collector hands them over
        part = batched.push_many(readings[start : start + 97])
        got += [(start + i, exc.reason, str(exc), exc.held) for i, exc in part]
    assert got == expected
    single_state, batched_state = state_of(single), state_of(batched)
    assert batched_state == single_state
    assert single_state[1]["late_readings"] == 600 // 41  # each behind the released time: a correction
    # The numbers held in order took the inline path; the texts and the late ones the general one.
    assert general.count("power_kw") == 600 // 41
    assert general.count("state") == len([r for r in readings if r[2] == "state"])


def test_an_in_order_reading_in_a_batch_breaks_a_run_of_clock_jumps_as_it_does_alone() -> None:
    # Three readings in a row 9 days ahead (max_clock_jump_s is a day) would be taken as a clock
    # set forward; one in order between them breaks the run, so the third far one is refused too.
    ahead = T0_US + 9 * 86_400_000_000
    readings: list[tuple[int, str, str, Any, str]] = [
        (T0_US, "m1", "power_kw", 10.0, "good"),
        (ahead, "m1", "power_kw", 11.0, "good"),
        (ahead + 1, "m1", "power_kw", 12.0, "good"),
        (T0_US + 1_000_000, "m1", "power_kw", 13.0, "good"),
        (ahead + 2, "m1", "power_kw", 14.0, "good"),
    ]
    single, batched = build_engine(PLANT, reorder=False), build_engine(PLANT, reorder=False)
    expected = one_by_one(single, readings, [None] * len(readings))
    assert [(i, reason) for i, reason, _, _ in expected] == [
        (1, "clock_jump"),
        (2, "clock_jump"),
        (4, "clock_jump"),
    ]
    got = [(i, exc.reason, str(exc), exc.held) for i, exc in batched.push_many(readings)]
    assert got == expected
    assert state_of(batched) == state_of(single)


def test_receipt_times_must_pair_with_the_readings() -> None:
    engine = build_engine(PLANT, reorder=False)
    readings: list[tuple[int, str, str, Any, str]] = [(T0_US, "m1", "power_kw", 10.0, "good")] * 2
    with pytest.raises(ValueError, match="zip"):
        engine.push_many(readings, [T0_US])
