"""The CBAM ledger's cost on replay: a year of the steel example with and without ``--state-dir``.

The readings are the end-to-end test's year (examples/steel-cbam.yaml: hourly samples of a gas
meter, two electricity registers and a piece counter), generated in memory. Plain replays and
replays that also feed a fresh ledger alternate ``--repeat`` times in one run; the fastest of
each is kept and the result is their ratio, because the machine is shared and absolute rates
drift. ``report cbam`` over the ledger is timed once, against the fastest plain replay.

Run: ``.venv/bin/python bench/cbam.py --repeat 3``.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.common import stop_on_sigterm
from runtimes.cbam import CbamLedger, write_report
from runtimes.plant import load_and_resolve
from runtimes.replay import replay
from streams.cbam_ledger import build_cbam_spec
from streams.engine import Engine

ROOT = Path(__file__).resolve().parents[1]
STEEL = ROOT / "examples" / "steel-cbam.yaml"


def year_of_readings(days: int) -> list[str]:
    """Hourly cumulative readings of the steel example, from local midnight of 2026-01-01."""
    start = datetime(2025, 12, 31, 17, tzinfo=UTC)
    lines = []
    pieces = gas = f_kwh = m_kwh = 0.0
    for hour in range(days * 24 + 1):
        ts = (start + timedelta(hours=hour)).strftime("%Y-%m-%dT%H:%M:%SZ")
        if hour:
            pieces += 5 + (hour * 37) % 11
            gas += 300 + 10 * (hour % 5)
            f_kwh += 50 + hour % 4
            m_kwh += 800 + 50 * (hour % 3)
        for machine, signal, value in (
            ("furnace", "gas", gas),
            ("furnace", "kwh", f_kwh),
            ("mill", "good", pieces),
            ("mill", "kwh", m_kwh),
        ):
            lines.append(json.dumps({"ts": ts, "machine": machine, "signal": signal, "value": value}))
    return lines


def main() -> None:
    """Measure and print the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--days", type=int, default=365)
    args = parser.parse_args()
    plant, spec = load_and_resolve(STEEL)
    cbam_spec = build_cbam_spec(plant.model)
    assert cbam_spec is not None
    lines = year_of_readings(args.days)
    plain, fed = [], []
    with tempfile.TemporaryDirectory() as tmp, open(os.devnull, "w") as sink:
        for round_ in range(args.repeat):
            began = time.perf_counter()
            replay(
                Engine(spec, reorder=False), lines, sink, source="bench", lateness_us=spec.allowed_lateness_us
            )
            plain.append(time.perf_counter() - began)
            state = Path(tmp) / f"state{round_}"
            began = time.perf_counter()
            ledger = CbamLedger(cbam_spec, state)
            replay(
                Engine(spec, reorder=False),
                lines,
                sink,
                source="bench",
                lateness_us=spec.allowed_lateness_us,
                on_points=ledger.write,
            )
            for point in ledger.commit():
                sink.write(point.to_json() + "\n")
            ledger.close()
            fed.append(time.perf_counter() - began)
        began = time.perf_counter()
        write_report(plant.model, cbam_spec, Path(tmp) / "state0", 2026, Path(tmp) / "report")
        report = time.perf_counter() - began
    best = min(plain)
    print(f"{len(lines)} readings ({args.days} days, hourly), best of {args.repeat}")
    print(f"replay with the CBAM ledger / plain replay: {min(fed) / best:.2f}")
    print(f"report cbam (the year) / plain replay: {report / best:.2f}")


if __name__ == "__main__":
    stop_on_sigterm()
    main()
