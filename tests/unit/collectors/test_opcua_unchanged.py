"""The source clock a live subscription vouches for, and which silent tags are due again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from collectors.opcua_unchanged import UnchangedValues

T0 = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)
GOOD, UNCERTAIN, BAD = 0, 0x40000000, 0x80000000


def s(seconds: float) -> timedelta:
    return timedelta(seconds=seconds)


def test_nothing_is_vouched_for_before_the_subscription_delivers() -> None:
    unchanged: UnchangedValues[str] = UnchangedValues(s(60))
    assert unchanged.clock(100.0) is None
    assert unchanged.due([("counter", (T0, 5, GOOD))], 100.0)[1] == []


def test_the_clock_is_the_newest_event_time_plus_the_time_to_the_latest_message() -> None:
    unchanged: UnchangedValues[str] = UnchangedValues(s(60))
    unchanged.delivered(T0, at=1000.0)
    unchanged.delivered(T0 - s(5), at=1002.0)  # older event time: the newest stays
    assert unchanged.clock(1000.0) == T0
    # A keep-alive 30 s after the newest value arrived vouches for 30 s more of the source's time.
    assert unchanged.clock(1030.0) == T0 + s(30)
    # A message stamped before the value's arrival (another subscription's) never moves it back.
    assert unchanged.clock(990.0) == T0
    unchanged.delivered(T0 + s(40), at=1035.0)
    assert unchanged.clock(1035.0) == T0 + s(40)


def test_a_tag_silent_for_the_period_is_due_at_the_clock_with_its_last_value() -> None:
    unchanged: UnchangedValues[str] = UnchangedValues(s(60))
    unchanged.delivered(T0 + s(100), at=500.0)
    taken = {
        "standing_counter": (T0, 5, GOOD),  # 100 s silent as of the clock
        "just_silent": (T0 + s(40), 7, GOOD),  # 60 s: due (at the bound)
        "recent": (T0 + s(41), 9, GOOD),  # 59 s: not yet
        "uncertain": (T0, 3.5, UNCERTAIN),
        "bad": (T0, None, BAD),  # a bad value says nothing about the process
        "never": None,  # no value this session
    }
    at, due = unchanged.due(taken.items(), 500.0)
    assert at == T0 + s(100)
    assert due == ["standing_counter", "just_silent", "uncertain"]


def test_a_server_that_stops_answering_vouches_for_nothing_past_its_last_message() -> None:
    unchanged: UnchangedValues[str] = UnchangedValues(s(60))
    unchanged.delivered(T0, at=0.0)
    # The last message (data or keep-alive) came 10 s after the value; the host's clock ran on
    # for an hour since, but only the message counts.
    at, due = unchanged.due([("counter", (T0 - s(55), 1, GOOD))], last_message_at=10.0)
    assert at == T0 + s(10)
    assert due == ["counter"]  # 65 s silent as of T0 + 10 s
    at, due = unchanged.due([("counter", (T0 - s(45), 1, GOOD))], last_message_at=10.0)
    assert due == []  # 55 s silent as of T0 + 10 s, however long ago that message came


def test_a_new_session_forgets_the_clock() -> None:
    unchanged: UnchangedValues[str] = UnchangedValues(s(60))
    unchanged.delivered(T0, at=0.0)
    unchanged.forget()
    assert unchanged.clock(100.0) is None
    unchanged.delivered(T0 - s(600), at=200.0)  # the new session's server clock is behind: fine
    assert unchanged.clock(200.0) == T0 - s(600)
