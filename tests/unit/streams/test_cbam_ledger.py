"""The pure CBAM ledger: period figures, SEE per good, default shares, daily points."""

from __future__ import annotations

from datetime import date

import pytest

from plantstream.plant import parse_plant
from streams.cbam import electricity_default
from streams.cbam_ledger import (
    CbamSpec,
    MachineTotals,
    build_cbam_spec,
    daily_points,
    period_figures,
    periods_of_year,
)
from streams.config import ConfigProblem

EXACT = 1e-9

PLANT = """\
sites:
  - id: s1
    timezone: Asia/Ho_Chi_Minh
    country: VN
    lines:
      - id: l1
        machines:
          - id: furnace
            signals:
              gas: {role: fuel, fuel: natural_gas, unit: kg}
              kwh: energy_kwh
          - id: mill
            ideal_cycle_s: 10
            signals:
              good: good_count
              kwh: energy_kwh
          - id: kiln
            ideal_cycle_s: 10
            signals:
              good: good_count
              kwh: energy_kwh
cbam:
  operator: {name: Example JSC}
  installation: {id: inst1, name: Example, country: VN, unlocode: VNSGN}
  electricity: {factor_t_per_mwh: 0.5, source: "test factor"}
  processes:
    - {id: finishing, route: All production routes, machines: [furnace, mill]}
    - {id: clinker, route: All production routes, machines: [kiln]}
  goods:
    - id: tube
      cn_code: 7306 30 77
      process: finishing
      output: {machine: mill, mass_kg_per_piece: 250}
      precursors:
        - {purchased: hrc, mass_t_by_year: {2026: 21000}}
    - id: clinker
      cn_code: 2523 10 00
      process: clinker
      output: {machine: kiln, weighed: true}
  purchased_precursors:
    - {id: hrc, cn_code: 7208 51 20, origin: KR, basis: actual_verified, see_direct: 2.0, see_indirect: 0.3}
"""


def spec_of(text: str = PLANT) -> CbamSpec:
    spec = build_cbam_spec(parse_plant(text).model)
    assert spec is not None
    return spec


def year_figures(spec: CbamSpec, totals: dict[str, MachineTotals]):  # type: ignore[no-untyped-def]
    label, first, after = periods_of_year(2026)[0]
    return period_figures(spec, label, first, after, totals)


def test_tv_cbam_3_through_the_ledger() -> None:
    # TV-CBAM-3: AttrEm_dir 1 200 t; AL 20 000 t; HRC M = 21 000 t at SEE 2.0 -> SEE 2.160.
    # AL: 80 000 good pieces x 250 kg = 20 000 t. AttrEm: 1 200 000 kg CO2e of the furnace's fuel.
    totals = {
        "furnace": MachineTotals(co2_kg=1_200_000, kwh=0, windows=1),
        "mill": MachineTotals(good_count=80_000, kwh=0, windows=1),
    }
    figures = year_figures(spec_of(), totals)
    tube = figures.goods["tube"]
    assert tube.activity_t == pytest.approx(20_000, abs=EXACT)
    assert tube.precursors[0].mass_t == pytest.approx(21_000, abs=EXACT)
    assert tube.see_direct == pytest.approx(2.160, abs=0.0005)
    # Steel is an Annex II good from an Annex II precursor: nothing indirect counts (Art. 7(1)),
    # so the SEE counted is the published direct SEE.
    assert tube.see_indirect_counted == 0.0
    assert tube.see_cbam == pytest.approx(2.160, abs=0.0005)
    # The HRC's indirect SEE (0.3 t/t) is still in the whole figure: 21 000 x 0.3 / 20 000 = 0.315.
    assert tube.see_indirect == pytest.approx(0.315, abs=EXACT)
    assert tube.see_total == pytest.approx(2.160 + 0.315, abs=EXACT)
    assert tube.default_share() == 0.0
    assert tube.reasons == {}


def test_electricity_and_indirect_of_a_non_annex_ii_good() -> None:
    # Clinker (cement, non-Annex II) weighed: 5 000 000 kg = 5 000 t; kiln 1 000 000 kWh = 1 000 MWh.
    # Indirect = 1 000 MWh x 0.5 t/MWh = 500 t; SEE indirect = 500 / 5 000 = 0.1 t/t.
    totals = {"kiln": MachineTotals(good_count=5_000_000, kwh=1_000_000, windows=1)}
    figures = year_figures(spec_of(), totals)
    clinker = figures.goods["clinker"]
    assert clinker.electricity_mwh == pytest.approx(1_000, abs=EXACT)
    assert clinker.see_indirect == pytest.approx(0.1, abs=EXACT)
    assert clinker.see_direct == 0.0
    # The factor is given by the plant file as a Commission default: all indirect rests on defaults.
    assert clinker.default_share("indirect") == pytest.approx(1.0, abs=EXACT)


def test_precursor_on_default_values_with_the_2026_mark_up() -> None:
    text = PLANT.replace(
        "basis: actual_verified, see_direct: 2.0, see_indirect: 0.3}",
        "basis: default, default: {direct: 2.0, source: t}}",
    )
    totals = {
        "furnace": MachineTotals(co2_kg=1_200_000),
        "mill": MachineTotals(good_count=80_000),
    }
    tube = year_figures(spec_of(text), totals).goods["tube"]
    # 2.0 x 1.10 = 2.2 t/t (iron and steel, 2026). SEE = (1 200 + 21 000 x 2.2) / 20 000 = 2.37;
    # of which 21 000 x 2.2 / 20 000 = 2.31 rests on defaults: share 2.31 / 2.37.
    assert tube.see_direct == pytest.approx(2.37, abs=EXACT)
    assert tube.default_direct == pytest.approx(2.31, abs=EXACT)
    assert tube.default_share("direct") == pytest.approx(2.31 / 2.37, abs=EXACT)


def with_a_coated_pipe(text: str) -> str:
    """``text`` with a second process, coating, whose coater (no electricity meter) makes pipe from tube."""
    return (
        text.replace(
            "    - {id: clinker, route: All production routes, machines: [kiln]}\n",
            "    - {id: clinker, route: All production routes, machines: [kiln]}\n"
            "    - {id: coating, route: All production routes, machines: [coater]}\n",
        )
        .replace(
            "  purchased_precursors:\n",
            "    - id: pipe\n      cn_code: 7306 30 80\n      process: coating\n"
            "      output: {machine: coater, mass_kg_per_piece: 1000}\n"
            "      precursors: [{good: tube, mass_t_per_t: 1.0}]\n  purchased_precursors:\n",
        )
        .replace(
            "          - id: kiln\n",
            "          - id: coater\n            ideal_cycle_s: 10\n            signals:\n"
            "              good: good_count\n              gas: {role: fuel, fuel: natural_gas, unit: kg}\n"
            "          - id: kiln\n",
        )
    )


COATED_PIPE_TOTALS = {
    "furnace": MachineTotals(co2_kg=1_200_000),
    "mill": MachineTotals(good_count=80_000),
    "coater": MachineTotals(good_count=10_000, co2_kg=100_000),
}


def test_own_good_as_precursor_is_recursive() -> None:
    # A second process welds tubes from the mill's output: 'tube' becomes a precursor of 'pipe'.
    text = with_a_coated_pipe(PLANT)
    totals = COATED_PIPE_TOTALS
    pipe = year_figures(spec_of(text), totals).goods["pipe"]
    # pipe: AL 10 000 t; own direct 100 t; tube M = 10 000 t at 2.160 -> 21 600 t.
    # SEE = (100 + 21 600) / 10 000 = 2.170 t/t.
    assert pipe.see_direct == pytest.approx(2.170, abs=EXACT)


def test_quarters_and_months_sum_to_the_year() -> None:
    periods = periods_of_year(2026)
    assert [p[0] for p in periods[:3]] == ["2026", "2026-Q1", "2026-Q2"]
    assert len(periods) == 17
    assert periods[4][1:] == (date(2026, 10, 1), date(2027, 1, 1))
    assert periods[-1][1:] == (date(2026, 12, 1), date(2027, 1, 1))


def test_no_production_leaves_the_see_undefined() -> None:
    figures = year_figures(spec_of(), {"furnace": MachineTotals(co2_kg=1_000)})
    assert figures.goods["tube"].see_direct is None
    assert figures.goods["tube"].default_share() is None
    assert figures.direct_t == pytest.approx(1.0, abs=EXACT)


def test_daily_points_per_good() -> None:
    spec = spec_of()
    totals = {
        "mill": MachineTotals(good_count=4, kwh=1_000, windows=2),
        "furnace": MachineTotals(co2_kg=500),
    }
    points = daily_points(spec, [(date(2026, 3, 2), totals)], {"tube": 20_000.0})
    tube = next(p for p in points if p.tags["good"] == "tube")
    assert tube.measurement == "cbam"
    assert tube.tags == {
        "installation": "inst1",
        "process": "finishing",
        "good": "tube",
        "cn_code": "73063077",
        "window": "1d",
    }
    # Local midnight in Ho Chi Minh City (UTC+7) is 17:00 UTC the day before.
    assert tube.time.isoformat() == "2026-03-01T17:00:00+00:00"
    # 4 pieces x 0.25 t = 1 t; 0.5 t direct; 1 MWh; precursor 21 000 / 20 000 = 1.05 t at 2.0 = 2.1 t.
    assert tube.fields["activity_t"] == pytest.approx(1.0, abs=EXACT)
    assert tube.fields["attributed_direct_t"] == pytest.approx(0.5, abs=EXACT)
    assert tube.fields["electricity_mwh"] == pytest.approx(1.0, abs=EXACT)
    assert tube.fields["precursor_direct_t"] == pytest.approx(2.1, abs=EXACT)
    assert tube.fields["see_direct"] == pytest.approx(2.6, abs=EXACT)


def test_unknown_country_without_a_factor_is_a_config_problem() -> None:
    text = PLANT.replace('  electricity: {factor_t_per_mwh: 0.5, source: "test factor"}\n', "")
    with pytest.raises(ConfigProblem) as info:
        spec_of(text)
    [(path, message)] = info.value.problems
    assert path == ("cbam", "electricity")
    assert "no Commission default electricity factor for VN" in message


def test_commission_defaults_shipped() -> None:
    # IR 2025/2621 Annex II [IR-2025-2621]: Australia 0.645, Brazil 0.096, other countries 0.465 t CO2/MWh.
    assert electricity_default("au").t_per_mwh == 0.645
    assert electricity_default("BR").t_per_mwh == 0.096
    assert electricity_default("OTHER").t_per_mwh == 0.465
    text = PLANT.replace('{factor_t_per_mwh: 0.5, source: "test factor"}', "{country: OTHER}")
    assert spec_of(text).electricity.t_per_mwh == 0.465


@pytest.mark.parametrize(
    ("cn_code", "default", "year", "expected"),
    [
        # TV-CBAM-1 [CBAM-NOTE §4.4-4.5]: DRI (CN 7203), other countries, 1.325 t/t.
        ("7203 10 00", 1.325, 2026, 1.4575),
        ("7203 10 00", 1.325, 2027, 1.590),
        ("7203 10 00", 1.325, 2028, 1.7225),
        # Hydrogen AU/BR 10.820 -> 11.902 / 12.984 / 14.066; other countries 17.740 -> 19.514 (2026).
        ("2804 10 00", 10.820, 2026, 11.902),
        ("2804 10 00", 10.820, 2027, 12.984),
        ("2804 10 00", 10.820, 2028, 14.066),
        ("2804 10 00", 17.740, 2026, 19.514),
    ],
)
def test_tv_cbam_1_defaults_marked_up_in_the_ledger(
    cn_code: str, default: float, year: int, expected: float
) -> None:
    # One tonne of precursor per tonne of tube and no emissions of the process's own:
    # the tube's SEE is the precursor's default with the year's mark-up.
    text = PLANT.replace(
        "{purchased: hrc, mass_t_by_year: {2026: 21000}}", "{purchased: hrc, mass_t_per_t: 1.0}"
    ).replace(
        "cn_code: 7208 51 20, origin: KR, basis: actual_verified, see_direct: 2.0, see_indirect: 0.3}",
        f"cn_code: {cn_code}, origin: AU, basis: default, default: {{direct: {default}, source: t}}}}",
    )
    spec = spec_of(text)
    figures = period_figures(
        spec, str(year), date(year, 1, 1), date(year + 1, 1, 1), {"mill": MachineTotals(good_count=4)}
    )
    tube = figures.goods["tube"]
    assert tube.see_direct == pytest.approx(expected, abs=EXACT)
    assert tube.default_share() == pytest.approx(1.0, abs=EXACT)


def test_a_shared_machine_contributes_its_share() -> None:
    # The furnace serves both processes: 60 % of its Scope 1 and electricity is the finishing's.
    text = PLANT.replace(
        "    - {id: finishing, route: All production routes, machines: [furnace, mill]}\n",
        "    - id: finishing\n      route: All production routes\n      machines: [mill]\n"
        "      shared_machines: [{machine: furnace, share: 0.6, basis: metered heat}]\n",
    ).replace(
        "    - {id: clinker, route: All production routes, machines: [kiln]}\n",
        "    - id: clinker\n      route: All production routes\n      machines: [kiln]\n"
        "      shared_machines: [{machine: furnace, share: 0.4, basis: metered heat}]\n",
    )
    totals = {
        "furnace": MachineTotals(co2_kg=1_000_000, kwh=500_000),
        "mill": MachineTotals(good_count=80_000),
        "kiln": MachineTotals(good_count=5_000_000),
    }
    figures = year_figures(spec_of(text), totals)
    # finishing: 0.6 x 1 000 t = 600 t direct, 0.6 x 500 MWh = 300 MWh; clinker: 400 t, 200 MWh.
    assert figures.processes["finishing"].direct_t == pytest.approx(600, abs=EXACT)
    assert figures.processes["finishing"].electricity_mwh == pytest.approx(300, abs=EXACT)
    assert figures.processes["clinker"].direct_t == pytest.approx(400, abs=EXACT)
    # clinker indirect: 200 MWh x 0.5 t/MWh = 100 t over 5 000 t = 0.02 t/t.
    assert figures.goods["clinker"].see_indirect == pytest.approx(0.02, abs=EXACT)
    assert figures.direct_t == pytest.approx(1_000, abs=EXACT)


def test_an_annex_ii_good_shows_its_own_indirect_emissions_without_counting_them() -> None:
    # 80 000 tubes x 250 kg = 20 000 t; furnace 1 200 t CO2e; furnace + mill 2 000 000 kWh = 2 000 MWh.
    totals = {
        "furnace": MachineTotals(co2_kg=1_200_000, kwh=500_000),
        "mill": MachineTotals(good_count=80_000, kwh=1_500_000),
    }
    tube = year_figures(spec_of(), totals).goods["tube"]
    # Own indirect: 2 000 MWh x 0.5 t/MWh = 1 000 t, 0.05 t/t; with the HRC's 0.315: 0.365 t/t.
    assert tube.attributed_indirect_t == pytest.approx(1_000, abs=EXACT)
    assert tube.see_indirect == pytest.approx(0.05 + 0.315, abs=EXACT)
    assert tube.see_total == pytest.approx(2.160 + 0.365, abs=EXACT)
    # What counts is still the direct SEE: neither the tube's electricity nor the HRC's.
    assert tube.see_cbam == pytest.approx(2.160, abs=EXACT)
    # The own electricity rests on the factor given in the file as a Commission default:
    # 0.05 of the 0.365 t/t indirect is on default values.
    assert tube.default_share("indirect") == pytest.approx(0.05 / 0.365, abs=EXACT)


def test_a_machine_without_an_electricity_meter_leaves_the_indirect_figure_empty_with_a_reason() -> None:
    text = PLANT.replace(
        "              gas: {role: fuel, fuel: natural_gas, unit: kg}\n              kwh: energy_kwh\n",
        "              gas: {role: fuel, fuel: natural_gas, unit: kg}\n",
    )
    spec = spec_of(text)
    assert spec.processes["finishing"].unmetered == ("furnace",)
    totals = {"furnace": MachineTotals(co2_kg=1_200_000), "mill": MachineTotals(good_count=80_000, kwh=10)}
    figures = year_figures(spec, totals)
    tube = figures.goods["tube"]
    # The mill's 10 kWh are not the process's electricity: the furnace's is not known.
    assert figures.processes["finishing"].electricity_mwh is None
    assert tube.see_indirect is None
    assert tube.see_total is None
    assert "process 'finishing' has machines without an electricity meter" in tube.reasons["see_indirect"]
    # The tube is an Annex II good: its own electricity does not count, so the SEE counted is known.
    assert tube.see_cbam == pytest.approx(2.160, abs=EXACT)
    assert "see_cbam" not in tube.reasons


def test_a_default_without_its_indirect_part() -> None:
    # An Annex II precursor: the whole indirect figure is unknown, the counted one is not.
    text = PLANT.replace(
        "basis: actual_verified, see_direct: 2.0, see_indirect: 0.3}",
        "basis: default, default: {direct: 2.0, source: t}}",
    )
    totals = {"furnace": MachineTotals(co2_kg=1_200_000), "mill": MachineTotals(good_count=80_000)}
    tube = year_figures(spec_of(text), totals).goods["tube"]
    assert tube.see_indirect is None
    assert tube.reasons["see_indirect"] == "the default value of hrc (CN 72085120) has no indirect part"
    # (1 200 + 21 000 x 2.0 x 1.10) / 20 000 = 2.37 t/t, all counted as direct.
    assert tube.see_cbam == pytest.approx(2.37, abs=EXACT)
    # A non-Annex II precursor (clinker) must give it: its indirect emissions count.
    text = PLANT.replace(
        "cn_code: 7208 51 20, origin: KR, basis: actual_verified, see_direct: 2.0, see_indirect: 0.3}",
        "cn_code: 2523 10 00, origin: KR, basis: default, default: {direct: 0.9, source: t}}",
    )
    with pytest.raises(ConfigProblem) as info:
        spec_of(text)
    [(path, message)] = info.value.problems
    assert path == ("cbam", "purchased_precursors", 0, "default")
    assert "precursor 'hrc' is not an Annex II good" in message
    assert "its default needs indirect" in message


def test_an_annex_ii_good_made_here_passes_on_its_non_annex_ii_precursors_indirect_emissions() -> None:
    # tube (Annex II) from pellets (2601 12 00, not Annex II); pipe (Annex II) from tube, in a
    # coating process whose coater has no electricity meter.
    text = (
        with_a_coated_pipe(PLANT)
        .replace("{purchased: hrc, mass_t_by_year: {2026: 21000}}", "{purchased: hrc, mass_t_per_t: 1.0}")
        .replace("cn_code: 7208 51 20, origin: KR,", "cn_code: 2601 12 00, origin: KR,")
        .replace("see_direct: 2.0, see_indirect: 0.3}", "see_direct: 0.1, see_indirect: 0.05}")
    )
    totals = COATED_PIPE_TOTALS
    goods = year_figures(spec_of(text), totals).goods
    # tube: AL 20 000 t, direct (1 200 + 20 000 x 0.1) / 20 000 = 0.16; the pellets' indirect
    # 20 000 x 0.05 / 20 000 = 0.05 counts (cross-channel rule): SEE counted 0.21.
    assert goods["tube"].see_cbam == pytest.approx(0.21, abs=EXACT)
    # pipe: AL 10 000 t, direct (100 + 10 000 x 0.16) / 10 000 = 0.17; the tube passes on its
    # counted 0.05: SEE counted 0.22. Its whole indirect figure is unknown (the coater is not metered).
    pipe = goods["pipe"]
    assert pipe.see_direct == pytest.approx(0.17, abs=EXACT)
    assert pipe.see_indirect_counted == pytest.approx(0.05, abs=EXACT)
    assert pipe.see_cbam == pytest.approx(0.22, abs=EXACT)
    assert pipe.see_indirect is None
    assert "process 'coating' has machines without an electricity meter" in pipe.reasons["see_indirect"]
