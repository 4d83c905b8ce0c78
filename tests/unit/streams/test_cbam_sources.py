"""CBAM source streams: the stoichiometric factors, each method's formula, factors per period.

Every expected number is worked out in the test from the regulation's formula
(IR 2025/2547 Annex II B; MRR 2018/2066 Art. 24-25, Annex IV s. 8, Annex VI).
"""

from __future__ import annotations

from datetime import date

import pytest

from plantstream.plant.cbam_factors import CARBONATES, CO2_PER_C, GWP_CBAM, OXIDES
from streams.cbam_sources import (
    StreamEmissions,
    StreamFactor,
    composition_factor,
    factor_on,
    mass_balance_co2,
    pfc_slope,
    stream_emissions,
)

EXACT = 1e-12

# Standard atomic weights (IUPAC, abridged): the stoichiometric factors are ratios of these.
ATOMIC = {"C": 12.011, "O": 15.999, "Ca": 40.078, "Mg": 24.305, "Fe": 55.845, "Mn": 54.938, "Na": 22.990}
CO2 = ATOMIC["C"] + 2 * ATOMIC["O"]
CO3 = ATOMIC["C"] + 3 * ATOMIC["O"]
# compound -> (molar mass, CO2 released per formula unit)
COMPOUNDS = {
    "CaCO3": (ATOMIC["Ca"] + CO3, 1),
    "MgCO3": (ATOMIC["Mg"] + CO3, 1),
    "CaMg(CO3)2": (ATOMIC["Ca"] + ATOMIC["Mg"] + 2 * CO3, 2),
    "FeCO3": (ATOMIC["Fe"] + CO3, 1),
    "MnCO3": (ATOMIC["Mn"] + CO3, 1),
    "Na2CO3": (2 * ATOMIC["Na"] + CO3, 1),
    "CaO": (ATOMIC["Ca"] + ATOMIC["O"], 1),
    "MgO": (ATOMIC["Mg"] + ATOMIC["O"], 1),
}


@pytest.mark.parametrize("name", sorted({**CARBONATES, **OXIDES}))
def test_each_shipped_factor_is_the_stoichiometry_to_three_decimals(name: str) -> None:
    # n x M(CO2) / M(compound): CaCO3 44.009 / 100.086 = 0.43971 -> 0.440; CaO 44.009 / 56.077 =
    # 0.78480 -> 0.785; MgO 44.009 / 40.304 = 1.09193 -> 1.092.
    molar, n = COMPOUNDS[name]
    shipped = {**CARBONATES, **OXIDES}[name]
    assert shipped == pytest.approx(n * CO2 / molar, abs=0.0005)


def test_the_regulations_printed_values() -> None:
    assert (CARBONATES["CaCO3"], CARBONATES["MgCO3"]) == (0.440, 0.522)
    assert (OXIDES["CaO"], OXIDES["MgO"]) == (0.785, 1.092)
    assert abs(CO2_PER_C - 3.66414) < 1e-5  # 44.01 / 12.011
    assert GWP_CBAM == {"N2O": 265.0, "CF4": 6630.0, "C2F6": 11100.0}


def test_input_method_raw_meal_by_its_carbonates() -> None:
    # 1 000 t raw meal with 78 % CaCO3 and 2 % MgCO3: EF = 0.78 x 0.440 + 0.02 x 0.522 = 0.35364 t/t.
    ef = composition_factor({"CaCO3": 0.78, "MgCO3": 0.02})
    assert ef == pytest.approx(0.35364, rel=EXACT)
    factor = StreamFactor(None, "default", emission_factor=ef)
    assert stream_emissions("standard", 1000.0, factor).co2_t == pytest.approx(353.64, rel=EXACT)


def test_output_method_clinker_by_its_oxides() -> None:
    # 1 000 t clinker with 65 % CaO and 1.5 % MgO from carbonates: 0.65 x 0.785 + 0.015 x 1.092
    # = 0.51025 + 0.01638 = 0.52663 t CO2/t -> 526.63 t.
    ef = composition_factor({"CaO": 0.65, "MgO": 0.015})
    assert stream_emissions(
        "standard", 1000.0, StreamFactor(None, "laboratory", emission_factor=ef)
    ).co2_t == (pytest.approx(526.63, rel=EXACT))


def test_conversion_factor_scales_a_process_material() -> None:
    # 100 t at EF 0.44 with 98 % converted: 100 x 0.44 x 0.98 = 43.12 t.
    factor = StreamFactor(None, "default", emission_factor=0.44, conversion_factor=0.98)
    assert stream_emissions("standard", 100.0, factor).co2_t == pytest.approx(43.12, rel=EXACT)


def test_a_fuel_by_the_standard_method_is_tv_c_4s_co2() -> None:
    # TV-C-4: 100 t natural gas x 0.048 TJ/t x 56.1 t CO2/TJ x OF 1 = 269.28 t CO2 (no CH4, N2O).
    factor = StreamFactor(None, "default", emission_factor=56.1, ncv_tj_per_t=0.048)
    result = stream_emissions("standard", 100.0, factor, fuel=True)
    assert result == StreamEmissions(co2_t=pytest.approx(269.28, rel=EXACT))
    # An oxidation factor of 0.99 takes 1 % off.
    lower = StreamFactor(None, "default", emission_factor=56.1, ncv_tj_per_t=0.048, oxidation_factor=0.99)
    assert stream_emissions("standard", 100.0, lower, fuel=True).co2_t == pytest.approx(
        269.28 * 0.99, rel=EXACT
    )


def test_mass_balance_of_an_eaf() -> None:
    # In: scrap 1 000 t x 0.2 % C = 2 t C, electrodes 2 t x 85 % = 1.7 t C, charge coal 10 t x 80 %
    # = 8 t C. Out: steel 950 t x 0.1 % = 0.95 t C, slag 100 t x 0.1 % = 0.1 t C.
    # Em = 44.01/12.011 x (2 + 1.7 + 8 - 0.95 - 0.1) = 3.664141 x 10.65 = 39.023 t CO2.
    terms = [
        mass_balance_co2(1000, 0.002, output=False),
        mass_balance_co2(2, 0.85, output=False),
        mass_balance_co2(10, 0.80, output=False),
        mass_balance_co2(950, 0.001, output=True),
        mass_balance_co2(100, 0.001, output=True),
    ]
    assert terms[3] < 0
    assert terms[4] < 0
    assert sum(terms) == pytest.approx(44.01 / 12.011 * 10.65, rel=EXACT)
    assert sum(terms) == pytest.approx(39.0231, abs=1e-4)


def test_pfcs_by_the_slope_method() -> None:
    # 1 000 t Al, CWPB defaults SEF 0.143, F 0.121, 0.1 AE-min/cell-day: CF4 = 0.143 x 0.1 x 1 000 kg
    # = 14.3 kg; C2F6 = 14.3 x 0.121 = 1.7303 kg; CO2e = 0.0143 x 6 630 + 0.0017303 x 11 100
    # = 94.809 + 19.20633 = 114.01533 t.
    cf4, c2f6 = pfc_slope(1000.0, 0.143, 0.1, 0.121)
    assert (cf4, c2f6) == (pytest.approx(0.0143, rel=EXACT), pytest.approx(0.0017303, rel=EXACT))
    factor = StreamFactor(None, "default", slope_cf4=0.143, c2f6_per_cf4=0.121, anode_effect_minutes=0.1)
    result = stream_emissions("pfc_slope", 1000.0, factor)
    assert result.co2_t == 0.0
    assert result.co2e_t == pytest.approx(114.01533, rel=1e-9)


def test_metered_n2o() -> None:
    # 2.5 t N2O from the stack totaliser x 265 = 662.5 t CO2e.
    result = stream_emissions("n2o_measured", 2.5, None)
    assert (result.n2o_t, result.co2e_t) == (2.5, 662.5)


def test_an_unknown_method_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown monitoring method 'measured'"):
        stream_emissions("measured", 1.0, StreamFactor(None, "default", emission_factor=1.0))


def test_the_factor_of_a_day_is_the_last_one_started() -> None:
    first = StreamFactor(None, "default", emission_factor=0.44)
    july = StreamFactor(date(2026, 7, 1), "laboratory", emission_factor=0.43)
    factors = [first, july]
    assert factor_on(factors, date(2026, 6, 30)) is first
    assert factor_on(factors, date(2026, 7, 1)) is july
    assert factor_on(factors, date(2027, 1, 1)) is july
    assert factor_on([], date(2026, 1, 1)) is None
