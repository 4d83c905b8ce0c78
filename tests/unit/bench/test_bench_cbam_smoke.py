"""Smoke test of the CBAM benchmark (bench/cbam.py): its readings feed the ledger. No timing asserted."""

from __future__ import annotations

import io
from pathlib import Path

from bench.cbam import STEEL, year_of_readings
from runtimes.cbam import CbamLedger
from runtimes.plant import load_and_resolve
from runtimes.replay import replay
from streams.cbam_ledger import build_cbam_spec
from streams.engine import Engine


def test_two_days_of_readings_fill_the_ledger(tmp_path: Path) -> None:
    plant, spec = load_and_resolve(STEEL)
    cbam_spec = build_cbam_spec(plant.model)
    assert cbam_spec is not None
    lines = year_of_readings(2)
    assert len(lines) == (2 * 24 + 1) * 4
    ledger = CbamLedger(cbam_spec, tmp_path)
    replay(
        Engine(spec, reorder=False),
        lines,
        io.StringIO(),
        source="t",
        lateness_us=spec.allowed_lateness_us,
        on_points=ledger.write,
    )
    points = ledger.commit()
    ledger.close()
    assert sorted(p.time.isoformat() for p in points) == [
        "2025-12-31T17:00:00+00:00",
        "2026-01-01T17:00:00+00:00",
    ]
