"""Write readings for the CBAM source-stream examples: a cement kiln, an EAF, a smelter, nitric acid.

Each example plant (examples/cement-cbam.yaml, eaf-cbam.yaml, aluminium-cbam.yaml,
nitric-acid-cbam.yaml) runs around the clock from 2026-01-01 (local time, Asia/Ho_Chi_Minh,
UTC+7 without daylight saving time). Every counter is cumulative and sampled hourly (kg on a weigh
scale, pieces, kWh); its first sample is its zero. The output is the same on every run: no clock,
no randomness.

Run: python3 examples/make_cbam_readings.py cement --days 14 > cement.jsonl
At the end it prints the totals on stderr, for checking a report by hand.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import TextIO

# Local midnight of 2026-01-01 in Ho Chi Minh City.
START = datetime(2025, 12, 31, 17, 0, tzinfo=UTC)
LOCAL_OFFSET = timedelta(hours=7)
DAYS_IN_2026 = 365

Hourly = Callable[[int], float]
"""What a signal's counter gains in the hour that ends after ``hour`` hours."""

PLANTS: dict[str, dict[tuple[str, str], Hourly]] = {
    "cement": {
        ("kiln", "clinker"): lambda h: 93_000 + 500 * (h % 4),
        ("kiln", "kwh"): lambda h: 4_000 + 10 * (h % 6),
        ("meal-feeder", "meal"): lambda h: 150_000 + 1_000 * (h % 5),
        ("coal-feeder", "coal"): lambda h: 12_000 + 100 * (h % 3),
    },
    "eaf": {
        ("eaf", "billets"): lambda h: 100_000 + 1_000 * (h % 4),
        ("eaf", "kwh"): lambda h: 40_000 + 100 * (h % 5),
        ("scrap-crane", "scrap"): lambda h: 110_000 + 1_000 * (h % 5),
        ("electrode-store", "electrodes"): lambda h: 1 if h % 4 == 0 else 0,
        ("coal-injector", "coal"): lambda h: 1_000 + 50 * (h % 3),
        ("slag-scale", "slag"): lambda h: 12_000 + 100 * (h % 2),
    },
    "aluminium": {
        ("potline", "metal"): lambda h: 40_000 + 100 * (h % 3),
        ("potline", "kwh"): lambda h: 300_000 + 1_000 * (h % 4),
        ("anode-crane", "anodes"): lambda h: 20 + h % 3,
    },
    "nitric": {
        ("acid-plant", "acid"): lambda h: 40_000 + 200 * (h % 3),
        ("acid-plant", "kwh"): lambda h: 1_500 + 10 * (h % 3),
        ("stack-cems", "n2o"): lambda h: 20 + h % 4,
    },
}
"""Plant -> (machine, signal) -> the hourly gain: varied but deterministic, within each rating."""

DayTotals = dict[date, dict[str, float]]
"""Local day -> ``machine.signal`` -> what its counter gained that day."""


def stamp(at: datetime) -> str:
    """The reading's time as RFC 3339 UTC with a ``Z``."""
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def write_readings(out: TextIO, plant: str, days: int) -> DayTotals:
    """Write ``days`` days of ``plant``'s readings from 2026-01-01 to ``out``; return the day totals."""
    signals = PLANTS[plant]
    machines = sorted({machine for machine, _ in signals})
    values = dict.fromkeys(signals, 0.0)
    totals: DayTotals = {}

    def reading(at: datetime, machine: str, signal: str, value: float | str) -> None:
        out.write(json.dumps({"ts": stamp(at), "machine": machine, "signal": signal, "value": value}) + "\n")

    for machine in machines:
        reading(START, machine, "state", "running")
    for hour in range(days * 24 + 1):
        at = START + timedelta(hours=hour)
        if hour > 0:
            day = (at - timedelta(hours=1) + LOCAL_OFFSET).date()  # the hour that ends at `at`
            for key, gain in signals.items():
                amount = gain(hour)
                values[key] += amount
                day_totals = totals.setdefault(day, {})
                name = ".".join(key)
                day_totals[name] = day_totals.get(name, 0.0) + amount
        for (machine, signal), value in values.items():
            reading(at, machine, signal, value)
    return totals


def main(argv: list[str] | None = None) -> int:
    """Print the readings on stdout; the totals on stderr."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("plant", choices=sorted(PLANTS))
    parser.add_argument("--days", type=int, default=14, help="days from 2026-01-01 (default: 14)")
    args = parser.parse_args(argv)
    if not 1 <= args.days <= DAYS_IN_2026:
        parser.error(f"--days must be between 1 and {DAYS_IN_2026}, not {args.days}")
    totals = write_readings(sys.stdout, args.plant, args.days)
    summed: dict[str, float] = {}
    for day in totals.values():
        for name, amount in day.items():
            summed[name] = summed.get(name, 0.0) + amount
    print(
        f"{args.days} day(s): " + ", ".join(f"{k} {v:g}" for k, v in sorted(summed.items())), file=sys.stderr
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
