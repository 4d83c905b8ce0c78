"""Unit tests for streams.cbam: CBAM test vectors of docs/references.md, cross-channel rule, error paths."""

from __future__ import annotations

import pytest

from streams.cbam import (
    CbamCategory,
    PrecursorInput,
    SeeResult,
    carries_indirect,
    cbam_factor,
    certificates_due_per_t,
    default_markup,
    default_with_markup,
    embedded_emissions,
    require_definitive_year,
    round_template,
    specific_embedded_emissions,
    specific_embedded_emissions_specific_form,
)

EXACT = 1e-9
TOL = 0.0005

# --- TV-CBAM-1: default mark-up --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("year", "exact", "rounded"),
    [
        (2026, 1.4575, 1.458),  # 1.325 x 1.10 = 1.4575 -> half-up 1.458
        (2027, 1.590, 1.590),  # 1.325 x 1.20 = 1.590
        (2028, 1.7225, 1.723),  # 1.325 x 1.30 = 1.7225 -> half-up 1.723
        (2031, 1.7225, 1.723),  # +30 % holds from 2028 onwards
    ],
)
def test_tv_cbam_1_dri_other_countries(year: int, exact: float, rounded: float) -> None:
    value = default_with_markup(1.325, CbamCategory.IRON_STEEL, year)
    assert value == pytest.approx(exact, abs=EXACT)
    assert round_template(value) == pytest.approx(rounded, abs=EXACT)


@pytest.mark.parametrize(
    ("year", "expected"),
    [
        (2026, 11.902),  # 10.820 x 1.10 = 11.902
        (2027, 12.984),  # 10.820 x 1.20 = 12.984
        (2028, 14.066),  # 10.820 x 1.30 = 14.066
    ],
)
def test_tv_cbam_1_hydrogen_au_br(year: int, expected: float) -> None:
    value = default_with_markup(10.820, CbamCategory.HYDROGEN, year)
    assert value == pytest.approx(expected, abs=EXACT)
    assert round_template(value) == pytest.approx(expected, abs=EXACT)


def test_tv_cbam_1_hydrogen_other_countries_2026() -> None:
    # 17.740 x 1.10 = 19.514
    value = default_with_markup(17.740, CbamCategory.HYDROGEN, 2026)
    assert value == pytest.approx(19.514, abs=EXACT)
    assert round_template(value) == pytest.approx(19.514, abs=EXACT)


def test_markups_per_category() -> None:
    for cat in (CbamCategory.CEMENT, CbamCategory.IRON_STEEL, CbamCategory.ALUMINIUM, CbamCategory.HYDROGEN):
        assert default_markup(cat, 2026) == pytest.approx(0.10, abs=EXACT)
        assert default_markup(cat, 2027) == pytest.approx(0.20, abs=EXACT)
        assert default_markup(cat, 2028) == pytest.approx(0.30, abs=EXACT)
        assert default_markup(cat, 2040) == pytest.approx(0.30, abs=EXACT)
    for year in (2026, 2027, 2028, 2035):
        assert default_markup(CbamCategory.FERTILISERS, year) == pytest.approx(0.01, abs=EXACT)
        assert default_markup(CbamCategory.ELECTRICITY, year) == 0.0


def test_round_template_is_half_up_not_bankers() -> None:
    assert round_template(0.0625) == 0.063  # exact binary half: round(0.0625, 3) gives 0.062 (half to even)
    assert round_template(2.0025) == 2.003  # round(2.0025, 3) gives 2.002 (binary value below half)
    assert round_template(1.4574999) == 1.457
    assert round_template(-1.2345) == -1.235  # half away from zero


# --- TV-CBAM-3: complex good, direct channel ----------------------------------------------------


def test_tv_cbam_3_general_form() -> None:
    # EE_InpMat = 21 000 t x 2.0 = 42 000 t; SEE = (1 200 + 42 000) / 20 000 = 2.160 t/t.
    see = specific_embedded_emissions(1_200, 20_000, [(21_000, 2.0)])
    assert see == pytest.approx(2.160, abs=TOL)


def test_tv_cbam_3_specific_form() -> None:
    # ae = 1 200 / 20 000 = 0.06; m = 21 000 / 20 000 = 1.05; 0.06 + 1.05 x 2.0 = 2.160 t/t.
    see = specific_embedded_emissions_specific_form(0.06, [(1.05, 2.0)])
    assert see == pytest.approx(2.160, abs=TOL)


def test_tv_cbam_3_forms_are_equal() -> None:
    general = specific_embedded_emissions(1_200, 20_000, [(21_000, 2.0)])
    specific = specific_embedded_emissions_specific_form(1_200 / 20_000, [(21_000 / 20_000, 2.0)])
    assert general == pytest.approx(specific, abs=EXACT)


def test_simple_good() -> None:
    # No precursors: SEE = AttrEm / AL = 800 / 1 000 = 0.8 t/t.
    assert specific_embedded_emissions(800, 1_000) == pytest.approx(0.8, abs=EXACT)


# --- Annex II and the cross-channel rule ----------------------------------------------------------


@pytest.mark.parametrize(
    ("category", "cn_code", "expected"),
    [
        (CbamCategory.CEMENT, "2523 10 00", True),
        (CbamCategory.FERTILISERS, "2814", True),
        (CbamCategory.IRON_STEEL, "2601 12 00", True),  # agglomerated ore is not Annex II
        (CbamCategory.IRON_STEEL, "26011200", True),
        (CbamCategory.IRON_STEEL, "7203", False),
        (CbamCategory.IRON_STEEL, "7306 30 77", False),
        (CbamCategory.ALUMINIUM, "7601", False),
        (CbamCategory.HYDROGEN, "2804 10 00", False),
        (CbamCategory.ELECTRICITY, "2716 00 00", False),
    ],
)
def test_carries_indirect(category: CbamCategory, cn_code: str, expected: bool) -> None:
    assert carries_indirect(category, cn_code) is expected


def test_carries_indirect_with_category_from_value() -> None:
    assert carries_indirect(CbamCategory("cement"), "25231000") is True


@pytest.mark.parametrize("cn_code", ["", "72O3", "2601.12.00", "1"])
def test_carries_indirect_rejects_bad_cn(cn_code: str) -> None:
    with pytest.raises(ValueError, match="CN code"):
        carries_indirect(CbamCategory.CEMENT, cn_code)


def test_cross_channel_annex_ii_good_includes_non_annex_ii_precursor_indirect() -> None:
    # DRI (Annex II, direct only) from pellets 2601 12 00 (non-Annex II, carries indirect).
    pellets = PrecursorInput(mass_t=1_400, see_direct=0.1, see_indirect=0.05)
    result = embedded_emissions(
        CbamCategory.IRON_STEEL,
        "7203 10 00",
        attributed_direct_t=500,
        attributed_indirect_t=80,  # the DRI plant's own electricity: not counted (Annex II)
        activity_t=1_000,
        precursors=[(pellets, carries_indirect(CbamCategory.IRON_STEEL, "2601 12 00"))],
    )
    # direct = (500 + 1 400 x 0.1) / 1 000 = 0.64; counted indirect = (0 + 1 400 x 0.05) / 1 000 = 0.07.
    assert result.direct == pytest.approx(0.64, abs=EXACT)
    assert result.indirect_counted == pytest.approx(0.07, abs=EXACT)
    assert result.counted == pytest.approx(0.71, abs=EXACT)
    # The whole indirect figure keeps the DRI plant's own electricity: (80 + 70) / 1 000 = 0.15.
    assert result.indirect == pytest.approx(0.15, abs=EXACT)
    assert result.total == pytest.approx(0.79, abs=EXACT)


def test_cross_channel_non_annex_ii_good_excludes_annex_ii_precursor_indirect() -> None:
    # Ammonia (fertiliser, non-Annex II) from hydrogen (Annex II) and a non-Annex II precursor.
    hydrogen = PrecursorInput(mass_t=180, see_direct=9.0, see_indirect=0.5)
    other = PrecursorInput(mass_t=100, see_direct=1.0, see_indirect=0.2)
    result = embedded_emissions(
        CbamCategory.FERTILISERS,
        "2814 10 00",
        attributed_direct_t=1_500,
        attributed_indirect_t=100,
        activity_t=1_000,
        precursors=[(hydrogen, False), (other, True)],
    )
    # direct = (1 500 + 180 x 9.0 + 100 x 1.0) / 1 000 = (1 500 + 1 620 + 100) / 1 000 = 3.22
    # counted indirect = (100 + 100 x 0.2) / 1 000 = 0.12; hydrogen's 180 x 0.5 = 90 t is excluded.
    assert result.direct == pytest.approx(3.22, abs=EXACT)
    assert result.indirect_counted == pytest.approx(0.12, abs=EXACT)
    assert result.counted == pytest.approx(3.34, abs=EXACT)
    # The whole figure includes the hydrogen's: (100 + 90 + 20) / 1 000 = 0.21.
    assert result.indirect == pytest.approx(0.21, abs=EXACT)
    assert result.total == pytest.approx(3.43, abs=EXACT)
    assert isinstance(result, SeeResult)


def test_annex_ii_good_without_precursors_has_zero_indirect() -> None:
    result = embedded_emissions(
        CbamCategory.ALUMINIUM,
        "7601",
        attributed_direct_t=1_600,
        attributed_indirect_t=9_000,  # not counted: aluminium is an Annex II good
        activity_t=1_000,
    )
    # direct = 1 600 / 1 000 = 1.6; nothing indirect counts (Art. 7(1)), so SEE counted = 1.6.
    assert result.direct == pytest.approx(1.6, abs=EXACT)
    assert result.indirect_counted == 0.0
    assert result.counted == pytest.approx(1.6, abs=EXACT)
    # But the smelter's electricity did emit: 9 000 / 1 000 = 9.0 t/t, never shown as 0.
    assert result.indirect == pytest.approx(9.0, abs=EXACT)
    assert result.total == pytest.approx(10.6, abs=EXACT)


def test_an_unknown_input_leaves_only_the_figures_that_need_it_empty() -> None:
    # Aluminium whose electricity is not metered, from a precursor whose indirect SEE is unknown.
    ingot = PrecursorInput(mass_t=1_000, see_direct=1.5, see_indirect=None)
    result = embedded_emissions(
        CbamCategory.ALUMINIUM,
        "7604 10 10",
        attributed_direct_t=200,
        attributed_indirect_t=None,
        activity_t=1_000,
        precursors=[(ingot, False)],
    )
    # direct = (200 + 1 000 x 1.5) / 1 000 = 1.7; nothing unknown counts, so SEE counted = 1.7.
    assert result.direct == pytest.approx(1.7, abs=EXACT)
    assert result.counted == pytest.approx(1.7, abs=EXACT)
    assert result.indirect is None
    assert result.total is None
    # Cement with its own electricity unknown: the counted figure cannot be computed either.
    cement = embedded_emissions(
        CbamCategory.CEMENT,
        "2523 29 00",
        attributed_direct_t=700,
        attributed_indirect_t=None,
        activity_t=1_000,
    )
    assert cement.direct == pytest.approx(0.7, abs=EXACT)
    assert (cement.indirect, cement.indirect_counted, cement.counted) == (None, None, None)


# --- CBAM factor and certificates -----------------------------------------------------------------


def test_cbam_factor_schedule() -> None:
    expected = {
        2026: 0.975,
        2027: 0.95,
        2028: 0.90,
        2029: 0.775,
        2030: 0.515,
        2031: 0.39,
        2032: 0.265,
        2033: 0.14,
        2034: 0.0,
        2040: 0.0,
    }
    for year, factor in expected.items():
        assert cbam_factor(year) == pytest.approx(factor, abs=EXACT)


def test_certificates_due() -> None:
    # 2.160 - 0.975 x 1.0 x 1.5 = 2.160 - 1.4625 = 0.6975 t per t.
    assert certificates_due_per_t(2.160, 2026, 1.5) == pytest.approx(0.6975, abs=EXACT)
    # With CSCF 0.9: 2.160 - 0.975 x 0.9 x 1.5 = 2.160 - 1.31625 = 0.84375.
    assert certificates_due_per_t(2.160, 2026, 1.5, cscf=0.9) == pytest.approx(0.84375, abs=EXACT)
    # From 2034 the factor is 0, so the whole SEE is due.
    assert certificates_due_per_t(2.160, 2034, 1.5) == pytest.approx(2.160, abs=EXACT)


def test_certificates_due_floor_at_zero() -> None:
    # 1.0 - 0.975 x 1.5 = -0.4625 -> floored to 0 (an inference: the text states no floor).
    assert certificates_due_per_t(1.0, 2026, 1.5) == 0.0


# --- error paths ----------------------------------------------------------------------------------


@pytest.mark.parametrize("activity_t", [0.0, -1.0, float("nan")])
def test_activity_must_be_positive(activity_t: float) -> None:
    with pytest.raises(ValueError, match="activity_t"):
        specific_embedded_emissions(1_200, activity_t, [(21_000, 2.0)])
    with pytest.raises(ValueError, match="activity_t"):
        embedded_emissions(
            CbamCategory.CEMENT,
            "2523 10 00",
            attributed_direct_t=1.0,
            attributed_indirect_t=1.0,
            activity_t=activity_t,
        )


def test_negative_precursor_mass() -> None:
    with pytest.raises(ValueError, match="mass_t"):
        PrecursorInput(mass_t=-1.0, see_direct=1.0, see_indirect=0.0)
    with pytest.raises(ValueError, match="M_i"):
        specific_embedded_emissions(1.0, 1.0, [(-1.0, 2.0)])
    with pytest.raises(ValueError, match="m_i"):
        specific_embedded_emissions_specific_form(0.06, [(-1.05, 2.0)])


@pytest.mark.parametrize("year", [2023, 2025])
def test_year_before_definitive_period(year: int) -> None:
    with pytest.raises(ValueError, match=r"definitive period.*2026"):
        default_markup(CbamCategory.IRON_STEEL, year)
    with pytest.raises(ValueError, match="definitive period"):
        default_with_markup(1.325, CbamCategory.IRON_STEEL, year)
    with pytest.raises(ValueError, match="definitive period"):
        cbam_factor(year)
    with pytest.raises(ValueError, match="definitive period"):
        certificates_due_per_t(2.0, year, 1.5)
    # The message names the year and the act that governed it, not only the rule that failed.
    with pytest.raises(ValueError, match=rf"year {year} is before .*IR \(EU\) 2023/1773"):
        require_definitive_year(year)


def test_2026_and_later_are_definitive_period_years() -> None:
    require_definitive_year(2026)
    require_definitive_year(2034)


def test_bad_certificate_inputs() -> None:
    with pytest.raises(ValueError, match="benchmark"):
        certificates_due_per_t(2.0, 2026, -1.0)
    with pytest.raises(ValueError, match="cscf"):
        certificates_due_per_t(2.0, 2026, 1.5, cscf=-0.1)


def test_bad_default_value_and_rounding_input() -> None:
    with pytest.raises(ValueError, match="default_value"):
        default_with_markup(-1.0, CbamCategory.CEMENT, 2026)
    with pytest.raises(ValueError, match="finite"):
        round_template(float("inf"))
