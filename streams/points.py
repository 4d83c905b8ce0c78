"""Window results as ``oee``, ``losses``, ``energy`` and ``carbon`` points; stops as ``stop`` points.

docs/points.md describes every field.

A window point's time is the window's start; its identity (measurement, tags, time) is stable, so
a corrected window re-emitted later overwrites the first one downstream. ``revision`` counts the
corrections.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from plantstream.plant.schema import OeeMethod
from plantstream.records import (
    EPOCH,
    QUALITY_TEXT,
    FieldValue,
    Point,
    Reading,
    ReadingRow,
    ReadingTuple,
    Value,
    reading_row_point,
)
from streams.calendar import US
from streams.config import CarbonSpec
from streams.energy import US_PER_HOUR, specific_energy
from streams.kpis import iso_kpis
from streams.losses import SixLosses, six_losses
from streams.machine import WindowResult
from streams.oee import element_fields, oee_kpis
from streams.reasons import Reason, default_loss
from streams.stops import StopEvent

__all__ = [
    "WindowPoints",
    "decoded_reading_point",
    "decoded_reading_row",
    "field_value",
    "reading_point",
    "reading_row",
    "stop_point",
    "window_label",
]


def window_label(window_us: int) -> str:
    """A short tag value for a window length: ``1m``, ``15m``, ``1h``, ``90s``."""
    seconds = window_us // US
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


class WindowPoints:
    """Builds the points of closed windows for one scope (a machine, a line or a site)."""

    # One builder a machine: no instance dict.
    __slots__ = (
        "carbon",
        "has_counts",
        "has_energy",
        "has_fuel",
        "has_oee",
        "has_rework",
        "meter_coverage",
        "method",
        "micro_stop_max_s",
        "per_good_unit",
        "tags",
        "window_tag",
    )

    def __init__(
        self,
        tags: dict[str, str],
        method: OeeMethod,
        micro_stop_max_us: int | None,
        window_tag: str,
        has_oee: bool,
        has_energy: bool,
        carbon: CarbonSpec | None,
        per_good_unit: bool,
        has_counts: bool = True,
        meter_coverage: bool = False,
        has_fuel: bool = False,
        has_rework: bool = False,
    ) -> None:
        self.tags = tags
        self.method = method
        self.micro_stop_max_s = None if micro_stop_max_us is None else micro_stop_max_us / US
        self.window_tag = window_tag
        self.has_oee = has_oee
        self.has_energy = has_energy
        self.carbon = carbon
        self.per_good_unit = per_good_unit
        self.has_counts = has_counts
        self.meter_coverage = meter_coverage
        """A machine's points carry its counters' and fuel meters' coverage (roll-ups do not)."""
        self.has_fuel = has_fuel
        self.has_rework = has_rework
        """The scope counts rework (every machine of it that counts pieces has a rework counter)."""

    def points(
        self,
        result: WindowResult,
        revision: int,
        extra: dict[str, FieldValue] | None = None,
        losses: SixLosses | None = None,
    ) -> list[Point]:
        """The points of one closed window (or roll-up); empty measurements are left out.

        ``losses`` are a roll-up's (its members' summed); a machine's come from its elements.
        """
        tags = dict(self.tags)
        if result.kind == "shift":
            tags["window"] = "shift"
        else:
            tags["window"] = self.window_tag
        if result.shift is not None:
            tags["shift"] = result.shift
        time = EPOCH + timedelta(microseconds=result.start)
        common: dict[str, FieldValue] = {"revision": revision, **(extra or {})}
        out = []
        e = result.elements
        if self.has_oee and (e.scheduled > 0 or e.total > 0):
            kpis = oee_kpis(e, self.method)
            if not self.has_counts:
                # Without piece counts only availability means anything.
                kpis = {k: v for k, v in kpis.items() if k == "availability"}
            fields: dict[str, FieldValue] = {
                **kpis,
                **iso_kpis(e, has_counts=self.has_counts, rework=e.rework if self.has_rework else None),
                **element_fields(e),
            }
            if self.has_rework:
                fields["rework_count"] = e.rework
            if self.micro_stop_max_s is not None:
                fields["micro_stop_max_s"] = self.micro_stop_max_s
            if self.meter_coverage and self.has_counts:
                fields["count_coverage"] = result.count_covered_us / (result.end - result.start)
            out.append(Point.trusted(measurement="oee", tags=tags, fields=fields | common, time=time))
            if e.scheduled > 0:
                six = losses if losses is not None else six_losses(e, has_counts=self.has_counts)
                loss_fields: dict[str, FieldValue] = {**six.fields(), "stops": e.stops}
                out.append(
                    Point.trusted(measurement="losses", tags=tags, fields=loss_fields | common, time=time)
                )
        span_h = (result.end - result.start) / US_PER_HOUR
        if self.has_energy:
            fields = {"kwh": result.kwh, "avg_kw": result.kwh / span_h}
            fields["coverage"] = result.energy_covered_us / (result.end - result.start)
            sec = specific_energy(result.kwh, e.good) if self.per_good_unit else None
            if sec is not None:
                fields["kwh_per_good_unit"] = sec
            out.append(Point.trusted(measurement="energy", tags=tags, fields=fields | common, time=time))
        if self.carbon is not None and (self.has_energy or result.fuel_tj):
            total = result.scope1_kg + result.scope2_location_kg
            fields = {
                "co2e_kg": total,
                "scope1_co2e_kg": result.scope1_kg,
                "scope1_co2_kg": result.scope1_co2_kg,
                "scope2_location_kg": result.scope2_location_kg,
                "grid_factor_t_per_mwh": self.carbon.grid.t_per_mwh,
            }
            if result.scope2_market_kg is not None:
                fields["scope2_market_kg"] = result.scope2_market_kg
            if self.per_good_unit and e.good > 0:
                fields["co2e_kg_per_good_unit"] = total / e.good
            if self.meter_coverage and self.has_fuel:
                fields["fuel_coverage"] = result.fuel_covered_us / (result.end - result.start)
            out.append(Point.trusted(measurement="carbon", tags=tags, fields=fields | common, time=time))
        return out


def reading_point(reading: Reading, site: str, line: str) -> Point:
    """A raw reading as a ``reading`` point, so any tag can be charted beside the computed ones.

    Numbers (and flags, as 1.0 / 0.0) go to ``value`` as floats, text to ``value_str``; ``quality``
    and the raw OPC UA ``status_code`` where there is one. A bad reading without a value has no
    ``value`` field.
    """
    return _reading_point(
        reading.ts,
        reading.machine,
        reading.signal,
        reading.value,
        QUALITY_TEXT[reading.quality],
        reading.status_code,
        site,
        line,
    )


def reading_row(reading: Reading | ReadingTuple, ts: int, site: str, line: str) -> ReadingRow:
    """``reading`` (of event time ``ts`` in µs) as the row of its ``reading`` point (records.ReadingRow).

    What :func:`reading_point` says, without the :class:`Point`: the sinks write the row directly.
    """
    value = reading.value
    return (
        ts,
        reading.ts,
        site,
        line,
        reading.machine,
        reading.signal,
        value if value.__class__ is float else field_value(value),
        QUALITY_TEXT[reading.quality],
        reading.status_code,
    )


def decoded_reading_point(
    parts: tuple[int, str, str, Value | None, str, int | None], site: str, line: str
) -> Point:
    """:func:`reading_point` of a reading decoded by :func:`plantstream.records.decode_reading`."""
    return reading_row_point(decoded_reading_row(parts, site, line))


def decoded_reading_row(
    parts: tuple[int, str, str, Value | None, str, int | None], site: str, line: str
) -> ReadingRow:
    """:func:`reading_row` of a reading decoded by :func:`plantstream.records.decode_reading`."""
    ts, machine, signal, value, quality, status_code = parts
    time = _TIMES.get(ts)
    if time is None:
        if len(_TIMES) >= _TIMES_REMEMBERED:
            _TIMES.clear()
        time = _TIMES[ts] = EPOCH + timedelta(microseconds=ts)
    return (ts, time, site, line, machine, signal, field_value(value), quality, status_code)


# Readings come many to a timestamp (every tag of a sampling tick): their times are made once.
_TIMES: dict[int, datetime] = {}
_TIMES_REMEMBERED = 4096


def _reading_point(
    time: datetime,
    machine: str,
    signal: str,
    value: Value | None,
    quality: str,
    status_code: int | None,
    site: str,
    line: str,
) -> Point:
    # The row's time in µs (first) is for the sinks' encoders; the point needs only the datetime.
    row = (0, time, site, line, machine, signal, field_value(value), quality, status_code)
    return reading_row_point(row)


def field_value(value: Value | None) -> float | str | None:
    """A reading's value as its ``reading`` point holds it: numbers and flags as floats, text as is."""
    if value is None or isinstance(value, str):
        return value
    return float(value)


def stop_point(tags: dict[str, str], event: StopEvent, reason: Reason, revision: int) -> Point:
    """One ended stop as a ``stop`` point; its time (and identity) is the stop's start.

    Tags ``category`` (the state), ``reason`` and ``reason_group`` from the reason tree; the loss
    category is the reason's, or the state's where the reason names none
    (:func:`streams.reasons.default_loss`).
    """
    time = EPOCH + timedelta(microseconds=event.start)
    fields: dict[str, FieldValue] = {
        "start": time.isoformat().replace("+00:00", "Z"),
        "end": (EPOCH + timedelta(microseconds=event.end)).isoformat().replace("+00:00", "Z"),
        "duration_s": event.busy_us / US,
        "micro": event.micro,
        "loss": reason.loss or default_loss(event.category),
        "cause": event.cause,
        "revision": revision,
    }
    if event.code is not None:
        fields["code"] = event.code
    stop_tags = {**tags, "category": event.category, "reason": reason.name, "reason_group": reason.group}
    return Point.trusted(measurement="stop", tags=stop_tags, fields=fields, time=time)
