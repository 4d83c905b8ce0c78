"""Shared test helpers (imported as ``support``): build an engine from plant text, feed it readings."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from plantstream.plant import parse_plant
from plantstream.records import Point, Reading
from streams.config import build_spec
from streams.engine import Engine

BASE_PLANT = """
sites:
  - id: demo
    timezone: {tz}
    country: VN
    {calendar_ref}
    carbon:
      grid: {{country: VN, basis: annual, year: 2023}}
    lines:
      - id: l1
        machines:
          - id: m1
            ideal_cycle_s: 1.0
            signals:
              state: state
              total_count: total_count
              good_count: good_count
              reject_count: reject_count
              power_kw: {{role: power_kw, integration: {integration}}}
              energy_kwh: energy_kwh
{calendars}
production:
  oee_method: {method}
  micro_stop_max_s: {micro}
  allowed_lateness_s: {lateness}
  correction_horizon_s: 3600
"""

DAY_CALENDAR = """
calendars:
  day:
    shifts:
      - {name: day, start: "08:00", end: "16:00"}
"""


def plant_text(
    *,
    tz: str = "UTC",
    calendar: str | None = DAY_CALENDAR,
    method: str = "iso22400",
    micro: float = 0,
    lateness: float = 5,
    integration: str = "trapezoid",
) -> str:
    """The minimal plant with knobs; ``calendar=None`` means planned 24/7."""
    return BASE_PLANT.format(
        tz=tz,
        calendar_ref="calendar: day" if calendar else "",
        calendars=calendar or "",
        method=method,
        micro=micro,
        lateness=lateness,
        integration=integration,
    )


T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def reading(minutes: float, signal: str, value: Any, machine: str = "m1", quality: str = "good") -> Reading:
    """A reading ``minutes`` after 2026-03-02 08:00 UTC."""
    return Reading(
        ts=T0 + timedelta(minutes=minutes), machine=machine, signal=signal, value=value, quality=quality
    )


def one_line_plant(machines: str, *, site: str = "s", line: str = "l") -> str:
    """A plant file of one site (UTC, VN) with one line, whose ``machines`` start on line 8.

    ``machines`` is the machines' YAML list, written from column 0; it is indented to its place.
    """
    header = (
        f"sites:\n  - id: {site}\n    timezone: UTC\n    country: VN\n"
        f"    lines:\n      - id: {line}\n        machines:\n"
    )
    return header + textwrap.indent(textwrap.dedent(machines), " " * 10)


def a_morning() -> list[Reading]:
    """m1 running from 08:00, down 08:01:30-08:02, then running; 180 pieces by 08:03:15, 5 rejects.

    The last reading (running again at 08:03:30) moves a watermark with 5 s of allowed lateness
    past 08:03:15.
    """
    return [
        reading(*item)
        for item in (
            (0, "state", "running"),
            (0, "total_count", 0),
            (0, "good_count", 0),
            (0, "reject_count", 0),
            (1.5, "state", "down"),
            (2, "state", "running"),
            (2.5, "total_count", 150),
            (2.5, "good_count", 150),
            (3.25, "total_count", 180),
            (3.25, "good_count", 175),
            (3.25, "reject_count", 5),
            (3.5, "state", "running"),
        )
    ]


def run_engine(text: str, readings: Iterable[Reading], *, reorder: bool = True) -> list[Point]:
    """Push ``readings`` through an engine for ``text``, flush, and return every point."""
    engine = build_engine(text, reorder=reorder)
    for r in readings:
        engine.push(r)
    engine.flush()
    return engine.take_points()


def select(points: list[Point], measurement: str, **tags: str) -> list[Point]:
    """The points of ``measurement`` whose tags include ``tags``."""
    return [
        p for p in points if p.measurement == measurement and all(p.tags.get(k) == v for k, v in tags.items())
    ]


def build_engine(text: str, *, reorder: bool = True) -> Engine:
    """An engine for plant ``text``."""
    return Engine(build_spec(parse_plant(text).model), reorder=reorder)


ROLLUP_PLANT = """
# One site of two lines: l1 (m1, m2) and l2 (m3 alone). Rolled up: line l1 and site demo.
sites:
  - id: demo
    timezone: UTC
    country: VN
    calendar: day
    carbon:
      grid: {country: VN, basis: annual, year: 2023}
    lines:
      - id: l1
        machines:
          - id: m1
            ideal_cycle_s: 1.0
            signals:
              state: state
              total_count: total_count
              good_count: good_count
              reject_count: reject_count
              power_kw: {role: power_kw, integration: trapezoid}
              energy_kwh: energy_kwh
          - id: m2
            ideal_cycle_s: 0.5
            signals:
              state: state
              total_count: total_count
              good_count: good_count
              reject_count: reject_count
              power_kw: {role: power_kw, integration: trapezoid}
              energy_kwh: energy_kwh
      - id: l2
        machines:
          - id: m3
            ideal_cycle_s: 1.0
            signals:
              state: state
              total_count: total_count
              good_count: good_count
              reject_count: reject_count
              power_kw: {role: power_kw, integration: trapezoid}
              energy_kwh: energy_kwh
calendars:
  day:
    shifts:
      - {name: day, start: "08:00", end: "16:00"}
production:
  oee_method: iso22400
  micro_stop_max_s: 0
"""
"""A plant whose line and site are rolled up, for :func:`rollup_shift`."""

M3_FROM = "2026-03-02T09:30:30Z"


def rollup_shift(shift_lines: list[str]) -> list[str]:
    """Readings of :data:`ROLLUP_PLANT` made from the one-machine shift (examples/minimal-shift.jsonl).

    m1 is the shift as it is; m2 makes twice the pieces (every counter, power and energy value
    times 2) at half the ideal cycle time; m3 is the shift again, but connected only at
    09:30:30 (nothing of it before), so the site's windows before then roll up m1 and m2 alone.
    Sorted by time, then machine.
    """
    out = []
    for line in shift_lines:
        reading = json.loads(line)
        out.append(reading)
        double = dict(reading, machine="m2")
        if reading["signal"] != "state":
            double["value"] = reading["value"] * 2
        out.append(double)
        if reading["ts"] >= M3_FROM:
            out.append(dict(reading, machine="m3"))
    out.sort(key=lambda r: (r["ts"], r["machine"]))
    return [json.dumps(r) for r in out]
