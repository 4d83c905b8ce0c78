"""Data completeness of a CBAM reporting period: hours with data against the calendar's operating hours.

A report that rests on part of the year must say so (docs/cbam.md). For each production process:

- **operating time**: the union of its machines' planned time in the period, from their shift
  calendars (shift instances, breaks included: meters report through breaks), or the whole period
  for a machine without a calendar [ISO22400-2] (streams.calendar);
- **meters**: every meter the process's figures rest on, of five kinds (:data:`METER_KINDS`): the
  ``electricity`` meters of its machines (indirect emissions), the ``source_stream`` activity
  signals (a weigh scale or counter: direct emissions), the ``fuel`` meters of its machines (direct
  emissions), the ``production`` counter or scale of each good (the SEE's denominator) and the
  scales of metered precursors (``transfer``: the embedded emissions of own-made precursors);
- **data**: the windows in which a meter covered part of the window (``coverage`` on ``energy``
  points, ``count_coverage`` on ``oee`` points, ``fuel_coverage`` on ``carbon`` points > 0,
  docs/points.md). The engine fills a silence with empty windows, so the presence of a window is
  not data; the meter's coverage is. A meter must report while the process operates and its own
  machine is planned (a feeder with its own calendar);
- **gaps**: per kind, the operating time of each of its meters without data, united over the kind.
  Gaps separated only by time outside the calendar are one gap (a weekend does not split an outage);
  a gap's ``hours`` are the operating hours missing in it, its ``meters`` those silent in it;
- **completeness** per kind = (operating hours - missing hours) / operating hours; **overall**, the
  lowest of the kinds. Each figure of the report rests on one kind (direct emissions on the
  streams and fuels, indirect on electricity, the SEE's denominator on production), so the lowest
  share says how much of its data the worst-covered figure lacks; uniting the gaps of all kinds
  would instead count an hour as missing for every figure when one meter of one figure is silent.

A process with no electricity meter has no measure of its data: its overall completeness is
``None`` (its indirect emissions are not known either), though the other kinds are still given.
Missing data is not filled in: the figures cover the hours with data only. Pure: no I/O, no clock.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo

from streams.calendar import US, Schedule

__all__ = [
    "METER_KINDS",
    "NOT_MEASURED",
    "Gap",
    "KindCompleteness",
    "Meter",
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

METER_KINDS = ("electricity", "source_stream", "fuel", "production", "transfer")
"""The kinds of meters a process's figures rest on, in the order reports list them."""


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


def _intersect(spans: Sequence[Span], other: Sequence[Span]) -> list[Span]:
    """The time in both; both sorted and merged."""
    return _subtract(spans, _subtract(spans, other))


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
    meters: tuple[str, ...] = ()
    """The meters without data in all or part of the gap (their names, see :class:`Meter`)."""

    @property
    def hours(self) -> float:
        """Operating hours missing in the gap."""
        return self.missing_us / _HOUR_US


@dataclass(frozen=True)
class Meter:
    """A meter a process's figures rest on, with the time it must report and the time it did.

    Attributes:
        kind: one of :data:`METER_KINDS`.
        name: how reports name it (the signal and machine, and what it measures).
        operating: when it must report (its machine's planned time); only the part within the
            process's operating time counts.
        data: the spans with data (see :func:`data_spans`).
    """

    kind: str
    name: str
    operating: Sequence[Span]
    data: Sequence[Span]


@dataclass(frozen=True)
class KindCompleteness:
    """The completeness of one kind of meter of a process: missing time, gaps and the meters."""

    kind: str
    operating_us: int
    missing_us: int
    gaps: tuple[Gap, ...]
    meters: tuple[str, ...]

    @property
    def hours_with_data(self) -> float:
        """Operating hours in which every meter of the kind had data."""
        return (self.operating_us - self.missing_us) / _HOUR_US

    @property
    def share(self) -> float:
        """Hours with data over operating hours (1 when nothing was to operate)."""
        if self.operating_us == 0:
            return 1.0
        return (self.operating_us - self.missing_us) / self.operating_us


@dataclass(frozen=True)
class ProcessCompleteness:
    """The data completeness of one production process over a period.

    Attributes:
        process: the process's id.
        operating_us: its operating time in the period (µs).
        missing_us: the operating time without data (µs); ``None`` when not measurable.
        gaps: every gap of every kind, in time order (empty when not measurable).
        unmetered: the process's machines without an electricity meter, whose data is not seen.
        kinds: the completeness per kind of meter, in the order of :data:`METER_KINDS`;
            ``missing_us`` is the most any kind misses (the overall share is the lowest).
    """

    process: str
    operating_us: int
    missing_us: int | None
    gaps: tuple[Gap, ...]
    unmetered: tuple[str, ...]
    kinds: tuple[KindCompleteness, ...] = ()

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
    meters: Sequence[Meter] = (),
) -> ProcessCompleteness:
    """The completeness of a process from its machines' operating time and its meters' data.

    Args:
        process: the process's id.
        operating: machine id -> its operating spans in the period (see :func:`operating_spans`),
            for every machine of the process.
        data: machine id -> its electricity meter's data spans (see :func:`data_spans`), for the
            machines with an electricity meter only; a machine absent here is unmetered.
        meters: the other meters the figures rest on (source streams, fuels, production,
            transfers).
    """
    all_operating = _merge(span for spans in operating.values() for span in spans)
    unmetered = tuple(m for m in operating if m not in data)
    electricity = [
        Meter("electricity", f"electricity meter of {m}", operating.get(m, ()), spans)
        for m, spans in data.items()
    ]
    kinds = tuple(
        _kind(kind, all_operating, [m for m in (*electricity, *meters) if m.kind == kind])
        for kind in METER_KINDS
        if any(m.kind == kind for m in (*electricity, *meters))
    )
    unknown = sorted({m.kind for m in meters} - set(METER_KINDS))
    if unknown:
        raise ValueError(f"unknown meter kind(s) {', '.join(unknown)} (known: {', '.join(METER_KINDS)})")
    if not data:
        return ProcessCompleteness(process, _length(all_operating), None, (), unmetered, kinds)
    # The same stretch silent on meters of several kinds (a plant that stopped sending) is one gap.
    same: dict[tuple[int, int], Gap] = {}
    for g in (g for k in kinds for g in k.gaps):
        seen = same.get((g.start_us, g.end_us))
        same[(g.start_us, g.end_us)] = (
            g
            if seen is None
            else Gap(g.start_us, g.end_us, max(seen.missing_us, g.missing_us), seen.meters + g.meters)
        )
    gaps = sorted(same.values(), key=lambda g: (g.start_us, g.end_us))
    missing = max(k.missing_us for k in kinds)
    return ProcessCompleteness(process, _length(all_operating), missing, tuple(gaps), unmetered, kinds)


def _kind(kind: str, all_operating: Sequence[Span], meters: Sequence[Meter]) -> KindCompleteness:
    """The missing time and gaps of one kind: its meters' silences while they must report."""
    silent = {
        m.name: _subtract(_intersect(_merge(m.operating), all_operating), _merge(m.data)) for m in meters
    }
    missing = _merge(span for spans in silent.values() for span in spans)
    with_data = _subtract(all_operating, missing)
    gaps = tuple(
        Gap(
            g.start_us,
            g.end_us,
            g.missing_us,
            tuple(name for name, spans in silent.items() if _overlaps(spans, g.start_us, g.end_us)),
        )
        for g in _join(missing, with_data)
    )
    return KindCompleteness(kind, _length(all_operating), _length(missing), gaps, tuple(silent))


def _overlaps(spans: Sequence[Span], start: int, end: int) -> bool:
    return any(a < end and b > start for a, b in spans)


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
