"""Stop events and the reason tree: arithmetic shown in each test."""

from __future__ import annotations

import pytest

from streams.reasons import UNASSIGNED, Reason, ReasonTree, code_text, default_loss
from streams.stops import StopEvent, StopTracker, stops_from_timeline

S = 1_000_000
TREE = ReasonTree(
    codes={"12": ("film break", "material"), "7": ("jam", "mechanical")},
    groups={"material": "small_stop", "mechanical": "breakdown"},
    by_type={"press": {"12": ("die change", "changeover")}},
)


def test_codes_compare_by_their_text_form() -> None:
    # 12, 12.0 and "12" are one code; 12.5 stays its own.
    assert code_text(12) == code_text(12.0) == code_text(" 12") == "12"
    assert code_text(12.5) == "12.5"
    assert TREE.resolve(12.0) == Reason("12", "film break", "material", "small_stop")


def test_a_machine_type_overrides_a_shared_code() -> None:
    # The press means a die change by 12; the group has no loss category, so the state decides.
    assert TREE.resolve(12, "press") == Reason("12", "die change", "changeover", None)
    assert TREE.resolve(7, "press").name == "jam"  # not overridden: the shared code


def test_an_unknown_code_is_its_own_reason_never_lost() -> None:
    assert TREE.resolve(4711) == Reason("4711", "code 4711", "unknown", None)
    assert TREE.resolve("E-ABC").name == "code E-ABC"


def test_garbage_codes_stay_bounded_and_no_code_is_unassigned() -> None:
    reason = TREE.resolve("x" * 10_000)
    assert reason.name == "code " + "x" * 64  # the tag value is bounded, the code kept whole
    assert TREE.resolve(0) is UNASSIGNED
    assert TREE.resolve("") is UNASSIGNED
    assert TREE.resolve(None) is UNASSIGNED


def test_default_loss_follows_the_state() -> None:
    assert [default_loss(c) for c in ("down", "off", "setup", "idle")] == [
        "breakdown",
        "breakdown",
        "setup",
        "small_stop",
    ]


def test_stops_are_runs_of_one_non_running_category() -> None:
    # running 0-100 s, down 100-160 s, idle 160-190 s, running 190-300 s, setup 300-400 s (open at
    # the end: not ended, so no event).
    states = [(0, "running"), (100 * S, "down"), (160 * S, "idle"), (190 * S, "running"), (300 * S, "setup")]
    events = stops_from_timeline(states, [], 400 * S)
    assert events == [
        StopEvent(100 * S, 160 * S, "down", None, False, 60 * S),
        StopEvent(160 * S, 190 * S, "idle", None, False, 30 * S),
    ]


def test_repeated_state_readings_do_not_split_a_stop() -> None:
    states = [(0, "running"), (10 * S, "down"), (20 * S, "down"), (30 * S, "running")]
    assert stops_from_timeline(states, [], 40 * S) == [StopEvent(10 * S, 30 * S, "down", None, False, 20 * S)]


def test_micro_flag_at_or_below_the_threshold() -> None:
    # idle for 5 s and down for 6 s with a 5 s threshold: the first is micro, the second is not;
    # setup is never micro.
    states = [(0, "running"), (10 * S, "idle"), (15 * S, "running"), (20 * S, "down"), (26 * S, "running")]
    states += [(30 * S, "setup"), (32 * S, "running")]
    micro = [e.micro for e in stops_from_timeline(states, [], 40 * S, micro_stop_max_us=5 * S)]
    assert micro == [True, False, False]


def test_first_cause_is_the_code_active_when_the_stop_began() -> None:
    # Code 7 (jam) at 99 s, the stop at 100 s, then 12 (film break) at 120 s while it lasts.
    states = [(0, "running"), (100 * S, "down"), (160 * S, "running")]
    codes = [(99 * S, 7), (120 * S, 12)]
    assert stops_from_timeline(states, codes, 200 * S)[0].code == "7"
    assert stops_from_timeline(states, codes, 200 * S, rule="last")[0].code == "12"


def test_a_code_at_the_same_instant_is_active_at_the_start_in_either_order() -> None:
    # A stale 7 from before; at 100 s the state and code 12 arrive together.
    tracker = StopTracker()
    tracker.reason(50 * S, 7)
    tracker.begin(100 * S, "down")
    tracker.reason(100 * S, 12)  # the code after the state, same time
    tracker.book(10 * S)
    event = tracker.end(110 * S, micro=False)
    assert event is not None
    assert event.code == "12"


def test_no_code_at_the_start_takes_the_first_during_the_stop() -> None:
    # 0 means "no reason": the code cleared at 90 s, the stop at 100 s, 12 at 105 s, 7 at 110 s.
    states = [(0, "running"), (100 * S, "idle"), (130 * S, "running")]
    codes = [(80 * S, 7), (90 * S, 0), (105 * S, 12), (110 * S, 7)]
    event = stops_from_timeline(states, codes, 200 * S)[0]
    assert event.code == "12"
    assert TREE.resolve(event.code).loss == "small_stop"


def test_a_stop_without_any_code_is_unassigned() -> None:
    event = stops_from_timeline([(0, "running"), (10 * S, "down"), (20 * S, "running")], [], 30 * S)[0]
    assert event.code is None
    assert TREE.resolve(event.code) is UNASSIGNED


def test_unknown_state_ends_a_stop() -> None:
    # A bad-quality state (None) at 50 s ends the down stop that began at 10 s.
    events = stops_from_timeline([(0, "running"), (10 * S, "down"), (50 * S, None)], [], 90 * S)
    assert events == [StopEvent(10 * S, 50 * S, "down", None, False, 40 * S)]


def test_a_stop_with_no_planned_busy_time_is_no_stop() -> None:
    # The calendar booked none of it (wholly inside a break): the time model gave no busy time.
    tracker = StopTracker()
    tracker.begin(0, "idle")
    assert tracker.end(60 * S, micro=False) is None


def test_the_tracker_survives_a_checkpoint() -> None:
    tracker = StopTracker("last")
    tracker.reason(0, "12")
    tracker.begin(5 * S, "down")
    tracker.book(3 * S)
    twin = StopTracker.from_list(tracker.to_list())
    assert twin.to_list() == tracker.to_list()
    assert (
        twin.end(8 * S, False)
        == tracker.copy().end(8 * S, False)
        == StopEvent(5 * S, 8 * S, "down", "12", False, 3 * S, "last")
    )
    event = StopEvent(1, 2, "idle", None, True, 1)
    assert StopEvent.from_list(event.to_list()) == event


def test_an_unknown_rule_is_refused() -> None:
    with pytest.raises(ValueError, match="reason rule 'latest'"):
        StopTracker("latest")
