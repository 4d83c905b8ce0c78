"""Scope 1 and Scope 2 carbon accounting: factors and formulas (pure, standard library only).

Every number and formula here comes from a public source, tagged with its key in
docs/references.md:

- [IPCC06]: 2006 IPCC Guidelines Vol. 2 (Energy), Tables 1.2/1.4 (NCV, CO2 EF) and 2.3
  (manufacturing-industry CH4/N2O). To verify against the published volume.
- [VN-DCC]: Viet Nam DCC/MONRE national grid emission factors, Table 1; 2022 from letter
  No. 327/BĐKH-PTCBT.
- [KR-MCEE]: Korea Ministry of Climate, Energy and Environment press release (2025-12-17/18).
- [KR-ETS]: Korea ETS reporting guideline, annex 6 table 69 (2014-16 average factor).
- [GHGP-S2]: GHG Protocol Scope 2 Guidance (2015): location-based and market-based methods.
- [CBAM-NOTE]: national grid factors are not automatically the CBAM indirect-emissions factor.

The module does no I/O, reads no clock and logs nothing, so every function is deterministic and
safe to call from any stream stage. Results carry the GWP set they were computed with, as the
reference requires ("Store the GWP set with every result").
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = [
    "FUELS",
    "FUEL_UNITS",
    "GRID_FACTORS",
    "GWP_SETS",
    "MWH_TO_TJ",
    "FuelSpec",
    "GridFactor",
    "Gwp",
    "MarketInstruments",
    "Scope1",
    "UnknownFactorError",
    "UnknownGwpError",
    "fuel_energy_tj",
    "grid_factor",
    "gwp_set",
    "scope1_emissions",
    "scope2_kg",
]


class _ClearKeyError(KeyError):
    """A ``KeyError`` whose ``str()`` is the plain message, without ``KeyError``'s repr quoting."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


# --------------------------------------------------------------------------------------------------
# Grid emission factors [VN-DCC; KR-MCEE; KR-ETS]
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GridFactor:
    """One official electricity grid emission factor [VN-DCC; KR-MCEE; KR-ETS].

    The key is ``(country, basis, year)``, not just ``(country, year)``, because Korea publishes
    both multi-year averages and single-year factors, and its ETS keeps the factor that was used at
    allocation [KR-MCEE].

    Attributes:
        country: ISO 3166-1 alpha-2 code, upper case (for example ``"VN"``, ``"KR"``).
        basis: How the factor was built: ``"annual"`` for a single year, or ``"avg_YYYY_YYYY"``
            for a multi-year average (``year`` is then the last year of the average).
        year: The data year the factor describes.
        t_per_mwh: Emission factor in tCO2e/MWh (equal to kgCO2e/kWh).
        source: The docs/references.md source key plus a short citation.
        note: Domain facts that matter when using the factor; may be empty.
    """

    country: str
    basis: str
    year: int
    t_per_mwh: float
    source: str
    note: str = ""


_VN_SOURCE = "[VN-DCC] DCC/MONRE national grid EF announcement, summarised in Table 1 (climatechange.vn)"
_VN_NOTE = (
    "National grid EF by the CDM 'Tool for the calculation of emission factors for an electricity "
    "system' (combined margin); GHG Protocol location-based factor. Not automatically the CBAM "
    "indirect-emissions factor [CBAM-NOTE]."
)
_KR_NOTE = (
    "National consumption-side electricity EF. Not automatically the CBAM indirect-emissions "
    "factor [CBAM-NOTE]."
)

_VN_ANNUAL: tuple[tuple[int, float], ...] = (
    (2014, 0.6612),
    (2015, 0.8154),
    (2016, 0.9185),
    (2017, 0.8649),
    (2018, 0.9130),
    (2019, 0.8458),
    (2020, 0.8041),
    (2021, 0.7221),
    (2022, 0.6766),
    (2023, 0.6592),
)


def _vn_factor(year: int, value: float) -> GridFactor:
    """Build one Viet Nam annual factor row [VN-DCC]."""
    if year == 2022:
        return GridFactor(
            "VN",
            "annual",
            year,
            value,
            "[VN-DCC] official letter No. 327/BĐKH-PTCBT (greenup.asia/?p=1591)",
            _VN_NOTE + " 2022 value announced by letter 327/BĐKH-PTCBT.",
        )
    if year == 2023:
        return GridFactor(
            "VN",
            "annual",
            year,
            value,
            _VN_SOURCE,
            _VN_NOTE + " Latest value in our sources: no 2024 value found; check the DCC's annual "
            "notice (now Ministry of Agriculture and Environment) before 2026 reporting.",
        )
    return GridFactor("VN", "annual", year, value, _VN_SOURCE, _VN_NOTE)


GRID_FACTORS: tuple[GridFactor, ...] = (
    *(_vn_factor(year, value) for year, value in _VN_ANNUAL),
    GridFactor(
        "KR",
        "avg_2014_2016",
        2016,
        0.45941,
        "[KR-ETS] ETS reporting guideline, annex 6 table 69 (ME notice 2020-304, annex 7)",
        "2014-16 average national electricity EF (printed 0.4594). The Korean ETS keeps, for "
        "surrender, the factor that was used at allocation [KR-MCEE]. Older factor, built with SAR "
        "GWPs. " + _KR_NOTE,
    ),
    GridFactor(
        "KR",
        "avg_2020_2022",
        2022,
        0.4541,
        "[KR-MCEE] 2020-22 average, published March 2025",
        "3-year average basis. The Korean ETS keeps, for surrender, the factor that was used at "
        "allocation [KR-MCEE]. " + _KR_NOTE,
    ),
    GridFactor(
        "KR",
        "annual",
        2021,
        0.4509,
        "[KR-MCEE] single-year value, via newstree.co.kr",
        _KR_NOTE,
    ),
    GridFactor(
        "KR",
        "annual",
        2022,
        0.4312,
        "[KR-MCEE] single-year value, via newstree.co.kr",
        _KR_NOTE,
    ),
    GridFactor(
        "KR",
        "annual",
        2023,
        0.4173,
        "[KR-MCEE] press release 2025-12-17/18 on the 2023 electricity EF",
        "From Dec 2025 Korea publishes a one-year factor every year instead of a 3-year average. " + _KR_NOTE,
    ),
)
"""The official grid factor table [VN-DCC; KR-ETS; KR-MCEE]."""


class UnknownFactorError(_ClearKeyError):
    """Raised by :func:`grid_factor` when no factor exists for the requested key.

    ``str(error)`` is a one-line message naming the requested ``(country, basis, year)`` and listing
    what exists for that country, or the known countries if the country itself is unknown.

    Attributes:
        message: The one-line message.
        key: The requested ``(country, basis, year)``, country upper-cased; ``None`` if unknown.
    """

    def __init__(self, message: str, key: tuple[str, str, int] | None = None) -> None:
        super().__init__(message)
        self.key = key


def grid_factor(country: str, basis: str, year: int) -> GridFactor:
    """Look up an official grid factor in :data:`GRID_FACTORS` [VN-DCC; KR-MCEE; KR-ETS].

    Args:
        country: ISO 3166-1 alpha-2 code; case-insensitive and surrounding spaces are ignored.
        basis: ``"annual"`` or a multi-year basis such as ``"avg_2020_2022"`` (exact match).
        year: Data year of the factor.

    Returns:
        The matching :class:`GridFactor` (its ``source`` names the docs/references.md source key).

    Raises:
        UnknownFactorError: If no factor matches. The message lists the available
            ``basis/year`` pairs for the country, or the known countries.
    """
    code = country.strip().upper()
    key = (code, basis, year)
    rows = [f for f in GRID_FACTORS if f.country == code]
    if not rows:
        known = ", ".join(sorted({f.country for f in GRID_FACTORS}))
        raise UnknownFactorError(
            f"no grid factor for country {code!r} (basis {basis!r}, year {year}); known countries: {known}",
            key,
        )
    for row in rows:
        if row.basis == basis and row.year == year:
            return row
    available = ", ".join(f"{f.basis}/{f.year}" for f in sorted(rows, key=lambda f: (f.basis, f.year)))
    raise UnknownFactorError(
        f"no grid factor for {code} basis {basis!r} year {year}; {code} has: {available}",
        key,
    )


# --------------------------------------------------------------------------------------------------
# Global warming potentials [IPCC-GWP]
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Gwp:
    """A 100-year global warming potential set [IPCC-GWP].

    Attributes:
        name: Assessment report name, for example ``"AR5"``; stored with every result.
        ch4: GWP-100 of CH4 (fossil CH4 for AR6).
        n2o: GWP-100 of N2O.
    """

    name: str
    ch4: float
    n2o: float


GWP_SETS: dict[str, Gwp] = {
    "AR5": Gwp("AR5", 28.0, 265.0),
    "AR6": Gwp("AR6", 29.8, 273.0),
    "SAR": Gwp("SAR", 21.0, 310.0),
}
"""GWP-100 sets [IPCC-GWP]: AR5 (28, 265), AR6 fossil CH4 (29.8, 273), SAR (21, 310).

SAR is the set used by the older Korean factor.
"""


class UnknownGwpError(_ClearKeyError):
    """Raised by :func:`gwp_set` for a GWP set name that is not in :data:`GWP_SETS`."""


def gwp_set(name: str) -> Gwp:
    """Return a GWP set by name [IPCC-GWP].

    Args:
        name: ``"AR5"``, ``"AR6"`` or ``"SAR"``; case-insensitive.

    Returns:
        The :class:`Gwp` set.

    Raises:
        UnknownGwpError: If the name is unknown; the message lists the known sets.
    """
    found = GWP_SETS.get(name.strip().upper())
    if found is None:
        raise UnknownGwpError(f"unknown GWP set {name!r}; known sets: {', '.join(sorted(GWP_SETS))}")
    return found


# --------------------------------------------------------------------------------------------------
# Scope 1: stationary combustion [IPCC06; IPCC-GWP]
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FuelSpec:
    """Default properties of a fuel for stationary combustion [IPCC06].

    Attributes:
        name: Fuel key, for example ``"natural_gas"``.
        ncv_tj_per_gg: Net calorific value in TJ/Gg (numerically equal to GJ/t and MJ/kg).
        ef_co2_kg_per_tj: CO2 emission factor in kg/TJ.
        ef_ch4_kg_per_tj: CH4 emission factor in kg/TJ (manufacturing industries).
        ef_n2o_kg_per_tj: N2O emission factor in kg/TJ (manufacturing industries).
        source: The docs/references.md source key plus a short citation.
    """

    name: str
    ncv_tj_per_gg: float
    ef_co2_kg_per_tj: float
    ef_ch4_kg_per_tj: float
    ef_n2o_kg_per_tj: float
    source: str


_IPCC_SOURCE = "[IPCC06] Vol. 2 Tables 1.2, 1.4, 2.3 (defaults; VERIFY against the PDF)"

FUELS: dict[str, FuelSpec] = {
    "natural_gas": FuelSpec("natural_gas", 48.0, 56_100.0, 1.0, 0.1, _IPCC_SOURCE),
    "gas_diesel_oil": FuelSpec("gas_diesel_oil", 43.0, 74_100.0, 3.0, 0.6, _IPCC_SOURCE),
}
"""IPCC 2006 default fuels [IPCC06].

Natural gas: NCV 48.0 TJ/Gg, CO2 56 100, CH4 1, N2O 0.1 kg/TJ. Gas/diesel oil: NCV 43.0 TJ/Gg,
CO2 74 100, CH4 3, N2O 0.6 kg/TJ.
"""

MWH_TO_TJ = 0.0036
"""Energy conversion: 1 MWh = 3.6 GJ = 0.0036 TJ."""

FUEL_UNITS: tuple[str, ...] = ("kg", "t", "GJ", "TJ", "MWh", "Nm3")
"""Quantity units accepted by :func:`fuel_energy_tj` (case-sensitive).

Mass units (``kg``, ``t``) are converted with the fuel's NCV. Energy units (``GJ``, ``TJ``,
``MWh``) are taken as energy on a net calorific value basis. ``Nm3`` (normal cubic metres) needs
an NCV per Nm3 from the caller.
"""

# TJ per one unit of quantity, for units that do not depend on the fuel.
_ENERGY_UNIT_TJ: dict[str, float] = {"GJ": 1e-3, "TJ": 1.0, "MWh": MWH_TO_TJ}
# Gg per one unit of mass: the NCV in TJ/Gg then gives TJ.
_MASS_UNIT_GG: dict[str, float] = {"kg": 1e-6, "t": 1e-3}


def _require_finite_non_negative(name: str, value: float) -> None:
    """Raise ``ValueError`` unless ``value`` is a finite number >= 0."""
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")


def fuel_energy_tj(
    quantity: float,
    unit: str,
    fuel: FuelSpec,
    *,
    ncv_mj_per_nm3: float | None = None,
) -> float:
    """Energy content of a fuel quantity, ``AD = FQ x NCV``, in TJ [IPCC06; CBAM Annex II B].

    The NCV in TJ/Gg equals GJ/t and MJ/kg, so ``t x NCV / 1000`` and ``kg x NCV / 1e6`` give TJ.
    Energy units are passed through (``1 MWh = 0.0036 TJ``); they must already be on an NCV basis.
    For ``Nm3`` the caller supplies the NCV per normal cubic metre in MJ/Nm3.

    Args:
        quantity: Fuel quantity FQ (>= 0) in ``unit``.
        unit: One of :data:`FUEL_UNITS`.
        fuel: Fuel properties; its NCV is used for mass units.
        ncv_mj_per_nm3: NCV in MJ/Nm3; required for ``Nm3`` and rejected for any other unit.

    Returns:
        Activity data AD in TJ.

    Raises:
        ValueError: For an unknown unit, a negative or non-finite quantity, a missing or
            non-positive ``ncv_mj_per_nm3`` with ``Nm3``, or ``ncv_mj_per_nm3`` given with another unit.
    """
    if unit not in FUEL_UNITS:
        raise ValueError(f"unknown fuel quantity unit {unit!r}; supported units: {', '.join(FUEL_UNITS)}")
    _require_finite_non_negative("quantity", quantity)
    if unit == "Nm3":
        if ncv_mj_per_nm3 is None:
            raise ValueError(
                f"unit 'Nm3' needs ncv_mj_per_nm3 (net calorific value per normal cubic metre) "
                f"for fuel {fuel.name!r}"
            )
        if not (math.isfinite(ncv_mj_per_nm3) and ncv_mj_per_nm3 > 0):
            raise ValueError(f"ncv_mj_per_nm3 must be a finite number > 0, got {ncv_mj_per_nm3!r}")
        return quantity * ncv_mj_per_nm3 * 1e-6
    if ncv_mj_per_nm3 is not None:
        raise ValueError(f"ncv_mj_per_nm3 applies only to unit 'Nm3', not to {unit!r}")
    if unit in _MASS_UNIT_GG:
        return quantity * _MASS_UNIT_GG[unit] * fuel.ncv_tj_per_gg
    return quantity * _ENERGY_UNIT_TJ[unit]


@dataclass(frozen=True, slots=True)
class Scope1:
    """Scope 1 stationary-combustion emissions of one fuel quantity [IPCC06; IPCC-GWP].

    Attributes:
        co2_kg: CO2 mass in kg.
        ch4_kg: CH4 mass in kg (not CO2e).
        n2o_kg: N2O mass in kg (not CO2e).
        co2e_kg: ``CO2 + CH4 x GWP_CH4 + N2O x GWP_N2O`` in kg CO2e.
        gwp: Name of the GWP set used for ``co2e_kg``.
    """

    co2_kg: float
    ch4_kg: float
    n2o_kg: float
    co2e_kg: float
    gwp: str


def scope1_emissions(
    energy_tj: float,
    fuel: FuelSpec,
    gwp: Gwp,
    oxidation_factor: float = 1.0,
) -> Scope1:
    """Scope 1 emissions of burning ``energy_tj`` of ``fuel`` [IPCC06; IPCC-GWP].

    ``Em_CO2 = AD x EF_CO2 x OF`` with ``AD = FQ x NCV`` in TJ; the Tier 1 default is OF = 1
    [IPCC06], the same form as CBAM Annex II B ``Em = AD x EF x OF``. The oxidation factor applies
    to CO2 only; CH4 and N2O are ``AD x EF``. Then
    ``CO2e = Em_CO2 + Em_CH4 x GWP_CH4 + Em_N2O x GWP_N2O``.

    Args:
        energy_tj: Activity data AD in TJ (see :func:`fuel_energy_tj`), >= 0.
        fuel: Emission factors in kg/TJ.
        gwp: GWP set; its name is stored in the result.
        oxidation_factor: OF in [0, 1]; default 1 (Tier 1).

    Returns:
        The gas masses and CO2e, all in kg.

    Raises:
        ValueError: If ``energy_tj`` is negative or non-finite, or OF is outside [0, 1].
    """
    _require_finite_non_negative("energy_tj", energy_tj)
    if not 0.0 <= oxidation_factor <= 1.0:
        raise ValueError(f"oxidation_factor must be in [0, 1], got {oxidation_factor!r}")
    co2 = energy_tj * fuel.ef_co2_kg_per_tj * oxidation_factor
    ch4 = energy_tj * fuel.ef_ch4_kg_per_tj
    n2o = energy_tj * fuel.ef_n2o_kg_per_tj
    co2e = co2 + ch4 * gwp.ch4 + n2o * gwp.n2o
    return Scope1(co2_kg=co2, ch4_kg=ch4, n2o_kg=n2o, co2e_kg=co2e, gwp=gwp.name)


# --------------------------------------------------------------------------------------------------
# Scope 2: purchased electricity [GHGP-S2]
# --------------------------------------------------------------------------------------------------


def scope2_kg(kwh: float, t_per_mwh: float) -> float:
    """Scope 2 emissions of purchased electricity, ``Em = E_MWh x EF`` [GHGP-S2].

    Works for both GHG Protocol methods [GHGP-S2]: pass a grid-average factor (for example from
    :func:`grid_factor`) for the location-based method, or a market factor (for example
    :meth:`MarketInstruments.effective_t_per_mwh`) for the market-based method. Since
    ``1 kWh x 1 t/MWh = 1 kg``, the result is simply ``kwh x t_per_mwh`` in kg. This is not the
    CBAM indirect-emissions rule, which has its own factors [IR-2025-2621 Annex II; CBAM-NOTE].

    Args:
        kwh: Electricity consumed in kWh, >= 0.
        t_per_mwh: Emission factor in tCO2e/MWh, >= 0.

    Returns:
        Emissions in kg CO2e.

    Raises:
        ValueError: If either argument is negative or non-finite.
    """
    _require_finite_non_negative("kwh", kwh)
    _require_finite_non_negative("t_per_mwh", t_per_mwh)
    return kwh * t_per_mwh


@dataclass(frozen=True, slots=True)
class MarketInstruments:
    """Contractual instruments for the market-based Scope 2 method [GHGP-S2].

    The market-based method uses factors from contractual instruments (supplier-specific rates,
    PPAs, EACs/RECs) and falls back to the residual mix for the uncovered consumption
    [GHGP-S2]. Instrument quality criteria (tracking, no double counting, market boundary,
    vintage) are checked upstream, not here.

    Attributes:
        covered_share: Share of consumption covered by instruments, in [0, 1].
        covered_t_per_mwh: Emission factor of the instruments in tCO2e/MWh (0 for renewable EACs).
        residual_t_per_mwh: Residual-mix factor in tCO2e/MWh for the rest.

    Raises:
        ValueError: On construction, if the share is outside [0, 1] or a factor is negative or
            non-finite.
    """

    covered_share: float
    covered_t_per_mwh: float
    residual_t_per_mwh: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.covered_share) and 0.0 <= self.covered_share <= 1.0):
            raise ValueError(f"covered_share must be in [0, 1], got {self.covered_share!r}")
        _require_finite_non_negative("covered_t_per_mwh", self.covered_t_per_mwh)
        _require_finite_non_negative("residual_t_per_mwh", self.residual_t_per_mwh)

    def effective_t_per_mwh(self) -> float:
        """Consumption-weighted market-based factor [GHGP-S2].

        Returns:
            ``share x covered + (1 - share) x residual`` in tCO2e/MWh.
        """
        share = self.covered_share
        return share * self.covered_t_per_mwh + (1.0 - share) * self.residual_t_per_mwh
