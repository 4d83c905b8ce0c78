"""Source streams through the pure ledger: each day's activity meets that day's factors."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from plantstream.plant import parse_plant
from plantstream.records import Point
from runtimes.cbam import CbamLedger, write_report
from streams.cbam_ledger import CbamSpec, MachineTotals, build_cbam_spec, daily_points, period_figures

PLANT = """\
sites:
  - id: s1
    timezone: Asia/Ho_Chi_Minh
    country: VN
    lines:
      - id: l1
        machines:
          - id: kiln
            ideal_cycle_s: 1
            signals:
              clinker: good_count
              gas: {role: fuel, fuel: natural_gas, unit: kg}
              kwh: energy_kwh
          - id: meal-scale
            ideal_cycle_s: 1
            signals:
              kg: good_count
cbam:
  operator: {name: Example Cement JSC}
  installation: {id: inst1, name: Example kiln, country: VN, unlocode: VNSGN}
  electricity: {factor_t_per_mwh: 0.5, source: "test factor"}
  processes:
    - id: clinker
      route: All production routes
      machines: [kiln]
      source_streams:
        - id: raw-meal
          method: standard
          material: process_material
          activity: {machine: meal-scale, weighed: true}
          factors:
            - {basis: default, composition: {CaCO3: 0.78, MgCO3: 0.02}, source: "MRR Annex VI Table 2"}
            - from: 2026-07-01
              basis: laboratory
              composition: {CaCO3: 0.80}
              laboratory: Example Lab
              analysed: 2026-06-20
              standard: EN 196-2
  goods:
    - id: clinker
      cn_code: 2523 10 00
      process: clinker
      output: {machine: kiln, weighed: true}
"""

JUNE_30, JULY_1 = date(2026, 6, 30), date(2026, 7, 1)
# A day of 1 000 t raw meal (weighed in kg) and 650 t clinker each, and 50 t CO2 of kiln gas.
DAY = {
    "meal-scale": MachineTotals(good_count=1_000_000),
    "kiln": MachineTotals(good_count=650_000, kwh=100_000, co2_kg=50_000),
}


def spec() -> CbamSpec:
    built = build_cbam_spec(parse_plant(PLANT).model)
    assert built is not None
    return built


def two_days() -> dict[str, MachineTotals]:
    totals: dict[str, MachineTotals] = {}
    for _ in range(2):
        for machine, day in DAY.items():
            totals.setdefault(machine, MachineTotals()).add(day)
    return totals


def test_the_stream_machine_is_kept_but_is_not_a_process_machine() -> None:
    built = spec()
    assert built.machines == {"kiln", "meal-scale"}
    assert built.processes["clinker"].machines == ("kiln",)
    assert built.stream_machines("clinker") == ("meal-scale",)


def test_each_day_meets_its_own_factor() -> None:
    # 30 June, default: 1 000 t x (0.78 x 0.440 + 0.02 x 0.522) = 353.64 t CO2.
    # 1 July, the laboratory's: 1 000 t x 0.80 x 0.440 = 352.0 t CO2.
    # Process: 2 x 50 t of gas + 705.64 = 805.64 t; clinker 1 300 t: SEE direct 0.61972 t/t.
    figures = period_figures(
        spec(), "2026", date(2026, 1, 1), date(2027, 1, 1), two_days(), days=[(JUNE_30, DAY), (JULY_1, DAY)]
    )
    process = figures.processes["clinker"]
    stream = process.streams["raw-meal"]
    assert stream.activity_t == pytest.approx(2000.0, rel=1e-12)
    assert stream.emissions.co2_t == pytest.approx(353.64 + 352.0, rel=1e-12)
    assert process.fuel_co2_t == pytest.approx(100.0, rel=1e-12)
    assert process.direct_t == pytest.approx(805.64, rel=1e-12)
    good = figures.goods["clinker"]
    assert good.see_direct == pytest.approx(805.64 / 1300, rel=1e-12)
    # The raw meal's scale is no machine of the process: its electricity is not the process's.
    assert process.electricity_mwh == pytest.approx(200.0, rel=1e-12)


def test_a_period_over_a_factor_change_needs_its_days() -> None:
    with pytest.raises(ValueError, match="the factors of source stream 'raw-meal' change within"):
        period_figures(spec(), "2026", date(2026, 1, 1), date(2027, 1, 1), two_days())
    # A period inside one factor's validity needs no days.
    june = period_figures(spec(), "2026-06", date(2026, 6, 1), date(2026, 7, 1), DAY)
    assert june.processes["clinker"].direct_t == pytest.approx(50 + 353.64, rel=1e-12)


def test_daily_points_carry_the_streams_emissions() -> None:
    [june, july] = daily_points(spec(), [(JUNE_30, DAY), (JULY_1, DAY)], {})
    assert june.fields["attributed_direct_t"] == pytest.approx(50 + 353.64, rel=1e-12)
    assert july.fields["attributed_direct_t"] == pytest.approx(50 + 352.0, rel=1e-12)


def test_a_mass_balance_below_zero_is_not_signed(tmp_path: Path) -> None:
    # 100 t in at 1 % C = 1 t C, 650 t of clinker out at 5 % C = 32.5 t C:
    # (1 - 32.5) x 44.01 / 12.011 = -115.420 t CO2.
    text = PLANT.replace(
        """          method: standard
          material: process_material
          activity: {machine: meal-scale, weighed: true}
          factors:
            - {basis: default, composition: {CaCO3: 0.78, MgCO3: 0.02}, source: "MRR Annex VI Table 2"}
            - from: 2026-07-01
              basis: laboratory
              composition: {CaCO3: 0.80}
              laboratory: Example Lab
              analysed: 2026-06-20
              standard: EN 196-2
""",
        """          method: mass_balance
          activity: {machine: meal-scale, weighed: true}
          factors: [{basis: default, carbon_content: 0.01, source: test}]
        - id: clinker-out
          method: mass_balance
          direction: output
          activity: {machine: kiln, weighed: true}
          factors: [{basis: default, carbon_content: 0.05, source: test}]
""",
    )
    plant = parse_plant(text).model
    built = build_cbam_spec(plant)
    assert built is not None
    ledger = CbamLedger(built, tmp_path / "state")
    tags = {"site": "s1", "line": "l1", "window": "1h"}
    time = datetime(2026, 3, 2, 1, tzinfo=UTC)
    ledger.write(
        [
            Point(
                measurement="oee",
                tags={**tags, "machine": m},
                fields={"good_count": kg, "count_coverage": 1.0},
                time=time,
            )
            for m, kg in (("meal-scale", 100_000), ("kiln", 650_000))
        ]
    )
    ledger.commit()
    ledger.close()
    message = "process 'clinker': direct emissions of 2026 are -115.420 t, below zero"
    with pytest.raises(ValueError, match=re.escape(message)):
        write_report(plant, built, tmp_path / "state", 2026, tmp_path / "report", allow_partial=True)
    assert not (tmp_path / "report").exists()
