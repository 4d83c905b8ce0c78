"""The readings held for ordering in columns (streams/held.py) against the heap of tuples they replace."""

from __future__ import annotations

import heapq
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.held import Held
from streams.history import Row

VALUES = st.one_of(
    st.floats(allow_nan=False),
    st.integers(),
    st.booleans(),
    st.text(max_size=8),
    st.none(),
)
# An operation: push a reading of this time (the engine's next sequence number), or release every
# reading up to a watermark, as the engine does.
OPERATIONS = st.lists(
    st.one_of(
        st.tuples(
            st.just("push"),
            st.integers(0, 60),  # few times: ties, and readings older than the newest held
            st.sampled_from(["", "power_kw", "state"]),
            VALUES,
            st.sampled_from(["good", "uncertain", "bad"]),
        ),
        st.tuples(st.just("release"), st.one_of(st.none(), st.integers(-5, 65))),
    ),
    max_size=80,
)


def _release(heap: list[Row], watermark: int | None) -> list[Row]:
    out = []
    while heap and (watermark is None or heap[0][0] <= watermark):
        out.append(heapq.heappop(heap))
    return out


@settings(max_examples=300, deadline=None)
@given(OPERATIONS)
def test_held_gives_out_what_the_heap_gives_out_in_the_same_order(operations: list[Any]) -> None:
    heap: list[Row] = []
    held = Held()
    seq = 0
    for operation in operations:
        if operation[0] == "push":
            seq += 1
            _, ts, signal, value, quality = operation
            row = (ts, seq, signal, value, quality)
            heapq.heappush(heap, row)
            held.push(row)
        else:
            watermark = operation[1]
            expected = _release(heap, watermark)
            due = held.up_to(watermark)
            held.drop(len(due))
            # Equal as tuples, and each value of the same type (an int stays an int, a bool a bool).
            assert due == expected
            assert [type(row[3]) for row in due] == [type(row[3]) for row in expected]
        assert len(held) == len(heap)
        assert bool(held) == bool(heap)
        assert held.rows() == sorted(heap)
        if heap:
            assert held.oldest_time() == heap[0][0]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 30), st.integers(0, 10**6)), unique_by=lambda r: r[1], max_size=60))
def test_held_restored_from_any_order_gives_them_out_sorted_and_pushes_after_in_place(
    keys: list[tuple[int, int]],
) -> None:
    # A checkpoint's rows (sorted when written, but any order is taken), then the engine's next readings.
    rows = [(ts, seq, "power_kw", float(seq), "good") for ts, seq in keys]
    held = Held(rows)
    assert held.rows() == sorted(rows)
    later = [(ts, 10**6 + 1 + k, "power_kw", 1.5, "good") for k, ts in enumerate((0, 15, 31, 15))]
    for row in later:
        held.push(row)
    assert held.rows() == sorted(rows + later)


def test_a_release_taken_in_part_keeps_the_rest_held() -> None:
    # Three readings at 1, 2 and 3 s (µs), a watermark at 2 s: two are due, and only the first
    # is dropped (released), so the second and third stay held.
    held = Held()
    for seq, ts in enumerate((1_000_000, 2_000_000, 3_000_000), start=1):
        held.push((ts, seq, "power_kw", 0.5 * seq, "good"))
    due = held.up_to(2_000_000)
    assert [row[0] for row in due] == [1_000_000, 2_000_000]
    held.drop(1)
    assert [row[0] for row in held.rows()] == [2_000_000, 3_000_000]
    assert held.oldest_time() == 2_000_000


def test_values_come_back_of_their_type_when_a_float_column_meets_another_type() -> None:
    held = Held()
    # Floats only: kept as doubles, each one given back equal, the sign of zero included.
    held.push((10, 1, "power_kw", -0.0, "good"))
    held.push((20, 2, "power_kw", 1e308, "good"))
    # An int, a bool and a text among them, one inserted before the newest held.
    held.push((15, 3, "power_kw", 7, "good"))
    held.push((30, 4, "state", True, "good"))
    held.push((40, 5, "state", "RUN", "good"))
    due = held.up_to(None)
    assert due == [
        (10, 1, "power_kw", -0.0, "good"),
        (15, 3, "power_kw", 7, "good"),
        (20, 2, "power_kw", 1e308, "good"),
        (30, 4, "state", True, "good"),
        (40, 5, "state", "RUN", "good"),
    ]
    assert [type(row[3]) for row in due] == [float, int, float, bool, str]
    assert str(due[0][3]) == "-0.0"
    held.drop(len(due))
    # Empty again: floats, then an int appended after them.
    held.push((50, 6, "power_kw", 2.5, "good"))
    held.push((60, 7, "power_kw", 3, "good"))
    assert [(row[3], type(row[3])) for row in held.rows()] == [(2.5, float), (3, int)]
