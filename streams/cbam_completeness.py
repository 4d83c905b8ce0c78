"""Data completeness of a CBAM reporting period: hours with data against the calendar's operating hours.

A report that rests on part of the year must say so (docs/cbam.md). For each production process:

- **operating time**: the union of its machines' planned time in the period, from their shift
  calendars (shift instances, breaks included: meters report through breaks), or the whole period
  for a machine without a calendar [ISO22400-2] (streams.calendar);
- **data**: the windows in which a machine's electricity meter (power or energy register) covered
  part of the window (``coverage`` > 0 on its ``energy`` point, docs/points.md). The engine fills a
  silence with empty windows, so the presence of a window is not data; the meter's coverage is;
- **gaps**: the operating time of each metered machine without its data, united over the process.
  Gaps separated only by time outside the calendar are one gap (a weekend does not split an outage);
  a gap's ``hours`` are the operating hours missing in it;
- **completeness** = (operating hours - missing hours) / operating hours.

A process with no electricity meter has no measure of its data: its completeness is ``None``.
Missing data is not filled in: the figures cover the hours with data only. Pure: no I/O, no clock.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo

from streams.calendar import US, Schedule

__all__ = [
    "NOT_MEASURED",
    "Gap",
    "ProcessCompleteness",
    "Span",
    "data_spans",
    "local_text",
    "operating_spans",
    "process_completeness",
]

NOT_MEASURED = "no machine of the process has an electricity meter, whose coverage measures the data"
"""Why a process's completeness is empty."""

Span = tuple[int, int]
"""A half-open interval ``[start, end)`` in microseconds since the Unix epoch (UTC)."""

_HOUR_US = 3600 * US


def _merge(spans: Iterable[Span]) -> list[Span]:
    """Sorted, non-overlapping spans covering the same time; touching spans are joined."""
    out: list[Span] = []
    for start, end in sorted(s for s in spans if s[1] > s[0]):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def _subtract(spans: Sequence[Span], removed: Sequence[Span]) -> list[Span]:
    """``spans`` minus ``removed``; both sorted and merged."""
    out: list[Span] = []
    j = 0
    for start, end in spans:
        cursor = start
        while j < len(removed) and removed[j][1] <= cursor:
            j += 1
        k = j
        while k < len(removed) and removed[k][0] < end:
            if removed[k][0] > cursor:
                out.append((cursor, removed[k][0]))
            cursor = max(cursor, removed[k][1])
            k += 1
        if cursor < end:
            out.append((cursor, end))
    return out


def _length(spans: Iterable[Span]) -> int:
    return sum(end - start for start, end in spans)


def operating_spans(
    schedule: Schedule, start_us: int, end_us: int, zone_days: tuple[date, date]
) -> list[Span]:
    """The planned time of a machine in ``[start_us, end_us)``, from its calendar.

    Args:
        schedule: the machine's calendar (``always_on`` without one: the whole period is planned).
        start_us: the period's start (µs, UTC).
        end_us: the period's end (µs, UTC), exclusive.
        zone_days: the first and last local date of the period; shifts that start the day before
            the first are included (a night shift crossing midnight).
    """
    if schedule.always_on:
        return [(start_us, end_us)]
    first, last = zone_days
    spans = []
    day = first - timedelta(days=1)
    while day <= last:
        for shift in schedule.instances(day):
            spans.append((max(shift.start, start_us), min(shift.end, end_us)))
        day += timedelta(days=1)
    return _merge(spans)


def data_spans(window_starts: Iterable[int], window_us: int) -> list[Span]:
    """Contiguous runs of the windows (by their start, µs) in which a meter had data."""
    return _merge((start, start + window_us) for start in window_starts)


@dataclass(frozen=True)
class Gap:
    """A stretch without data: first and last missing operating moment, and the operating hours missing."""

    start_us: int
    end_us: int
    missing_us: int

    @property
    def hours(self) -> float:
        """Operating hours missing in the gap."""
        return self.missing_us / _HOUR_US


@dataclass(frozen=True)
class ProcessCompleteness:
    """The data completeness of one production process over a period.

    Attributes:
        process: the process's id.
        operating_us: its operating time in the period (µs).
        missing_us: the operating time without data (µs); ``None`` when not measurable.
        gaps: every gap, in time order (empty when not measurable).
        unmetered: the process's machines without an electricity meter, whose data is not seen.
    """

    process: str
    operating_us: int
    missing_us: int | None
    gaps: tuple[Gap, ...]
    unmetered: tuple[str, ...]

    @property
    def operating_hours(self) -> float:
        """Operating hours in the period."""
        return self.operating_us / _HOUR_US

    @property
    def hours_with_data(self) -> float | None:
        """Operating hours with data."""
        return None if self.missing_us is None else (self.operating_us - self.missing_us) / _HOUR_US

    @property
    def share(self) -> float | None:
        """Hours with data over operating hours (1 when nothing was to operate); ``None``: not measurable."""
        if self.missing_us is None:
            return None
        if self.operating_us == 0:
            return 1.0
        return (self.operating_us - self.missing_us) / self.operating_us

    def largest(self, count: int) -> list[Gap]:
        """The ``count`` gaps with the most missing hours, in time order."""
        biggest = sorted(self.gaps, key=lambda g: (-g.missing_us, g.start_us))[:count]
        return sorted(biggest, key=lambda g: g.start_us)

    def meets(self, threshold: float) -> bool:
        """Whether the share reaches ``threshold``; a share that cannot be measured never does."""
        share = self.share
        return share is not None and share >= threshold


def process_completeness(
    process: str,
    operating: Mapping[str, Sequence[Span]],
    data: Mapping[str, Sequence[Span]],
) -> ProcessCompleteness:
    """The completeness of a process from its machines' operating time and data.

    Args:
        process: the process's id.
        operating: machine id -> its operating spans in the period (see :func:`operating_spans`),
            for every machine of the process.
        data: machine id -> its data spans (see :func:`data_spans`), for the machines with an
            electricity meter only; a machine absent here is unmetered.
    """
    all_operating = _merge(span for spans in operating.values() for span in spans)
    unmetered = tuple(m for m in operating if m not in data)
    if not data:
        return ProcessCompleteness(process, _length(all_operating), None, (), unmetered)
    missing = _merge(
        span
        for machine, spans in data.items()
        for span in _subtract(_merge(operating.get(machine, ())), _merge(spans))
    )
    with_data = _subtract(all_operating, missing)
    return ProcessCompleteness(
        process, _length(all_operating), _length(missing), tuple(_join(missing, with_data)), unmetered
    )


def _join(missing: Sequence[Span], with_data: Sequence[Span]) -> list[Gap]:
    """Gaps: runs of missing spans not separated by operating time with data."""
    gaps: list[Gap] = []
    data_starts = [start for start, _ in with_data]
    seen = 0  # spans with data that start before the current missing span
    for start, end in missing:
        before = bisect_left(data_starts, start)
        if gaps and before == seen:
            last = gaps[-1]
            gaps[-1] = Gap(last.start_us, end, last.missing_us + end - start)
        else:
            gaps.append(Gap(start, end, end - start))
        seen = before
    return gaps


def local_text(moment_us: int, zone: tzinfo) -> str:
    """``moment_us`` as local ISO time to the minute with its offset (for reports)."""
    return datetime.fromtimestamp(moment_us / US, tz=zone).isoformat(timespec="minutes")
