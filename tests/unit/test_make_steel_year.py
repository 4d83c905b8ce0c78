"""examples/make_steel_year.py: the readings of the docs/cbam.md walkthrough, and the figures it quotes."""

from __future__ import annotations

import importlib.util
import io
import itertools
import json
import sys
from datetime import datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def generator() -> ModuleType:
    """The example script as a module (examples/ is not a package)."""
    spec = importlib.util.spec_from_file_location("make_steel_year", ROOT / "examples" / "make_steel_year.py")
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    # Registered before it runs: its dataclass looks its own module up while being defined.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def readings(days: int) -> tuple[list[dict[str, Any]], Any]:
    out = io.StringIO()
    totals = generator().write_readings(out, days)
    return [json.loads(line) for line in out.getvalue().splitlines()], totals


def test_the_output_is_the_same_on_every_run() -> None:
    first, second = io.StringIO(), io.StringIO()
    generator().write_readings(first, 7)
    generator().write_readings(second, 7)
    assert first.getvalue() == second.getvalue()


def test_counters_only_rise_and_stay_within_what_the_machines_can_do() -> None:
    lines, totals = readings(14)
    times = [datetime.fromisoformat(str(r["ts"])) for r in lines]
    assert times == sorted(times)
    series: dict[tuple[object, object], list[float]] = {}
    for r in lines:
        if r["signal"] != "state":
            series.setdefault((r["machine"], r["signal"]), []).append(float(r["value"]))
    for key, values in series.items():
        steps = [b - a for a, b in itertools.pairwise(values)]
        assert min(steps) >= 0, key
    good = series[("mill", "good")]
    # Ideal cycle 180 s: at most 3600 / 180 = 20 tubes an hour; rated 2 000 kW: at most 2 000 kWh.
    assert max(b - a for a, b in itertools.pairwise(good)) <= 20
    mill_kwh = series[("mill", "kwh")]
    assert max(b - a for a, b in itertools.pairwise(mill_kwh)) <= 2000
    assert good[-1] == totals.tubes


def test_sundays_are_a_maintenance_stop() -> None:
    lines, _ = readings(7)
    # 2026-01-04 is a Sunday: local midnight is 2026-01-03T17:00Z (UTC+7).
    sunday = "2026-01-03T17:00:00Z"
    states = [(r["ts"], r["value"]) for r in lines if r["signal"] == "state" and r["machine"] == "mill"]
    assert (sunday, "planned_stop") in states
    good = {r["ts"]: r["value"] for r in lines if r["signal"] == "good"}
    after = (datetime.fromisoformat(sunday) + timedelta(hours=24)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert good[after] == good[sunday]


def test_the_walkthroughs_figures_follow_from_the_years_totals() -> None:
    _, totals = readings(365)
    # docs/cbam.md quotes SEE direct 2.216 t/t and 25.8 % on defaults for the full year.
    activity_t = totals.tubes * 0.5
    # Natural gas, IPCC 2006 defaults, AR5: kg x 1e-6 Gg x 48.0 TJ/Gg x 56 154.5 kg CO2e/TJ / 1000.
    direct_t = totals.gas_kg * 1e-6 * 48.0 * 56_154.5 / 1000
    own = direct_t / activity_t
    assert round(own, 3) == 0.124
    # Precursors: 0.80 t at 1.90 (actual) + 0.26 t at 2.0 x 1.10 (default, 2026 mark-up).
    see = own + 0.80 * 1.90 + 0.26 * 2.0 * 1.10
    assert round(see, 3) == 2.216
    assert round(100 * 0.26 * 2.2 / see, 1) == 25.8


@pytest.mark.parametrize("days", ["0", "366"])
def test_days_outside_the_year_are_refused(days: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        generator().main(["--days", days])
    assert stop.value.code == 2
    assert f"--days must be between 1 and 365, not {days}" in capsys.readouterr().err
