"""EU CBAM (definitive period, from 2026) embedded-emissions arithmetic (pure, standard library only).

Implements the CBAM acts of docs/references.md as quoted in [CBAM-NOTE] (a legal research note quoting
the Official Journal texts; every item is to be verified against EUR-Lex):

- goods categories and the Annex II "direct emissions only" rule (Reg. (EU) 2023/956 Annex I/II as
  amended by Reg. (EU) 2025/2083 [CBAM-REG; CBAM-OMNIBUS]);
- specific embedded emissions (SEE) of simple and complex goods, general and specific form, and
  the cross-channel rule for precursors (IR (EU) 2025/2547 Annex III B Eq. 59-62 and Annex I
  pt 3.1 [IR-2025-2547]);
- the default-value mark-up (IR (EU) 2025/2621 as corrected by IR (EU) 2026/1740 [IR-2025-2621; IR-2026-1740])
  and the 3-decimal rounding of the published tables [CBAM-NOTE];
- the CBAM factor phase-in and the certificates due per tonne (IR (EU) 2025/2620; Directive
  2003/87/EC Art. 10a(1a) [IR-2025-2620]).

Units: emissions in t CO2e, masses and activity levels in t, SEE in t CO2e per t of good.
The module does no I/O, reads no clock and logs nothing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum

__all__ = [
    "DEFINITIVE_PERIOD_START_YEAR",
    "ELECTRICITY_DEFAULTS",
    "CbamCategory",
    "ElectricityDefault",
    "PrecursorInput",
    "SeeResult",
    "carries_indirect",
    "cbam_factor",
    "certificates_due_per_t",
    "default_markup",
    "default_with_markup",
    "electricity_default",
    "embedded_emissions",
    "require_definitive_year",
    "round_template",
    "specific_embedded_emissions",
    "specific_embedded_emissions_specific_form",
]

DEFINITIVE_PERIOD_START_YEAR = 2026
"""First year of the CBAM definitive period (from 2026-01-01) [CBAM-NOTE; CBAM-OMNIBUS]."""


class CbamCategory(StrEnum):
    """CBAM goods categories of Annex I of Reg. (EU) 2023/956 [CBAM-NOTE section 1.2-1.6]."""

    CEMENT = "cement"
    IRON_STEEL = "iron_steel"
    ALUMINIUM = "aluminium"
    FERTILISERS = "fertilisers"
    HYDROGEN = "hydrogen"
    ELECTRICITY = "electricity"


# CN 2601 12 00: agglomerated iron ore, the iron-and-steel good outside Annex II [CBAM-NOTE section 1.4].
_AGGLOMERATED_ORE_CN = "26011200"
_DIRECT_AND_INDIRECT = frozenset({CbamCategory.CEMENT, CbamCategory.FERTILISERS})


def _normalise_cn(cn_code: str) -> str:
    """Return the CN code with spaces removed; raise ``ValueError`` unless it is 2-10 digits."""
    digits = "".join(cn_code.split())
    if not (digits.isascii() and digits.isdigit() and 2 <= len(digits) <= 10):
        raise ValueError(f"CN code must be 2 to 10 digits (spaces allowed), got {cn_code!r}")
    return digits


def carries_indirect(category: CbamCategory, cn_code: str) -> bool:
    """Whether a good's embedded emissions include indirect emissions [CBAM-REG Annex II].

    Annex II goods carry direct emissions only: iron and steel except CN 2601 12 00 (agglomerated
    ore), aluminium, hydrogen and electricity (electricity added by Reg. 2025/2083). Cement,
    fertilisers and CN 2601 12 00 carry direct + indirect [CBAM-NOTE section 1.4; Art. 7(1)].

    Args:
        category: The goods category (a plain string value such as ``"cement"`` is accepted).
        cn_code: CN code with or without spaces, e.g. ``"2601 12 00"`` or ``"26011200"``; a longer
            TARIC code is matched on its first 8 digits.

    Returns:
        ``True`` if the good carries indirect emissions (non-Annex II), ``False`` otherwise.

    Raises:
        ValueError: If the category is unknown or the CN code is not 2-10 digits.
    """
    cat = CbamCategory(category)
    cn = _normalise_cn(cn_code)
    if cat in _DIRECT_AND_INDIRECT:
        return True
    if cat is CbamCategory.IRON_STEEL:
        return cn[:8] == _AGGLOMERATED_ORE_CN
    return False


# --------------------------------------------------------------------------------------------------
# Default values [IR-2025-2621; IR-2026-1740] and template rounding
# --------------------------------------------------------------------------------------------------

# Mark-up in percent per category: (2026, 2027, 2028 onwards) [2026/1740 Annex I intro; CBAM-NOTE].
_MARKUP_PCT: dict[CbamCategory, tuple[int, int, int]] = {
    CbamCategory.CEMENT: (10, 20, 30),
    CbamCategory.IRON_STEEL: (10, 20, 30),
    CbamCategory.ALUMINIUM: (10, 20, 30),
    CbamCategory.HYDROGEN: (10, 20, 30),
    CbamCategory.FERTILISERS: (1, 1, 1),
    CbamCategory.ELECTRICITY: (0, 0, 0),
}


def require_definitive_year(year: int) -> None:
    """Refuse a year before the definitive period, naming it and why.

    The methodology implemented here (IR 2025/2547, default values of IR 2025/2621, CBAM factor of
    IR 2025/2620) applies from 2026-01-01; the transitional period (2023-10-01 to 2025-12-31)
    had quarterly reports under IR 2023/1773, with other rules on default values and no
    certificates, which this module does not implement [IR-2023-1773; IR-2025-2547; CBAM-NOTE section 0].

    Args:
        year: The reporting or import year.

    Raises:
        ValueError: If ``year`` is before 2026; the message names the year and the act that
            governed it.
    """
    if year < DEFINITIVE_PERIOD_START_YEAR:
        raise ValueError(
            f"year {year} is before the CBAM definitive period, which starts in "
            f"{DEFINITIVE_PERIOD_START_YEAR}: the methodology of IR (EU) 2025/2547 applies from "
            f"{DEFINITIVE_PERIOD_START_YEAR}-01-01, and the transitional period's quarterly reports "
            "(IR (EU) 2023/1773, up to 2025-12-31) are not supported"
        )


def _markup_decimal(category: CbamCategory, year: int) -> Decimal:
    """Mark-up as an exact decimal fraction (see :func:`default_markup`)."""
    require_definitive_year(year)
    pct_2026, pct_2027, pct_2028_on = _MARKUP_PCT[CbamCategory(category)]
    pct = pct_2026 if year == 2026 else pct_2027 if year == 2027 else pct_2028_on
    return Decimal(pct) / 100


def default_markup(category: CbamCategory, year: int) -> float:
    """Mark-up on the "total emissions" default value, as a fraction [IR-2026-1740].

    Cement, iron and steel, aluminium, hydrogen: +10 % (2026), +20 % (2027), +30 % (2028
    onwards); fertilisers: +1 % [IR 2026/1740 Annex I intro; CBAM-NOTE section 4.4-4.5]. The
    Commission's Registry applies it. Electricity returns 0: no mark-up for electricity is given
    in our source, so VERIFY before relying on it.

    Args:
        category: The goods category.
        year: Year of import, 2026 or later.

    Returns:
        The mark-up fraction, e.g. ``0.1`` for +10 %.

    Raises:
        ValueError: If ``year`` is before 2026 (the definitive period starts in 2026) or the
            category is unknown.
    """
    return float(_markup_decimal(category, year))


def default_with_markup(default_value: float, category: CbamCategory, year: int) -> float:
    """Default value including the mark-up, unrounded [IR-2026-1740; CBAM-NOTE].

    Computes ``default x (1 + markup)`` in decimal arithmetic on the shortest decimal form of
    ``default_value`` (its ``repr``), so that e.g. ``1.325 x 1.3`` gives exactly ``1.7225`` and
    not ``1.7224999...``; pass the result to :func:`round_template` for the 3-decimal table value.

    Args:
        default_value: The published "total emissions" default in t CO2e/t, >= 0.
        category: The goods category.
        year: Year of import, 2026 or later.

    Returns:
        The marked-up default value in t CO2e/t (exact, not rounded).

    Raises:
        ValueError: If ``default_value`` is negative or non-finite, or ``year`` is before 2026.
    """
    if not (math.isfinite(default_value) and default_value >= 0):
        raise ValueError(f"default_value must be a finite number >= 0, got {default_value!r}")
    markup = _markup_decimal(category, year)
    return float(Decimal(repr(default_value)) * (1 + markup))


_TEMPLATE_QUANTUM = Decimal("0.001")


def round_template(value: float) -> float:
    """Round to 3 decimals, half-up, as the default-value tables print them [CBAM-NOTE].

    The 2025/2621 tables print 3 decimals [CBAM-NOTE]. Rounding is done in ``decimal`` on the
    shortest decimal form of ``value`` with ``ROUND_HALF_UP`` (halves away from zero), not with
    Python's ``round()``, which rounds half to even and works on the binary value.

    Args:
        value: The value to round (finite).

    Returns:
        The value rounded to 3 decimals.

    Raises:
        ValueError: If ``value`` is not finite.
    """
    if not math.isfinite(value):
        raise ValueError(f"value must be finite, got {value!r}")
    return float(Decimal(repr(value)).quantize(_TEMPLATE_QUANTUM, rounding=ROUND_HALF_UP))


# --------------------------------------------------------------------------------------------------
# CBAM factor and certificates due [IR-2025-2620]
# --------------------------------------------------------------------------------------------------

_CBAM_FACTOR: dict[int, float] = {
    2026: 0.975,
    2027: 0.95,
    2028: 0.90,
    2029: 0.775,
    2030: 0.515,
    2031: 0.39,
    2032: 0.265,
    2033: 0.14,
}
_CBAM_FACTOR_LAST_YEAR = 2033


def cbam_factor(year: int) -> float:
    """CBAM factor for a year, as a fraction [IR-2025-2620].

    97.5 % (2026), 95 % (2027), 90 % (2028), 77.5 % (2029), 51.5 % (2030), 39 % (2031),
    26.5 % (2032), 14 % (2033), 0 from 2034 [IR 2025/2620 Annex pts 2-4; Dir. 2003/87 Art. 10a(1a);
    CBAM-NOTE section 4.8, 7].

    Args:
        year: Year of import, 2026 or later.

    Returns:
        The factor in [0, 1].

    Raises:
        ValueError: If ``year`` is before 2026.
    """
    require_definitive_year(year)
    if year > _CBAM_FACTOR_LAST_YEAR:
        return 0.0
    return _CBAM_FACTOR[year]


def certificates_due_per_t(see_declared: float, year: int, benchmark: float, cscf: float = 1.0) -> float:
    """Certificates due per tonne of good, before any Art. 9 carbon-price deduction.

    ``max(0, SEE_declared - CBAM_factor(y) x CSCF(y) x BM_g)`` [IR 2025/2620 Annex pts 2-4;
    Dir. 2003/87 Art. 10a(1a); CBAM-NOTE section 4.8, 7]. Use the Column A benchmark ``BM_g*`` with
    actual values and the Column B benchmark ``BM_g`` with default values [IR-2025-2620].
    The floor at 0 is an inference: the text does not state it.

    Args:
        see_declared: Declared specific embedded emissions in t CO2e/t.
        year: Year of import, 2026 or later.
        benchmark: The CBAM benchmark in t CO2e/t, >= 0.
        cscf: Cross-sectoral correction factor for the year, >= 0; default 1.

    Returns:
        Certificates (t CO2e) due per tonne of good, never negative.

    Raises:
        ValueError: If ``year`` is before 2026, or ``benchmark`` or ``cscf`` is negative or
            non-finite.
    """
    if not (math.isfinite(benchmark) and benchmark >= 0):
        raise ValueError(f"benchmark must be a finite number >= 0, got {benchmark!r}")
    if not (math.isfinite(cscf) and cscf >= 0):
        raise ValueError(f"cscf must be a finite number >= 0, got {cscf!r}")
    return max(0.0, see_declared - cbam_factor(year) * cscf * benchmark)


# --------------------------------------------------------------------------------------------------
# Specific embedded emissions [IR-2025-2547 Annex III B]
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PrecursorInput:
    """A relevant precursor consumed by a production process [IR-2025-2547 Annex III B].

    Attributes:
        mass_t: ``M_i``, the *total* mass consumed to produce the activity level, including
            spill, cut-offs and scrap [2025/2547 Annex III B; CBAM-NOTE section 3.1], >= 0.
        see_direct: Direct SEE of the precursor in t CO2e/t (0 for EU or Annex III-exempt origin).
        see_indirect: Indirect SEE of the precursor in t CO2e/t, or ``None`` when it is not known
            (a default value given without its indirect part).
        see_indirect_counted: For a precursor made in the installation, the part of its indirect
            SEE its own embedded emissions count (:attr:`SeeResult.indirect_counted`); ``None``:
            the same as ``see_indirect`` (a purchased precursor's declared indirect SEE).

    Raises:
        ValueError: On construction, if ``mass_t`` is negative or non-finite.
    """

    mass_t: float
    see_direct: float
    see_indirect: float | None
    see_indirect_counted: float | None = None

    @property
    def counted_indirect(self) -> float | None:
        """The indirect SEE that enters a good's counted figure when this precursor's is included."""
        return self.see_indirect if self.see_indirect_counted is None else self.see_indirect_counted

    def __post_init__(self) -> None:
        if not (math.isfinite(self.mass_t) and self.mass_t >= 0):
            raise ValueError(f"precursor mass_t must be a finite number >= 0, got {self.mass_t!r}")


@dataclass(frozen=True, slots=True)
class SeeResult:
    """Specific embedded emissions of a good in t CO2e/t [IR-2025-2547 Annex III B; CBAM-REG Art. 7(1)].

    Attributes:
        direct: Direct SEE (the good's attributed direct emissions and its precursors' direct SEE).
        indirect: The whole indirect SEE: the good's own electricity and the indirect SEE of every
            precursor, whatever its category; ``None`` when a part of it is not known.
        indirect_counted: The part of the indirect SEE that counts in the embedded emissions
            under Art. 7(1) with the cross-channel rule (see :func:`embedded_emissions`);
            ``None`` when a counted part is not known.
    """

    direct: float
    indirect: float | None
    indirect_counted: float | None

    @property
    def total(self) -> float | None:
        """Direct plus the whole indirect SEE."""
        return None if self.indirect is None else self.direct + self.indirect

    @property
    def counted(self) -> float | None:
        """The SEE counted under Art. 7(1): direct plus the counted indirect part."""
        return None if self.indirect_counted is None else self.direct + self.indirect_counted


def specific_embedded_emissions(
    attributed_t: float,
    activity_t: float,
    precursors: Sequence[tuple[float, float]] = (),
) -> float:
    """SEE of a good for one channel, general form [IR-2025-2547 Annex III B].

    ``SEE_g = (AttrEm_g + EE_InpMat) / AL_g`` with ``EE_InpMat = sum_i M_i x SEE_i``
    [2025/2547 Annex III B Eq. 59-60; CBAM-NOTE section 3.1]. With no precursors this is the
    simple-good form ``SEE_g = AttrEm_g / AL_g`` [CBAM-NOTE; Annex IV pt 2 of 2023/956]. Evaluate
    the direct and the indirect channel separately, with the precursors' SEE of that channel.

    Args:
        attributed_t: ``AttrEm_g``, attributed emissions of the production process in t CO2e.
        activity_t: ``AL_g``, tonnes of good produced in the reporting period (MWh for
            electricity), > 0.
        precursors: ``(M_i, SEE_i)`` pairs: total mass consumed in t (incl. spill, cut-offs and
            scrap), and the precursor's SEE for this channel in t CO2e/t.

    Returns:
        SEE of the good for the channel in t CO2e/t.

    Raises:
        ValueError: If ``activity_t`` <= 0 or not finite, or a precursor mass is negative.
    """
    if not (math.isfinite(activity_t) and activity_t > 0):
        raise ValueError(f"activity_t (activity level AL_g) must be a finite number > 0, got {activity_t!r}")
    embedded_inputs = 0.0
    for mass_t, see in precursors:
        if not (math.isfinite(mass_t) and mass_t >= 0):
            raise ValueError(f"precursor mass M_i must be a finite number >= 0, got {mass_t!r}")
        embedded_inputs += mass_t * see
    return (attributed_t + embedded_inputs) / activity_t


def specific_embedded_emissions_specific_form(
    ae: float,
    precursor_ratios: Sequence[tuple[float, float]],
) -> float:
    """SEE of a good for one channel, specific form [IR-2025-2547 Annex III B].

    ``SEE_g = ae_g + sum_i m_i x SEE_i`` with ``ae_g = AttrEm_g / AL_g`` and ``m_i = M_i / AL_g``
    [2025/2547 Annex III B Eq. 61-62; CBAM-NOTE section 3.1]. Equal to
    :func:`specific_embedded_emissions` for the same inputs. ``ae_g`` is a parameter so that a
    boundary change (2025/2083 recital 16) can be applied by the caller.

    Args:
        ae: ``ae_g``, specific attributed emissions of the process in t CO2e/t.
        precursor_ratios: ``(m_i, SEE_i)`` pairs: mass of precursor per tonne of good (t/t),
            and the precursor's SEE for this channel in t CO2e/t.

    Returns:
        SEE of the good for the channel in t CO2e/t.

    Raises:
        ValueError: If a ratio ``m_i`` is negative or not finite.
    """
    total = ae
    for ratio, see in precursor_ratios:
        if not (math.isfinite(ratio) and ratio >= 0):
            raise ValueError(f"precursor ratio m_i must be a finite number >= 0, got {ratio!r}")
        total += ratio * see
    return total


def _channel(
    attributed_t: float | None, activity_t: float, precursors: Sequence[tuple[float, float | None]]
) -> float | None:
    """One channel's SEE, or ``None`` when an input is not known."""
    if attributed_t is None or any(see is None for _, see in precursors):
        return None
    return specific_embedded_emissions(
        attributed_t, activity_t, [(m, s) for m, s in precursors if s is not None]
    )


def embedded_emissions(
    category: CbamCategory,
    cn_code: str,
    *,
    attributed_direct_t: float,
    attributed_indirect_t: float | None,
    activity_t: float,
    precursors: Sequence[tuple[PrecursorInput, bool]] = (),
) -> SeeResult:
    """Direct and indirect SEE of a good, whole and as counted [IR-2025-2547 Annex III B, Annex I pt 3.1].

    Each channel uses :func:`specific_embedded_emissions` [2025/2547 Annex III B Eq. 59-60]:

    - ``direct``: ``AttrEm_dir`` plus ``M_i x SEE_dir,i`` of every precursor.
    - ``indirect``, the whole figure, for every good: the good's own ``AttrEm_indir = E_el x EF_el``
      plus ``M_i x SEE_indir,i`` of every precursor, whatever its category. It is what the good's
      electricity (and its precursors') emitted, and is reported even where it does not count.
    - ``indirect_counted``, what counts under Art. 7(1) of Reg. 2023/956 [CBAM-REG]: Annex II
      goods count direct emissions only, so their own ``AttrEm_indir`` is left out; and by the
      cross-channel rule [2025/2547 Annex I pt 3.1; CBAM-NOTE] an Annex II complex good includes
      the indirect emissions of its *non*-Annex II precursors (e.g. pellets in DRI), while a
      non-Annex II good excludes those of its Annex II precursors. So the counted part is the own
      ``AttrEm_indir`` if the good carries indirect emissions (:func:`carries_indirect`), plus
      ``M_i x SEE_indir,i`` of exactly the precursors that carry them (flag ``True``).
      Our sources do not name the channel the included precursor emissions go to; they are kept
      in the indirect channel here, not merged into ``direct`` (VERIFY against the OJ).

    The SEE counted under Art. 7(1) is then ``direct + indirect_counted`` (:attr:`SeeResult.counted`).
    A figure is ``None`` when an input it needs is ``None`` (own electricity not metered, a
    precursor's indirect SEE not known); the other figures are still computed.

    The emission and activity arguments are keyword-only, so the two channels cannot be swapped
    by position. Precursors produced inside the same production process must not be listed, and
    precursors of EU or Annex III-exempt origin carry SEE = 0; both are the caller's job.

    Args:
        category: Category of the good.
        cn_code: CN code of the good, with or without spaces.
        attributed_direct_t: ``AttrEm_dir`` of the production process in t CO2e.
        attributed_indirect_t: ``AttrEm_indir = E_el,cons x EF_el`` in t CO2e, or ``None`` when the
            electricity consumed is not known.
        activity_t: ``AL_g`` in t (MWh for electricity), > 0.
        precursors: ``(precursor, counts)`` pairs; the flag says whether the precursor's
            (counted) indirect SEE counts in this good's: ``True`` for a non-Annex II precursor
            (see :func:`carries_indirect`), and for a precursor made here that is an Annex II
            good when this good is one too (its counted indirect part is then only that of its
            own non-Annex II precursors, which the rule includes).

    Returns:
        The direct SEE, the whole indirect SEE and its counted part, in t CO2e/t.

    Raises:
        ValueError: If ``activity_t`` <= 0, or the category or CN code is invalid.
    """
    own_counted = attributed_indirect_t if carries_indirect(category, cn_code) else 0.0
    direct = specific_embedded_emissions(
        attributed_direct_t,
        activity_t,
        [(p.mass_t, p.see_direct) for p, _ in precursors],
    )
    whole = _channel(attributed_indirect_t, activity_t, [(p.mass_t, p.see_indirect) for p, _ in precursors])
    counted = _channel(
        own_counted, activity_t, [(p.mass_t, p.counted_indirect) for p, p_counts in precursors if p_counts]
    )
    return SeeResult(direct=direct, indirect=whole, indirect_counted=counted)


# --------------------------------------------------------------------------------------------------
# Commission default electricity factors [IR-2025-2621 Annex II]
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ElectricityDefault:
    """A Commission default emission factor for electricity consumed [IR-2025-2621 Annex II].

    Attributes:
        country: ISO 3166-1 alpha-2 code, or ``OTHER`` for "other countries and territories".
        t_per_mwh: The factor in t CO2/MWh.
        source: Where the number comes from.
    """

    country: str
    t_per_mwh: float
    source: str


_EL_SOURCE = "IR (EU) 2025/2621 Annex II, as quoted in [CBAM-NOTE] section 4.6 (VERIFY against EUR-Lex)"

ELECTRICITY_DEFAULTS: dict[str, ElectricityDefault] = {
    "AU": ElectricityDefault("AU", 0.645, _EL_SOURCE),
    "BR": ElectricityDefault("BR", 0.096, _EL_SOURCE),
    "OTHER": ElectricityDefault("OTHER", 0.465, _EL_SOURCE),
}
"""The Commission's default electricity factors our sources show [IR-2025-2621 Annex II].

Only Australia, Brazil and "other countries" were visible; the Viet Nam and Korea rows of
2025/2621 Annex II were not, and a national grid factor (streams.carbon) is not automatically the
CBAM factor. Other countries must be given with their value and source in the plant file.
"""


def electricity_default(country: str) -> ElectricityDefault:
    """The Commission default electricity factor of ``country`` from :data:`ELECTRICITY_DEFAULTS`.

    Args:
        country: ISO 3166-1 alpha-2 code (case-insensitive), or ``OTHER``.

    Returns:
        The factor with its source.

    Raises:
        ValueError: The country is not in the table; the message says what to do instead. The
            "other countries" row is never used silently for a country that may have its own row.
    """
    code = country.strip().upper()
    found = ELECTRICITY_DEFAULTS.get(code)
    if found is None:
        known = ", ".join(sorted(ELECTRICITY_DEFAULTS))
        raise ValueError(
            f"no Commission default electricity factor for {code} in the shipped table (it has {known}); "
            "give factor_t_per_mwh with its source (IR 2025/2621 Annex II row), or country: OTHER"
        )
    return found
