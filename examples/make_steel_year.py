"""Write a year of readings for examples/steel-cbam.yaml: the input of the docs/cbam.md walkthrough.

The small steel line of the example runs around the clock through 2026 (local time, Asia/Ho_Chi_Minh,
UTC+7 without daylight saving time): a reheating furnace with a natural-gas meter (kg) and an
electricity register (kWh), and a tube mill with a good-piece counter and an electricity register.
Every counter is cumulative and sampled hourly; its first sample is its zero. Sundays are a
maintenance stop (state ``planned_stop``, nothing made, the furnace kept warm). The output is the
same on every run: no clock, no randomness.

Run: python3 examples/make_steel_year.py > year.jsonl
     python3 examples/make_steel_year.py --days 7 > week.jsonl   # a shorter start of the year
At the end it prints the year's totals on stderr, for checking a report by hand.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TextIO

# Local midnight of 2026-01-01 in Ho Chi Minh City.
START = datetime(2025, 12, 31, 17, 0, tzinfo=UTC)
LOCAL_OFFSET = timedelta(hours=7)
DAYS_IN_2026 = 365
SUNDAY = 6  # datetime.weekday()


def stamp(at: datetime) -> str:
    """The reading's time as RFC 3339 UTC with a ``Z``."""
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def is_maintenance(at: datetime) -> bool:
    """Whether the hour starting at ``at`` (UTC) falls on a local Sunday."""
    return (at + LOCAL_OFFSET).weekday() == SUNDAY


def hour_of_production(hour: int, maintenance: bool) -> tuple[int, float, float, float]:
    """What the line makes and uses in one hour: tubes, gas kg, furnace kWh, mill kWh.

    Varied but deterministic. The mill's ideal cycle is 180 s (at most 20 tubes an hour); the
    figures stay well inside what its rated powers (400 and 2 000 kW) allow.
    """
    if maintenance:
        return 0, 80.0, 20.0, 15.0  # furnace held warm, mill idle
    tubes = 12 + (hour * 7) % 6  # 12..17 tubes an hour
    gas_kg = 300.0 + 10.0 * (hour % 5)
    furnace_kwh = 50.0 + hour % 4
    mill_kwh = 40.0 * tubes + 50.0 * (hour % 3)
    return tubes, gas_kg, furnace_kwh, mill_kwh


@dataclass
class Totals:
    """What the readings add up to: the figures a report can be checked against by hand."""

    days: int
    tubes: int
    gas_kg: float
    kwh: float


def write_readings(out: TextIO, days: int) -> Totals:
    """Write ``days`` days of readings from 2026-01-01 to ``out``, in time order; return the totals."""
    pieces = 0
    gas = furnace_kwh = mill_kwh = 0.0
    previous_state = ""

    def reading(at: datetime, machine: str, signal: str, value: float | int | str) -> None:
        out.write(json.dumps({"ts": stamp(at), "machine": machine, "signal": signal, "value": value}) + "\n")

    for hour in range(days * 24 + 1):
        at = START + timedelta(hours=hour)
        if hour > 0:
            stopped = is_maintenance(at - timedelta(hours=1))  # the hour that ends at `at`
            made, used_gas, used_furnace, used_mill = hour_of_production(hour, stopped)
            pieces += made
            gas += used_gas
            furnace_kwh += used_furnace
            mill_kwh += used_mill
        state = "planned_stop" if is_maintenance(at) else "running"
        if state != previous_state and hour < days * 24:
            reading(at, "furnace", "state", state)
            reading(at, "mill", "state", state)
            previous_state = state
        # Rounded as a meter's display would show them (the sums are whole or tenths anyway).
        reading(at, "furnace", "gas", round(gas, 3))
        reading(at, "furnace", "kwh", round(furnace_kwh, 3))
        reading(at, "mill", "good", pieces)
        reading(at, "mill", "kwh", round(mill_kwh, 3))
    return Totals(days, pieces, gas, furnace_kwh + mill_kwh)


def main(argv: list[str] | None = None) -> int:
    """Print the readings on stdout; the totals on stderr."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--days", type=int, default=DAYS_IN_2026, help="days from 2026-01-01 (default: 365)")
    args = parser.parse_args(argv)
    if not 1 <= args.days <= DAYS_IN_2026:
        parser.error(f"--days must be between 1 and {DAYS_IN_2026}, not {args.days}")
    totals = write_readings(sys.stdout, args.days)
    print(
        f"{totals.days} day(s): {totals.tubes} tubes ({totals.tubes * 0.5:g} t at 500 kg), "
        f"{totals.gas_kg:.0f} kg natural gas, {totals.kwh:.0f} kWh",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
