"""Data completeness of a CBAM period: operating hours from calendars, data from meter coverage, gaps."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

import pytest

from plantstream.plant.schema import Calendar, Shift
from streams.calendar import US, Schedule
from streams.cbam_completeness import data_spans, operating_spans, process_completeness

H = 3600 * US
ZONE = "Asia/Ho_Chi_Minh"  # UTC+7, no daylight saving time


def us(year: int, month: int, day: int, hour: int = 0) -> int:
    """A local time of Ho Chi Minh City as µs since the epoch (UTC+7)."""
    return int(datetime(year, month, day, hour, tzinfo=UTC).timestamp() * US) - 7 * H


WEEK = (us(2026, 1, 5), us(2026, 1, 12))  # Monday 2026-01-05 to Monday 2026-01-12, local
DAYS = (date(2026, 1, 5), date(2026, 1, 11))
DAY_SHIFT = Calendar(
    shifts=[Shift(name="day", start=time(6), end=time(22), days=["mon", "tue", "wed", "thu", "fri", "sat"])]
)


def test_operating_time_comes_from_the_calendar() -> None:
    # Mon-Sat 06:00-22:00: 6 shifts x 16 h = 96 h in the week; no calendar: 7 x 24 = 168 h.
    spans = operating_spans(Schedule(DAY_SHIFT, ZONE), *WEEK, DAYS)
    assert sum(b - a for a, b in spans) == 96 * H
    assert spans[0] == (us(2026, 1, 5, 6), us(2026, 1, 5, 22))
    assert operating_spans(Schedule(None, ZONE), *WEEK, DAYS) == [WEEK]


def test_gaps_are_operating_time_without_data_and_a_weekend_does_not_split_them() -> None:
    operating = operating_spans(Schedule(DAY_SHIFT, ZONE), *WEEK, DAYS)
    # The furnace's meter has data every hour of the week except Tuesday 10:00-14:00 and from
    # Friday 20:00 on; the mill's every hour.
    furnace = [
        h
        for h in range(WEEK[0], WEEK[1], H)
        if not (us(2026, 1, 6, 10) <= h < us(2026, 1, 6, 14)) and h < us(2026, 1, 9, 20)
    ]
    result = process_completeness(
        "finishing",
        {"furnace": operating, "mill": operating},
        {"furnace": data_spans(furnace, H), "mill": data_spans(range(WEEK[0], WEEK[1], H), H)},
    )
    # Missing: Tuesday 4 h; Friday 20:00-22:00 2 h and Saturday's 16 h, one gap: 18 h.
    # With data: 96 - 4 - 18 = 74 h; completeness 74 / 96.
    assert result.operating_hours == 96
    assert result.hours_with_data == 74
    assert result.share == pytest.approx(74 / 96)
    assert [(g.start_us, g.end_us, g.hours) for g in result.gaps] == [
        (us(2026, 1, 6, 10), us(2026, 1, 6, 14), 4),
        (us(2026, 1, 9, 20), us(2026, 1, 10, 22), 18),
    ]
    assert [g.hours for g in result.largest(1)] == [18]
    assert result.meets(0.77)  # 74 / 96 = 0.7708
    assert not result.meets(0.78)


def test_a_process_without_an_electricity_meter_cannot_be_measured() -> None:
    result = process_completeness("p", {"press": [WEEK]}, {})
    assert result.share is None
    assert result.unmetered == ("press",)
    assert not result.meets(0.0)
