"""The compact correction history (streams/history.py) against the list of tuples it replaces."""

from __future__ import annotations

from bisect import bisect_left
from operator import itemgetter
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plantstream.records import QUALITY_TEXT, Quality
from streams import history as history_module
from streams.history import History, Row

SIGNALS = ["", "power_kw", "state", "total_count"]
QUALITIES = ["good", "uncertain", "bad", "questionable"]  # the last is none the engine knows: kept aside
VALUES = st.one_of(
    st.floats(allow_nan=False),  # with -0.0 and the infinities
    st.sampled_from([0.0, -0.0, 1.0, 2.0**53, 2.0**53 + 2, 1e-300, -7.5]),
    st.integers(),  # beyond 2**53 too
    st.integers(-(2**53) - 2, 2**53 + 2),
    st.sampled_from([0, 1, -1, 2**53, -(2**53), 2**53 + 1, -(2**53) - 1, 2**64]),
    st.booleans(),
    st.text(max_size=64),
    st.none(),
)
MIXED = [0.5, -0.0, 7, True, None, 2**60, "idle", 1.0, False, 3.25, 2.0]
ROWS = st.tuples(
    st.one_of(
        st.integers(0, 40),  # few event times, so that bisections land among equal ones
        # Times that do not fit the narrow column's offsets: widened, and narrowed after pruning.
        st.sampled_from([-(2**63), 2**31, 2**31 + 40, 2**40, 2**63 - 1]),
    ),
    st.one_of(st.integers(0, 2**63 - 1), st.integers(0, 40)),
    st.sampled_from(SIGNALS),
    VALUES,
    st.sampled_from(QUALITIES),
)
OPERATIONS = st.lists(
    st.one_of(
        st.tuples(st.just("append"), ROWS),
        st.tuples(st.just("append"), ROWS),
        st.tuples(st.just("append"), ROWS),
        st.tuples(st.just("extend"), st.lists(ROWS, max_size=30)),
        # Many readings at little cost to draw: a small prefix deleted then stays in the columns
        # for a while before they are compacted.
        st.tuples(st.just("grow"), st.integers(0, 300), st.integers(0, 40)),
        st.tuples(st.just("del_front"), st.integers(-3, 70)),
        st.tuples(st.just("del_front"), st.integers(1, 5)),
        st.tuples(st.just("del_from"), st.integers(-3, 70)),
        st.tuples(st.just("slice_from"), st.integers(-3, 70)),
        st.tuples(st.just("slice"), st.integers(-70, 70), st.integers(-70, 70), st.sampled_from([1, 2, -1])),
        st.tuples(st.just("get"), st.integers(-70, 70)),
        st.tuples(st.just("bisect"), st.integers(-1, 42)),
    ),
    min_size=3,
    max_size=60,
)


def exact(rows: Any) -> list[tuple[tuple[type, str], ...]]:
    """Rows compared with their types: 1, 1.0 and True, or 0.0 and -0.0, are not the same reading."""
    return [tuple((type(part), repr(part)) for part in row) for row in rows]


def apply(operation: tuple[Any, ...], target: Any) -> Any:
    """Do ``operation`` on ``target`` (the history or the list); return what it gives, if anything."""
    match operation:
        case ("append", row):
            target.append(row)
        case ("extend", rows):
            for row in rows:
                target.append(row)
        case ("grow", count, ts):
            for i in range(count):
                target.append((ts + i // 10, i, SIGNALS[i % 4], MIXED[i % len(MIXED)], QUALITIES[i % 3]))
        case ("del_front", cut):
            del target[:cut]
        case ("del_from", index):
            del target[index:]
        case ("slice_from", index):
            return exact(target[index:])
        case ("slice", start, stop, step):
            return exact(target[start:stop:step])
        case ("get", index):
            try:
                return exact([target[index]])
            except IndexError:
                return "IndexError"
        case ("bisect", ts):
            generic = bisect_left(target, ts, key=itemgetter(0))
            if isinstance(target, History):
                assert target.bisect_time(ts) == generic
            return generic
    return None


@settings(max_examples=400, deadline=None)
@given(operations=OPERATIONS)
def test_the_history_does_what_the_list_of_tuples_does(operations: list[tuple[Any, ...]]) -> None:
    compact, plain = History(), []
    for operation in operations:
        assert apply(operation, compact) == apply(operation, plain), operation
        assert len(compact) == len(plain)
    assert exact(compact) == exact(plain)
    assert exact(compact[0:]) == exact(plain)


def test_values_come_back_as_they_went_in() -> None:
    values = [1, 1.0, True, False, 0, 0.0, -0.0, None, "running", 2**53, 2**53 + 1, -(2**60), float("inf")]
    compact = History()
    for seq, value in enumerate(values):
        compact.append((1_000, seq, "x", value, "good"))
    assert exact(compact) == exact((1_000, seq, "x", value, "good") for seq, value in enumerate(values))
    # Only the values a double cannot give back are kept aside, without the rest of their reading.
    assert compact._aside == ["running", 2**53 + 1, -(2**60)]
    compact.append((1_001, 99, "x", 1.5, "questionable"))  # a quality the engine does not know: all of it
    assert compact._aside[-1] == (1_001, 99, "x", 1.5, "questionable")
    assert compact[-1] == (1_001, 99, "x", 1.5, "questionable")
    # The quality strings are the engine's own objects, not copies.
    assert compact[0][4] is QUALITY_TEXT[Quality.GOOD]


def test_pruning_from_the_front_compacts_the_columns_now_and_then() -> None:
    compact, plain = History(), []
    for seq in range(10_000):
        row: Row = (
            seq // 10,
            seq,
            "power_kw" if seq % 7 else "state",
            float(seq) if seq % 7 else "idle",
            "good",
        )
        compact.append(row)
        plain.append(row)
        if seq % 100 == 99:
            del compact[:37]
            del plain[:37]
            # The deleted prefix waiting in the columns stays under a third of what is kept.
            assert compact._start * 3 <= len(compact)
            assert len(compact._aside) == sum(1 for r in plain if r[3] == "idle")
    assert compact._base > 0
    assert exact(compact) == exact(plain)
    assert compact.bisect_time(500) == bisect_left(plain, 500, key=itemgetter(0))


def test_a_float_reading_costs_18_bytes_of_columns() -> None:
    compact = History()
    t0 = 1_780_000_000_000_000  # µs since 1970, in 2026
    for seq in range(100_000):
        compact.append((t0 + seq * 10_000, 5_000_000_000 + seq, "power_kw", seq * 0.5, "good"))
    columns = (compact._ts, compact._seq, compact._values, compact._signals, compact._tags)
    # Time and sequence as 4-byte offsets (100 000 readings at 100 Hz span 1 000 s, under 2**31 µs),
    # the value 8 bytes, the signal and the tag 1 each.
    assert [column.itemsize for column in columns] == [4, 4, 8, 1, 1]
    assert compact.nbytes == 100_000 * (4 + 4 + 8 + 1 + 1)
    assert compact[0] == (t0, 5_000_000_000, "power_kw", 0.0, "good")
    assert compact[-1] == (t0 + 99_999 * 10_000, 5_000_099_999, "power_kw", 99_999 * 0.5, "good")
    assert not compact._aside


def test_a_history_spanning_more_than_35_minutes_widens_its_time_column_and_narrows_it_again() -> None:
    compact = History()
    t0 = 1_780_000_000_000_000
    hour = 3_600_000_000  # µs: more than 2**31 - 1 (about 35.8 minutes) past the first reading
    compact.append((t0, 1, "power_kw", 1.0, "good"))
    compact.append((t0 + hour, 2, "power_kw", 2.0, "good"))
    assert compact._ts.itemsize == 8
    assert compact.nbytes == 2 * (8 + 4 + 8 + 1 + 1)
    compact.append((t0 + hour + 1, 3, "power_kw", 3.0, "good"))
    del compact[:1]  # a third of the columns deleted: compacted, and the rest spans 1 µs
    assert compact._ts.itemsize == 4
    assert list(compact) == [
        (t0 + hour, 2, "power_kw", 2.0, "good"),
        (t0 + hour + 1, 3, "power_kw", 3.0, "good"),
    ]
    assert compact.bisect_time(t0 + hour + 1) == 1


def test_the_bytes_counted_include_each_value_kept_aside() -> None:
    compact = History()
    compact.append((1, 1, "power_kw", 1.5, "good"))
    compact.append((2, 2, "state", "idle", "good"))
    compact.append((3, 3, "state", "running", "good"))
    width = 4 + 4 + 8 + 1 + 1
    assert compact.nbytes == 3 * width + 2 * history_module.ASIDE_BYTES
    assert compact.nbytes_from(1) == 2 * width + 2 * history_module.ASIDE_BYTES
    assert compact.nbytes_from(3) == 0


def test_more_than_256_signals_widen_the_signal_column() -> None:
    compact = History()
    rows = [(i, i, f"s{i}", float(i), "good") for i in range(300)]
    for row in rows:
        compact.append(row)
    assert compact._signals.itemsize == 2
    assert exact(compact) == exact(rows)


def test_signals_beyond_the_code_range_are_kept_aside(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(history_module, "_MAX_SIGNALS", 3)
    compact = History()
    rows = [(i, i, f"s{i % 5}", float(i), "good") for i in range(20)]
    for row in rows:
        compact.append(row)
    assert exact(compact) == exact(rows)
    assert len(compact._names) == 3  # "" and two more


def test_a_time_that_does_not_fit_changes_nothing() -> None:
    compact = History()
    compact.append((1, 1, "x", "text", "good"))
    with pytest.raises(OverflowError):
        compact.append((2**63, 2, "x", "other", "good"))
    with pytest.raises(OverflowError):
        compact.append((2, 2**63, "x", "other", "good"))
    assert exact(compact) == exact([(1, 1, "x", "text", "good")])


@pytest.mark.parametrize("index", [slice(1, 2), slice(None, None, 2), 0])
def test_only_a_prefix_or_a_suffix_is_deleted(index: Any) -> None:
    compact = History()
    for seq in range(5):
        compact.append((seq, seq, "x", 1.0, "good"))
    with pytest.raises(TypeError):
        del compact[index]
    assert len(compact) == 5
