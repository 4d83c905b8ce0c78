"""Write examples/minimal-shift.jsonl: TV-OEE-1 (Vorne worksheet, docs/references.md) as readings.

Shift 08:00-16:00 (480 min); breaks 2 x 15 min and a 30 min meal as state ``planned_stop``;
47 min down in three stops; 19 271 pieces of which 423 rejects at an ideal 1 s each. Counters are
sampled every minute while running; power every 10 s; the energy register every minute.
Run: python examples/make_minimal_shift.py > examples/minimal-shift.jsonl
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

DAY = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
# (minute offset from 08:00, state): breaks 15 + 30 + 15 = 60 min; stops 20 + 12 + 15 = 47 min.
STATES = [
    (0, "running"),
    (60, "down"),
    (80, "running"),
    (120, "planned_stop"),
    (135, "running"),
    (180, "down"),
    (192, "running"),
    (240, "planned_stop"),
    (270, "running"),
    (300, "down"),
    (315, "running"),
    (360, "planned_stop"),
    (375, "running"),
]
TOTAL, REJECT = 19_271, 423
END = 480


def state_at(minute: float) -> str:
    """The state at ``minute`` after 08:00."""
    current = STATES[0][1]
    for start, state in STATES:
        if start <= minute:
            current = state
    return current


def main() -> None:
    """Print the readings, sorted by time."""
    run_minutes = [m for m in range(END) if state_at(m) == "running"]
    assert len(run_minutes) == 373
    lines = []

    def emit(at: datetime, signal: str, value: float | int | str) -> None:
        stamp = at.strftime("%Y-%m-%dT%H:%M:%S") + "Z"
        lines.append({"ts": stamp, "machine": "m1", "signal": signal, "value": value, "quality": "good"})

    for minute, state in STATES:
        emit(DAY + timedelta(minutes=minute), "state", state)
    # Pieces spread evenly over running minutes; counters are cumulative.
    made = reject = 0
    emit(DAY, "total_count", 0)
    emit(DAY, "good_count", 0)
    emit(DAY, "reject_count", 0)
    for i, minute in enumerate(run_minutes, 1):
        at = DAY + timedelta(minutes=minute + 1)
        made = TOTAL * i // len(run_minutes)
        reject = REJECT * i // len(run_minutes)
        emit(at, "total_count", made)
        emit(at, "good_count", made - reject)
        emit(at, "reject_count", reject)
    energy = 0.0
    for step in range(END * 6 + 1):
        at = DAY + timedelta(seconds=10 * step)
        kw = 12.5 if state_at(step / 6) == "running" else 2.0
        emit(at, "power_kw", kw)
        if step % 6 == 0:
            emit(at, "energy_kwh", round(energy, 6))
        energy += kw * 10 / 3600
    lines.sort(key=lambda r: (r["ts"], r["signal"]))
    for line in lines:
        print(json.dumps(line))


if __name__ == "__main__":
    main()
