"""Shift calendars expanded into UTC time: which shift (and break) an instant belongs to.

Source: [ISO22400-2] (docs/references.md) — planned operation time (POT) comes from the shift calendar of
each work unit, as half-open intervals in the plant's local time zone; breaks are planned
downtime (PDOT); holidays remove shifts and overtime adds them.

Tumbling windows are aligned to the Unix epoch. The calendar requires every shift and break
boundary to fall on a window boundary (checked by :func:`check_alignment`), so each window lies
wholly inside one shift instance and wholly inside or outside a break; a shift window is then
exactly the sum of its tumbling windows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from plantstream.plant.schema import Calendar

__all__ = ["US", "Schedule", "ShiftInstance", "WindowProfile", "check_alignment"]

US = 1_000_000
"""Microseconds per second: event times in the core are integer microseconds since the epoch."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True, slots=True)
class ShiftInstance:
    """One occurrence of a shift: its name and UTC bounds, breaks included, in microseconds."""

    name: str
    start: int
    end: int
    breaks: tuple[tuple[int, int], ...]


@dataclass(frozen=True, slots=True)
class WindowProfile:
    """What the calendar says about one tumbling window."""

    shift: ShiftInstance | None
    in_break: bool
    always: bool = False
    """No calendar: every window is planned busy time."""

    @property
    def productive(self) -> bool:
        """True when the window is planned busy time (in a shift and not a break, or no calendar)."""
        return self.always or (self.shift is not None and not self.in_break)


_ALWAYS = WindowProfile(shift=None, in_break=False, always=True)


def _to_us(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1)


class Schedule:
    """A calendar in one time zone, expanded lazily by local date and cached.

    A ``Schedule`` built from ``None`` means "planned all the time" (a 24/7 machine with no
    calendar): every window is planned busy time and there are no shift windows.
    """

    def __init__(self, calendar: Calendar | None, zone: str) -> None:
        self._calendar = calendar
        self._zone = ZoneInfo(zone)
        self._by_date: dict[date, tuple[ShiftInstance, ...]] = {}

    @property
    def always_on(self) -> bool:
        """True when there is no calendar: all time is planned."""
        return self._calendar is None

    def profile(self, window_start: int) -> WindowProfile:
        """Classify the window starting at ``window_start`` (µs); windows never straddle boundaries."""
        if self._calendar is None:
            return _ALWAYS
        shift = self.shift_at(window_start)
        if shift is None:
            return WindowProfile(shift=None, in_break=False)
        in_break = any(a <= window_start < b for a, b in shift.breaks)
        return WindowProfile(shift=shift, in_break=in_break)

    def shift_at(self, instant: int) -> ShiftInstance | None:
        """Return the shift instance containing ``instant`` (µs), if any."""
        local_day = datetime.fromtimestamp(instant / US, tz=self._zone).date()
        # A shift that crosses midnight started on the previous local date.
        for day in (local_day - timedelta(days=1), local_day):
            for shift in self.instances(day):
                if shift.start <= instant < shift.end:
                    return shift
        return None

    def next_shift_time(self, instant: int, horizon_days: int = 14) -> int | None:
        """``instant`` (µs) if it lies in a shift, else the start of the next shift within the horizon.

        ``None`` when no shift starts within ``horizon_days`` (or there is no calendar: then every
        instant is planned and ``instant`` itself is returned).
        """
        if self._calendar is None or self.shift_at(instant) is not None:
            return instant
        local_day = datetime.fromtimestamp(instant / US, tz=self._zone).date()
        for offset in range(horizon_days + 1):
            for shift in self.instances(local_day + timedelta(days=offset)):
                if shift.start > instant:
                    return shift.start
        return None

    def instances(self, day: date) -> tuple[ShiftInstance, ...]:
        """The shift instances (overtime included) that start on the local date ``day``."""
        if self._calendar is None:
            return ()
        cached = self._by_date.get(day)
        if cached is not None:
            return cached
        out: list[ShiftInstance] = []
        if day not in self._calendar.holidays:
            weekday = _WEEKDAYS[day.weekday()]
            for shift in self._calendar.shifts:
                if weekday in shift.days:
                    breaks = tuple(self._span(day, b.start, b.end, shift.start) for b in shift.breaks)
                    start, end = self._span(day, shift.start, shift.end, shift.start)
                    out.append(ShiftInstance(shift.name, start, end, breaks))
        for extra in self._calendar.overtime:
            if extra.date == day:
                start, end = self._span(day, extra.start, extra.end, extra.start)
                out.append(ShiftInstance(extra.name, start, end, ()))
        if len(self._by_date) > 64:  # keep the cache small: time only moves forward
            self._by_date.pop(next(iter(self._by_date)))
        self._by_date[day] = instances = tuple(sorted(out, key=lambda s: s.start))
        return instances

    def _span(self, day: date, start: time, end: time, shift_start: time) -> tuple[int, int]:
        """UTC bounds of ``start``..``end`` on a shift that began at ``shift_start`` on ``day``."""
        start_day = day + timedelta(days=1) if start < shift_start else day
        end_day = start_day + timedelta(days=1) if end <= start else start_day
        a = datetime.combine(start_day, start, tzinfo=self._zone)
        b = datetime.combine(end_day, end, tzinfo=self._zone)
        return _to_us(a), _to_us(b)


def check_alignment(calendar: Calendar, zone: str, window_s: int) -> list[str]:
    """Return one message per shift, break or overtime boundary that is not on a window boundary.

    Offsets are checked for January and July of the current era, which covers daylight saving.
    """
    tz = ZoneInfo(zone)
    offsets = set()
    for month in (1, 7):
        offset = datetime(2026, month, 1, tzinfo=tz).utcoffset()
        assert offset is not None
        offsets.add(int(offset.total_seconds()))
    named: list[tuple[str, time]] = []
    for shift in calendar.shifts:
        named += [(f"shift {shift.name} start", shift.start), (f"shift {shift.name} end", shift.end)]
        named += [(f"shift {shift.name} break", t) for b in shift.breaks for t in (b.start, b.end)]
    named += [(f"overtime {o.date}", t) for o in calendar.overtime for t in (o.start, o.end)]
    problems = []
    for label, moment in named:
        local_s = moment.hour * 3600 + moment.minute * 60 + moment.second
        if moment.microsecond or any((local_s - off) % window_s for off in offsets):
            problems.append(f"{label} at {moment.isoformat()} is not on a {window_s} s window boundary")
    return problems
