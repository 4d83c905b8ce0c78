"""CBAM source streams: emissions of fuels, process materials, mass balances, N2O and PFCs (pure).

The monitoring rules of IR 2025/2547 Annex II B, which keep the structure of IR 2023/1773 Annex III
and of the EU ETS monitoring regulation [IR-2025-2547; IR-2023-1773; MRR-2018-2066]:

- **standard method**, fuels: ``Em = AD x NCV x EF x OF`` (AD in t, NCV in TJ/t, EF in t CO2/TJ);
  process materials: ``Em = AD x EF x CF`` (EF in t CO2/t, CF the conversion factor). A process
  material's EF may come from its composition: ``EF = sum(w_k x EF_k)`` over its carbonates
  (method A, input method) or the oxides from carbonates in the product (method B, output method,
  clinker: CaO 0.785, MgO 1.092) [MRR-2018-2066 Annex VI; IPCC06-V3 Table 2.1];
- **mass balance**: ``Em = 44.01/12.011 x sum(AD_k x CC_k)``, outputs with a negative AD
  (an EAF: scrap, pig iron, electrodes and charge coal in; steel, slag and dust out);
- **N2O**, metered (a CEMS totaliser of N2O mass): ``CO2e = N2O x GWP_N2O`` (265);
- **PFCs of primary aluminium, slope method**: ``CF4 = SEF_CF4 x AEM x Pr_Al`` (kg, with Pr_Al in
  t), ``C2F6 = CF4 x F_C2F6``; ``CO2e = CF4 x 6630 + C2F6 x 11100`` [IR-2025-2547 Annex II B.7.1
  Eq. 21-22 and B.7.3 Eq. 26; IPCC06-V3 section 4.4.2].

Emissions are in t of each gas; :attr:`StreamEmissions.co2e_t` adds them with the GWPs CBAM names.
Factors are valid from a date on (a laboratory analysis per period): :func:`factor_on` picks the
one of a day. No I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from plantstream.plant.cbam_factors import CO2_PER_C, GWP_CBAM, STOICHIOMETRIC

__all__ = [
    "METHODS",
    "StreamEmissions",
    "StreamFactor",
    "composition_factor",
    "factor_on",
    "mass_balance_co2",
    "pfc_slope",
    "standard_co2",
    "stream_emissions",
]

METHODS = ("standard", "mass_balance", "n2o_measured", "pfc_slope")
"""The monitoring methods a source stream may use."""


@dataclass(frozen=True)
class StreamFactor:
    """The calculation factors of a source stream from ``valid_from`` on (``None``: from the start).

    Only those of the stream's method are set: ``emission_factor`` (t CO2/t of a process material,
    t CO2/TJ of a fuel) with ``ncv_tj_per_t``, ``oxidation_factor`` and ``conversion_factor`` for
    the standard method; ``carbon_content`` (t C/t) for a mass balance; ``slope_cf4``,
    ``c2f6_per_cf4`` and ``anode_effect_minutes`` (AE-min per cell-day) for PFCs.
    """

    valid_from: date | None
    basis: str
    emission_factor: float | None = None
    ncv_tj_per_t: float | None = None
    oxidation_factor: float = 1.0
    conversion_factor: float = 1.0
    carbon_content: float | None = None
    slope_cf4: float | None = None
    c2f6_per_cf4: float | None = None
    anode_effect_minutes: float | None = None


@dataclass(frozen=True)
class StreamEmissions:
    """Emissions of a source stream, in t of each gas (negative for a mass balance's outputs)."""

    co2_t: float = 0.0
    n2o_t: float = 0.0
    cf4_t: float = 0.0
    c2f6_t: float = 0.0

    @property
    def co2e_t(self) -> float:
        """CO2 plus the other gases by the GWPs CBAM names (AR5) [IPCC-GWP; MRR-2018-2066]."""
        return (
            self.co2_t
            + self.n2o_t * GWP_CBAM["N2O"]
            + self.cf4_t * GWP_CBAM["CF4"]
            + self.c2f6_t * GWP_CBAM["C2F6"]
        )

    def __add__(self, other: StreamEmissions) -> StreamEmissions:
        return StreamEmissions(
            self.co2_t + other.co2_t,
            self.n2o_t + other.n2o_t,
            self.cf4_t + other.cf4_t,
            self.c2f6_t + other.c2f6_t,
        )


def composition_factor(composition: dict[str, float]) -> float:
    """EF (t CO2/t) of a material from its carbonate or oxide mass fractions: ``sum(w_k x EF_k)``.

    Method A (carbonates in the input) or B (oxides from carbonates in the output) of
    [MRR-2018-2066 Annex VI]; the stoichiometric factors are in :data:`STOICHIOMETRIC`.
    """
    return sum(fraction * STOICHIOMETRIC[name] for name, fraction in composition.items())


def standard_co2(activity_t: float, factor: StreamFactor, *, fuel: bool) -> float:
    """CO2 (t) by the standard method [IR-2025-2547 Annex II B; MRR-2018-2066 Art. 24].

    Fuel: ``AD x NCV x EF x OF``; process material: ``AD x EF x CF``.
    """
    assert factor.emission_factor is not None  # the loader requires it
    if fuel:
        assert factor.ncv_tj_per_t is not None
        return activity_t * factor.ncv_tj_per_t * factor.emission_factor * factor.oxidation_factor
    return activity_t * factor.emission_factor * factor.conversion_factor


def mass_balance_co2(activity_t: float, carbon_content: float, *, output: bool) -> float:
    """One mass-balance term, t CO2: ``44.01/12.011 x AD x CC``, negative for an output [IR-2025-2547]."""
    sign = -1.0 if output else 1.0
    return sign * CO2_PER_C * activity_t * carbon_content


def pfc_slope(
    aluminium_t: float, slope_cf4: float, minutes: float, c2f6_per_cf4: float
) -> tuple[float, float]:
    """(CF4, C2F6) in t by the slope method [IR-2025-2547 Annex II B.7.1 Eq. 21-22].

    ``CF4 [t] = AEM x (SEF_CF4 / 1000) x Pr_Al``; ``C2F6 = CF4 x F_C2F6``.
    """
    cf4 = slope_cf4 * minutes * aluminium_t / 1000
    return cf4, cf4 * c2f6_per_cf4


def stream_emissions(
    method: str, activity_t: float, factor: StreamFactor | None, *, fuel: bool = False, output: bool = False
) -> StreamEmissions:
    """The emissions of ``activity_t`` of a source stream under ``factor``.

    Args:
        method: one of :data:`METHODS`.
        activity_t: the activity data AD in t (aluminium produced for ``pfc_slope``, N2O mass for
            ``n2o_measured``).
        factor: the factors valid for the activity (``None`` for ``n2o_measured``).
        fuel: a fuel (standard method): NCV and OF apply.
        output: a mass-balance output (its carbon leaves the installation).
    """
    if method == "n2o_measured":
        return StreamEmissions(n2o_t=activity_t)
    assert factor is not None  # the loader requires factors for the other methods
    if method == "standard":
        return StreamEmissions(co2_t=standard_co2(activity_t, factor, fuel=fuel))
    if method == "mass_balance":
        assert factor.carbon_content is not None
        return StreamEmissions(co2_t=mass_balance_co2(activity_t, factor.carbon_content, output=output))
    if method == "pfc_slope":
        assert None not in (factor.slope_cf4, factor.anode_effect_minutes, factor.c2f6_per_cf4)
        cf4, c2f6 = pfc_slope(
            activity_t,
            factor.slope_cf4 or 0.0,
            factor.anode_effect_minutes or 0.0,
            factor.c2f6_per_cf4 or 0.0,
        )
        return StreamEmissions(cf4_t=cf4, c2f6_t=c2f6)
    raise ValueError(f"unknown monitoring method {method!r} (known: {', '.join(METHODS)})")


def factor_on(factors: Sequence[StreamFactor], day: date) -> StreamFactor | None:
    """The factors valid on ``day``: the last whose ``valid_from`` is not after it.

    The first entry (``valid_from`` ``None``) applies from the start; ``None`` when there are no
    factors (a metered N2O stream needs none).
    """
    found = None
    for factor in factors:
        if factor.valid_from is None or factor.valid_from <= day:
            found = factor
    return found
