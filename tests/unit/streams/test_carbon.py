"""Unit tests for streams.carbon: carbon test vectors of docs/references.md plus error paths."""

from __future__ import annotations

import pytest

from streams.carbon import (
    FUEL_UNITS,
    FUELS,
    GRID_FACTORS,
    GWP_SETS,
    MarketInstruments,
    UnknownFactorError,
    UnknownGwpError,
    fuel_energy_tj,
    grid_factor,
    gwp_set,
    scope1_emissions,
    scope2_kg,
)

T_TOL = 0.001  # ±0.001 t, TV-C-4


# --- factor table [VN-DCC; KR-MCEE; KR-ETS] ---------------------------------------------------------


def test_vn_table_has_ten_annual_years() -> None:
    vn = {f.year: f.t_per_mwh for f in GRID_FACTORS if f.country == "VN"}
    assert sorted(vn) == list(range(2014, 2024))
    assert vn[2014] == 0.6612
    assert vn[2018] == 0.9130
    assert vn[2023] == 0.6592
    assert all(f.basis == "annual" for f in GRID_FACTORS if f.country == "VN")


def test_vn_2022_cites_letter_327() -> None:
    f = grid_factor("VN", "annual", 2022)
    assert f.t_per_mwh == 0.6766
    assert "327/BĐKH-PTCBT" in f.source
    assert f.source.startswith("[VN-DCC]")


def test_korea_rows_and_sources() -> None:
    assert grid_factor("KR", "avg_2014_2016", 2016).t_per_mwh == 0.45941
    assert grid_factor("KR", "avg_2014_2016", 2016).source.startswith("[KR-ETS]")
    assert grid_factor("KR", "avg_2020_2022", 2022).t_per_mwh == 0.4541
    assert grid_factor("KR", "annual", 2021).t_per_mwh == 0.4509
    assert grid_factor("KR", "annual", 2022).t_per_mwh == 0.4312
    assert grid_factor("KR", "annual", 2023).t_per_mwh == 0.4173
    for row in GRID_FACTORS:
        if row.country == "KR" and row.basis != "avg_2014_2016":
            assert row.source.startswith("[KR-MCEE]")
        assert "CBAM" in row.note  # national factor is not automatically the CBAM factor


def test_korea_ets_note_keeps_allocation_factor() -> None:
    assert "allocation" in grid_factor("KR", "avg_2014_2016", 2016).note


def test_grid_table_keys_are_unique() -> None:
    keys = [(f.country, f.basis, f.year) for f in GRID_FACTORS]
    assert len(keys) == len(set(keys))


def test_grid_factor_country_is_case_insensitive() -> None:
    assert grid_factor("kr", "annual", 2023) is grid_factor("KR", "annual", 2023)


# --- TV-C-1 and TV-C-3 (scope 2) -----------------------------------------------------------------


def test_tv_c_1_korea_example_400_mwh() -> None:
    # 400 MWh x 0.4 t/MWh = 160 t; 400 MWh = 400 000 kWh, and kWh x t/MWh = kg.
    assert scope2_kg(400_000, 0.4) / 1000 == pytest.approx(160.0, abs=T_TOL)


def test_tv_c_1_korea_2023_factor_10000_mwh() -> None:
    # 10 000 MWh x 0.4173 t/MWh = 4 173 t.
    ef = grid_factor("KR", "annual", 2023).t_per_mwh
    assert scope2_kg(10_000_000, ef) / 1000 == pytest.approx(4173.0, abs=T_TOL)


def test_tv_c_3_viet_nam_2023() -> None:
    # 1 000 MWh x 0.6592 t/MWh = 659.2 t.
    ef = grid_factor("VN", "annual", 2023).t_per_mwh
    assert scope2_kg(1_000_000, ef) / 1000 == pytest.approx(659.2, abs=T_TOL)


def test_tv_c_3_viet_nam_2022() -> None:
    # 1 000 MWh x 0.6766 t/MWh = 676.6 t.
    ef = grid_factor("VN", "annual", 2022).t_per_mwh
    assert scope2_kg(1_000_000, ef) / 1000 == pytest.approx(676.6, abs=T_TOL)


# --- TV-C-4 (scope 1, natural gas, AR5) ---------------------------------------------------------


def test_tv_c_4_natural_gas_energy() -> None:
    # 100 t x 48.0 GJ/t = 4 800 GJ = 4.8 TJ.
    assert fuel_energy_tj(100, "t", FUELS["natural_gas"]) == pytest.approx(4.8, abs=1e-12)


@pytest.fixture
def tv_c_4() -> tuple[float, float, float, float]:
    ng = FUELS["natural_gas"]
    result = scope1_emissions(fuel_energy_tj(100, "t", ng), ng, gwp_set("AR5"))
    assert result.gwp == "AR5"
    ch4_t_co2e = result.ch4_kg * GWP_SETS["AR5"].ch4 / 1000
    n2o_t_co2e = result.n2o_kg * GWP_SETS["AR5"].n2o / 1000
    return result.co2_kg / 1000, ch4_t_co2e, n2o_t_co2e, result.co2e_kg / 1000


def test_tv_c_4_co2(tv_c_4: tuple[float, float, float, float]) -> None:
    # 4.8 TJ x 56 100 kg/TJ x OF 1 = 269 280 kg = 269.28 t.
    assert tv_c_4[0] == pytest.approx(269.28, abs=T_TOL)


def test_tv_c_4_ch4(tv_c_4: tuple[float, float, float, float]) -> None:
    # 4.8 TJ x 1 kg/TJ = 4.8 kg CH4; x 28 = 134.4 kg = 0.1344 t CO2e.
    assert tv_c_4[1] == pytest.approx(0.1344, abs=T_TOL)


def test_tv_c_4_n2o(tv_c_4: tuple[float, float, float, float]) -> None:
    # 4.8 TJ x 0.1 kg/TJ = 0.48 kg N2O; x 265 = 127.2 kg = 0.1272 t CO2e.
    assert tv_c_4[2] == pytest.approx(0.1272, abs=T_TOL)


def test_tv_c_4_total(tv_c_4: tuple[float, float, float, float]) -> None:
    # 269.28 + 0.1344 + 0.1272 = 269.5416 t CO2e, printed 269.542.
    assert tv_c_4[3] == pytest.approx(269.542, abs=T_TOL)


def test_tv_c_4_gas_masses_in_kg() -> None:
    ng = FUELS["natural_gas"]
    result = scope1_emissions(4.8, ng, GWP_SETS["AR5"])
    assert result.ch4_kg == pytest.approx(4.8, abs=1e-9)
    assert result.n2o_kg == pytest.approx(0.48, abs=1e-9)


# --- other units and options ---------------------------------------------------------------------


def test_energy_units_agree() -> None:
    ng = FUELS["natural_gas"]
    # 100 000 kg = 100 t -> 4.8 TJ; 4 800 GJ = 4.8 TJ; 4.8 TJ / 0.0036 TJ/MWh = 1 333.33 MWh.
    assert fuel_energy_tj(100_000, "kg", ng) == pytest.approx(4.8, abs=1e-12)
    assert fuel_energy_tj(4_800, "GJ", ng) == pytest.approx(4.8, abs=1e-12)
    assert fuel_energy_tj(4.8, "TJ", ng) == 4.8
    assert fuel_energy_tj(4.8 / 0.0036, "MWh", ng) == pytest.approx(4.8, abs=1e-12)
    # 1 000 Nm3 x 36 MJ/Nm3 = 36 000 MJ = 0.036 TJ.
    assert fuel_energy_tj(1_000, "Nm3", ng, ncv_mj_per_nm3=36.0) == pytest.approx(0.036, abs=1e-12)
    assert set(FUEL_UNITS) == {"kg", "t", "GJ", "TJ", "MWh", "Nm3"}


def test_diesel_and_oxidation_factor() -> None:
    diesel = FUELS["gas_diesel_oil"]
    # 10 t x 43.0 GJ/t = 0.43 TJ; CO2 = 0.43 x 74 100 x 0.99 = 31 544.37 kg.
    result = scope1_emissions(fuel_energy_tj(10, "t", diesel), diesel, GWP_SETS["AR6"], 0.99)
    assert result.co2_kg == pytest.approx(31_544.37, abs=1e-6)
    # CH4 0.43 x 3 = 1.29 kg x 29.8; N2O 0.43 x 0.6 = 0.258 kg x 273 (OF not applied to them).
    assert result.co2e_kg == pytest.approx(31_544.37 + 1.29 * 29.8 + 0.258 * 273, abs=1e-6)
    assert result.gwp == "AR6"


def test_market_based_effective_factor() -> None:
    # 25 % covered at 0 t/MWh, 75 % at residual 0.5 -> 0.25 x 0 + 0.75 x 0.5 = 0.375 t/MWh.
    mi = MarketInstruments(covered_share=0.25, covered_t_per_mwh=0.0, residual_t_per_mwh=0.5)
    assert mi.effective_t_per_mwh() == pytest.approx(0.375, abs=1e-12)
    # 1 000 MWh x 0.375 = 375 t.
    assert scope2_kg(1_000_000, mi.effective_t_per_mwh()) / 1000 == pytest.approx(375.0, abs=T_TOL)


# --- error paths ---------------------------------------------------------------------------------


def test_unknown_country_lists_known_countries() -> None:
    with pytest.raises(UnknownFactorError) as info:
        grid_factor("JP", "annual", 2023)
    message = str(info.value)
    assert "'JP'" in message
    assert "KR" in message
    assert "VN" in message
    assert not message.startswith('"')  # no KeyError repr quoting
    assert "\n" not in message
    assert isinstance(info.value, KeyError)
    assert info.value.key == ("JP", "annual", 2023)


def test_unknown_year_lists_available_rows() -> None:
    with pytest.raises(UnknownFactorError) as info:
        grid_factor("vn", "annual", 2024)
    message = str(info.value)
    assert "2024" in message
    assert "annual/2014" in message
    assert "annual/2023" in message
    assert not message.startswith('"')


def test_unknown_basis_lists_available_bases() -> None:
    with pytest.raises(UnknownFactorError) as info:
        grid_factor("KR", "avg_2017_2019", 2019)
    message = str(info.value)
    assert "'avg_2017_2019'" in message
    assert "avg_2014_2016/2016" in message
    assert "avg_2020_2022/2022" in message
    assert "annual/2023" in message


def test_unknown_gwp_set() -> None:
    assert gwp_set("ar6") is GWP_SETS["AR6"]
    with pytest.raises(UnknownGwpError, match=r"unknown GWP set 'AR4'.*AR5, AR6, SAR") as info:
        gwp_set("AR4")
    assert isinstance(info.value, KeyError)


def test_unknown_unit() -> None:
    with pytest.raises(ValueError, match=r"unknown fuel quantity unit 'm3'.*Nm3"):
        fuel_energy_tj(1.0, "m3", FUELS["natural_gas"])


def test_nm3_without_ncv() -> None:
    with pytest.raises(ValueError, match="ncv_mj_per_nm3"):
        fuel_energy_tj(1_000, "Nm3", FUELS["natural_gas"])


def test_ncv_with_other_unit_is_rejected() -> None:
    with pytest.raises(ValueError, match="only to unit 'Nm3'"):
        fuel_energy_tj(1.0, "t", FUELS["natural_gas"], ncv_mj_per_nm3=36.0)


def test_negative_quantity_is_rejected() -> None:
    with pytest.raises(ValueError, match="quantity"):
        fuel_energy_tj(-1.0, "t", FUELS["natural_gas"])


def test_bad_oxidation_factor() -> None:
    with pytest.raises(ValueError, match="oxidation_factor"):
        scope1_emissions(1.0, FUELS["natural_gas"], GWP_SETS["AR5"], 1.5)


@pytest.mark.parametrize("share", [-0.1, 1.01, float("nan")])
def test_bad_market_share(share: float) -> None:
    with pytest.raises(ValueError, match="covered_share"):
        MarketInstruments(covered_share=share, covered_t_per_mwh=0.0, residual_t_per_mwh=0.5)


def test_negative_market_factor() -> None:
    with pytest.raises(ValueError, match="residual_t_per_mwh"):
        MarketInstruments(covered_share=0.5, covered_t_per_mwh=0.0, residual_t_per_mwh=-0.1)


def test_negative_scope2_input() -> None:
    with pytest.raises(ValueError, match="kwh"):
        scope2_kg(-1.0, 0.5)
