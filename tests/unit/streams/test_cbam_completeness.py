"""Data completeness of a CBAM period: operating hours from calendars, data from meter coverage, gaps."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

import pytest

from plantstream.plant.schema import Calendar, Shift
from streams.calendar import US, Schedule
from streams.cbam_completeness import Meter, data_spans, operating_spans, process_completeness

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


# 100 operating hours: Monday 2026-01-05 00:00 local to Friday 04:00 (4 x 24 + 4), no calendar.
HUNDRED = (us(2026, 1, 5), us(2026, 1, 5) + 100 * H)


def _hours(first: int, last: int, skip: tuple[int, int] = (0, 0)) -> list[int]:
    """Starts of the hourly windows from ``first`` to ``last`` (exclusive), without ``skip``'s."""
    return [h for h in range(first, last, H) if not skip[0] <= h < skip[1]]


def test_a_weigh_scale_silent_10_of_100_operating_hours_makes_the_process_0_90_and_is_refused_at_0_95() -> (
    None
):
    kiln_data = data_spans(_hours(*HUNDRED), H)  # the kiln's electricity meter: all 100 h
    silent = (HUNDRED[0] + 40 * H, HUNDRED[0] + 50 * H)  # hours 40 to 49 of the feeder: 10 h
    feeder = Meter(
        "source_stream",
        "meal (weigh scale on meal-feeder) of source stream raw-meal",
        [HUNDRED],
        data_spans(_hours(*HUNDRED, skip=silent), H),
    )
    clinker = Meter("production", "clinker (counter on kiln) of good clinker", [HUNDRED], kiln_data)
    result = process_completeness("clinker", {"kiln": [HUNDRED]}, {"kiln": kiln_data}, [feeder, clinker])
    by_kind = {k.kind: k for k in result.kinds}
    # electricity 100/100 = 1.0; production 100/100 = 1.0; source stream (100 - 10)/100 = 0.90.
    assert by_kind["electricity"].share == 1.0
    assert by_kind["production"].share == 1.0
    assert by_kind["source_stream"].share == pytest.approx(0.90)
    # Overall: the lowest kind, 0.90 (the streams' figure lacks 10 % of its data).
    assert result.share == pytest.approx(0.90)
    assert result.hours_with_data == pytest.approx(90)
    assert not result.meets(0.95)
    assert result.meets(0.90)
    [gap] = result.gaps
    assert (gap.start_us, gap.end_us, gap.hours) == (*silent, 10)
    assert gap.meters == ("meal (weigh scale on meal-feeder) of source stream raw-meal",)


def test_the_overall_share_is_the_lowest_kind_not_the_union_of_every_gap() -> None:
    # Electricity silent hours 0-4 (5 h), the feeder hours 50-57 (8 h): electricity 95/100, the
    # stream 92/100; overall 0.92, the lowest; the union would be 87/100 (both figures miss less).
    kiln = data_spans(_hours(*HUNDRED, skip=(HUNDRED[0], HUNDRED[0] + 5 * H)), H)
    feeder = Meter(
        "source_stream",
        "coal",
        [HUNDRED],
        data_spans(_hours(*HUNDRED, skip=(HUNDRED[0] + 50 * H, HUNDRED[0] + 58 * H)), H),
    )
    result = process_completeness("clinker", {"kiln": [HUNDRED]}, {"kiln": kiln}, [feeder])
    assert [(k.kind, k.share) for k in result.kinds] == [("electricity", 0.95), ("source_stream", 0.92)]
    assert result.share == pytest.approx(0.92)
    assert [(g.hours, g.meters) for g in result.gaps] == [
        (5, ("electricity meter of kiln",)),
        (8, ("coal",)),
    ]


def test_a_meter_is_expected_only_while_the_process_operates_and_its_machine_is_planned() -> None:
    # The process operates Mon-Sat 06:00-22:00 (96 h); the feeder's own calendar is always on,
    # and it is silent every night and on Sunday: not a gap (the process was not operating).
    operating = operating_spans(Schedule(DAY_SHIFT, ZONE), *WEEK, DAYS)
    kiln = data_spans(_hours(*WEEK), H)
    feeder_data = [h for h in _hours(*WEEK) if any(a <= h < b for a, b in operating)]
    feeder = Meter("source_stream", "meal", [WEEK], data_spans(feeder_data, H))
    result = process_completeness("clinker", {"kiln": operating}, {"kiln": kiln}, [feeder])
    assert result.share == 1.0
    assert result.operating_hours == 96


def test_garbage_a_meter_named_in_the_plant_file_that_never_reports_is_wholly_missing() -> None:
    kiln = data_spans(_hours(*HUNDRED), H)
    never = Meter("fuel", "gas (fuel meter on burner)", [HUNDRED], [])
    result = process_completeness("clinker", {"kiln": [HUNDRED]}, {"kiln": kiln}, [never])
    # 0 of 100 operating hours: share 0, one gap of 100 h naming the meter.
    assert result.share == 0.0
    assert [(g.hours, g.meters) for g in result.gaps] == [(100, ("gas (fuel meter on burner)",))]


def test_garbage_an_unknown_meter_kind_is_refused_naming_it() -> None:
    with pytest.raises(ValueError, match=r"unknown meter kind\(s\) weight \(known: electricity, "):
        process_completeness("p", {"m": [HUNDRED]}, {}, [Meter("weight", "w", [HUNDRED], [])])


def test_without_an_electricity_meter_the_other_kinds_are_still_given_but_no_overall_share() -> None:
    feeder = Meter("source_stream", "meal", [HUNDRED], data_spans(_hours(*HUNDRED), H))
    result = process_completeness("p", {"kiln": [HUNDRED]}, {}, [feeder])
    assert result.share is None
    assert [(k.kind, k.share) for k in result.kinds] == [("source_stream", 1.0)]
