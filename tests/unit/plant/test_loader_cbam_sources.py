"""Source streams in the plant file's ``cbam`` section: valid files load, each mistake is located."""

from __future__ import annotations

from datetime import date

import pytest

from plantstream.plant import PlantError, parse_plant

BASE = """\
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
# Line numbers used below:
# 26         - id: raw-meal
# 29           activity: {machine: meal-scale, weighed: true}
# 31             - {basis: default, ...}
# 32             - from: 2026-07-01


def edit(*edits: tuple[str, str]) -> str:
    text = BASE
    for old, new in edits:
        assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times"
        text = text.replace(old, new)
    return text


def only_issue(text: str) -> str:
    with pytest.raises(PlantError) as info:
        parse_plant(text)
    [issue] = info.value.issues
    return str(issue)


def test_base_is_valid_with_a_default_and_a_laboratory_factor() -> None:
    cbam = parse_plant(BASE).model.cbam
    assert cbam is not None
    [stream] = cbam.processes[0].source_streams
    assert [f.basis for f in stream.factors] == ["default", "laboratory"]
    assert stream.factors[1].valid_from == date(2026, 7, 1)
    assert stream.factors[1].analysed == date(2026, 6, 20)


def test_an_unknown_compound_is_named_with_the_known_ones() -> None:
    text = edit(("composition: {CaCO3: 0.80}", "composition: {CaCO4: 0.80}"))
    assert only_issue(text).startswith(
        "plant.yaml:34 cbam.processes[0].source_streams[0].factors[1].composition: unknown compound(s) "
        "['CaCO4'] (known: CaCO3, MgCO3"
    )


def test_mass_fractions_over_one_are_refused() -> None:
    text = edit(("{CaCO3: 0.78, MgCO3: 0.02}", "{CaCO3: 0.98, MgCO3: 0.05}"))
    assert only_issue(text) == (
        "plant.yaml:31 cbam.processes[0].source_streams[0].factors[0].composition: "
        "the mass fractions add up to 1.03, more than 1"
    )


def test_a_fraction_out_of_range_is_refused() -> None:
    text = edit(("composition: {CaCO3: 0.80}", "composition: {CaCO3: 80}"))
    assert "factors[1].composition.CaCO3: must be <= 1" in only_issue(text)


def test_a_laboratory_factor_needs_its_standard() -> None:
    text = edit(("              standard: EN 196-2\n", ""))
    assert only_issue(text) == (
        "plant.yaml:32 cbam.processes[0].source_streams[0].factors[1]: a laboratory factor needs "
        "laboratory, analysed (its date) and standard"
    )


def test_a_default_factor_needs_its_source() -> None:
    text = edit((', source: "MRR Annex VI Table 2"', ""))
    assert only_issue(text) == (
        "plant.yaml:31 cbam.processes[0].source_streams[0].factors[0]: a default factor needs its "
        "source, so it can be audited"
    )


def test_a_later_factor_needs_its_from_date() -> None:
    text = edit(
        ("            - from: 2026-07-01\n              basis: laboratory", "            - basis: laboratory")
    )
    assert only_issue(text) == (
        "plant.yaml:26 cbam.processes[0].source_streams[0]: factors[1] needs a from date after the one "
        "before it"
    )


def test_a_factor_of_another_method_is_refused() -> None:
    text = edit(
        ("composition: {CaCO3: 0.80}", "composition: {CaCO3: 0.80}\n              ncv_tj_per_t: 0.048")
    )
    assert only_issue(text) == (
        "plant.yaml:26 cbam.processes[0].source_streams[0]: factors[1]: ncv_tj_per_t does not apply to "
        "process_material"
    )


def test_a_fuel_needs_its_ncv() -> None:
    text = edit(
        ("material: process_material", "material: fuel"),
        (
            'composition: {CaCO3: 0.78, MgCO3: 0.02}, source: "MRR Annex VI Table 2"',
            "emission_factor: 56.1, source: IPCC",
        ),
    )
    assert only_issue(text) == (
        "plant.yaml:26 cbam.processes[0].source_streams[0]: factors[0] needs ncv_tj_per_t for fuel"
    )


def test_an_unknown_method_is_refused() -> None:
    text = edit(("method: standard", "method: standerd"))
    assert "source_streams[0].method: " in only_issue(text)


def test_an_activity_machine_that_does_not_exist() -> None:
    text = edit(("{machine: meal-scale, weighed: true}", "{machine: meal-scale2, weighed: true}"))
    assert only_issue(text) == (
        "plant.yaml:29 cbam.processes[0].source_streams[0].activity.machine: machine 'meal-scale2' does "
        "not exist (known: kiln, meal-scale)"
    )


def test_an_activity_machine_needs_a_counter() -> None:
    text = edit(("              kg: good_count\n", "              kwh: energy_kwh\n"))
    assert only_issue(text) == (
        "plant.yaml:29 cbam.processes[0].source_streams[0].activity.machine: machine 'meal-scale' has no "
        "good_count or total_count signal (a scale total or pieces)"
    )


def test_a_fuel_stream_on_a_machine_with_a_fuel_meter_would_count_twice() -> None:
    text = edit(
        ("material: process_material", "material: fuel"),
        ("{machine: meal-scale, weighed: true}", "{machine: kiln, weighed: true}"),
        (
            'composition: {CaCO3: 0.78, MgCO3: 0.02}, source: "MRR Annex VI Table 2"',
            "emission_factor: 56.1, ncv_tj_per_t: 0.048, source: IPCC",
        ),
        (
            "              composition: {CaCO3: 0.80}\n",
            "              emission_factor: 56.0\n              ncv_tj_per_t: 0.049\n",
        ),
    )
    assert only_issue(text) == (
        "plant.yaml:29 cbam.processes[0].source_streams[0].activity.machine: machine 'kiln' of process "
        "'clinker' has a fuel meter whose CO2 already counts; meter the fuel one way"
    )


def test_metered_n2o_takes_no_factors() -> None:
    text = edit(("method: standard\n          material: process_material", "method: n2o_measured"))
    assert only_issue(text) == (
        "plant.yaml:26 cbam.processes[0].source_streams[0]: metered N2O needs no factors (its GWP is the "
        "regulation's)"
    )


def test_pfc_slope_with_an_unknown_cell_technology() -> None:
    text = edit(
        ("method: standard\n          material: process_material", "method: pfc_slope"),
        (
            'composition: {CaCO3: 0.78, MgCO3: 0.02}, source: "MRR Annex VI Table 2"',
            "cell_technology: PFPB, anode_effect_minutes: 0.1, source: IPCC",
        ),
        (
            "              composition: {CaCO3: 0.80}\n",
            "              anode_effect_minutes: 0.2\n"
            "              slope_cf4: 0.12\n"
            "              c2f6_per_cf4: 0.1\n",
        ),
    )
    assert only_issue(text) == (
        "plant.yaml:30 cbam.processes[0].source_streams[0].factors[0].cell_technology: unknown cell "
        "technology 'PFPB' (known: PFPB_L, PFPB_M, CWPB, SWPB, VSS, HSS)"
    )


def test_two_streams_with_one_id() -> None:
    stream = (
        "        - id: raw-meal\n          method: mass_balance\n"
        "          activity: {machine: meal-scale, weighed: true}\n"
        "          factors: [{basis: default, carbon_content: 0.1, source: test}]\n"
    )
    text = edit(("  goods:\n", stream + "  goods:\n"))
    assert only_issue(text) == (
        "plant.yaml:38 cbam.processes[0].source_streams[1].id: source stream 'raw-meal' is already in "
        "process 'clinker'"
    )


def test_n2o_counts_only_for_fertilisers() -> None:
    # The clinker kiln is a cement process: Annex I lists CO2 alone for cement.
    text = edit(
        (
            "          method: standard\n          material: process_material\n",
            "          method: n2o_measured\n",
        ),
        ("          factors:\n", "          factors_: \n"),
    )
    text = text.split("          factors_:")[0] + "  goods:" + text.split("  goods:")[1]
    assert only_issue(text) == (
        "plant.yaml:27 cbam.processes[0].source_streams[0].method: N2O count only for fertilisers goods "
        "(Annex I of Reg. 2023/956); process 'clinker' makes cement goods"
    )


def test_an_absurd_carbon_content_is_refused() -> None:
    text = edit(
        ("method: standard\n          material: process_material", "method: mass_balance"),
        (
            'composition: {CaCO3: 0.78, MgCO3: 0.02}, source: "MRR Annex VI Table 2"',
            "carbon_content: 3, source: x",
        ),
        ("              composition: {CaCO3: 0.80}\n", "              carbon_content: 0.1\n"),
    )
    assert "factors[0].carbon_content: must be <= 1" in only_issue(text)


def test_a_misspelt_factor_key_is_refused() -> None:
    text = edit(("composition: {CaCO3: 0.80}", "compositon: {CaCO3: 0.80}"))
    assert "factors[1].compositon: " in only_issue(text)


def test_an_oxidation_factor_on_a_process_material_is_refused() -> None:
    text = edit(
        ("composition: {CaCO3: 0.80}", "composition: {CaCO3: 0.80}\n              oxidation_factor: 0.99")
    )
    assert only_issue(text) == (
        "plant.yaml:26 cbam.processes[0].source_streams[0]: factors[1]: oxidation_factor does not apply "
        "to process_material"
    )
