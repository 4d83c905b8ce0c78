"""The sector-specific qualifying parameters a CBAM good's summary carries, per goods category.

The summary report gives, per good, the parameters of its sector that qualify its specific embedded
emissions: the reducing agent and alloy content of iron and steel, the scrap used, the clinker
ratio of cement, the nitrogen forms of fertilisers [IR-2025-2547 Annex IV section 2, which keeps
the list of IR-2023-1773 Annex IV section 2; CBAM-TPL sheet Summary_Products]. The names below
are this project's keys for them, with their units in the name; the plant file declares them per
good (``cbam.goods[].qualifying_parameters``) and a name that is not one of its category's is
refused, so a typo is not carried silently into a signed summary.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

__all__ = ["QUALIFYING_PARAMETERS", "Parameter", "check_parameter"]


@dataclass(frozen=True)
class Parameter:
    """One qualifying parameter: what it is, and the values it may take."""

    description: str
    kind: Literal["number", "text"] = "number"
    low: float = 0.0
    high: float | None = None
    """The largest value (inclusive), or ``None`` for no bound (a mass ratio)."""


_ALLOYS = {
    "manganese_pct": Parameter("mass % of manganese contained", high=100.0),
    "chromium_pct": Parameter("mass % of chromium contained", high=100.0),
    "nickel_pct": Parameter("mass % of nickel contained", high=100.0),
    "other_alloys_pct": Parameter("mass % of all other alloy elements contained", high=100.0),
}
_SCRAP = {
    "scrap_t_per_t": Parameter("tonnes of scrap used to produce one tonne of the good"),
    "pre_consumer_scrap_pct": Parameter("share of that scrap that is pre-consumer scrap, %", high=100.0),
}

QUALIFYING_PARAMETERS: dict[str, dict[str, Parameter]] = {
    "iron_steel": {
        "main_reducing_agent": Parameter(
            "the main reducing agent (of the good, or of its precursor if known): e.g. coke, natural "
            "gas, hydrogen, none (scrap in an electric arc furnace)",
            kind="text",
        ),
        **_ALLOYS,
        **_SCRAP,
        "alloy_element_pct": Parameter("ferro-alloys: mass % of the alloy element in the alloy", high=100.0),
        "carbon_pct": Parameter("ferro-alloys: mass % of carbon contained", high=100.0),
    },
    "aluminium": {
        **_SCRAP,
        "other_elements_pct": Parameter(
            "total mass % of elements other than aluminium, where it exceeds 1 %", high=100.0
        ),
    },
    "cement": {
        "clinker_ratio_pct": Parameter("cement: clinker consumed per tonne of cement, mass %", high=100.0),
        "calcined": Parameter("calcined clays: whether the clay is calcined (yes or no)", kind="text"),
    },
    "fertilisers": {
        "concentration_pct": Parameter("nitric acid, ammonia in solution: concentration, mass %", high=100.0),
        "urea_purity_pct": Parameter("urea: mass % of urea contained", high=100.0),
        "nitrogen_pct": Parameter("mass % of nitrogen contained", high=100.0),
        "nitrogen_ammonium_pct": Parameter("mixed fertilisers: mass % of N as ammonium (NH4+)", high=100.0),
        "nitrogen_nitrate_pct": Parameter("mixed fertilisers: mass % of N as nitrate (NO3-)", high=100.0),
        "nitrogen_urea_pct": Parameter("mixed fertilisers: mass % of N as urea", high=100.0),
        "nitrogen_other_pct": Parameter("mixed fertilisers: mass % of N in other forms", high=100.0),
    },
    "hydrogen": {
        "purity_pct": Parameter("hydrogen purity, volume %", high=100.0),
    },
    "electricity": {},
}


def check_parameter(category: str, name: str, value: object) -> str | None:
    """Why ``name: value`` is not a qualifying parameter of a good of ``category``; ``None`` if it is."""
    known = QUALIFYING_PARAMETERS.get(category, {})
    parameter = known.get(name)
    if parameter is None:
        names = ", ".join(sorted(known)) or "none"
        return f"{name!r} is not a qualifying parameter of {category or 'this'} goods (known: {names})"
    if parameter.kind == "text":
        if not isinstance(value, str) or not value.strip():
            return f"{name}: give a text ({parameter.description})"
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return f"{name}: give a finite number ({parameter.description})"
    if not parameter.low <= value or (parameter.high is not None and value > parameter.high):
        bound = (
            f"{parameter.low:g} to {parameter.high:g}"
            if parameter.high is not None
            else f">= {parameter.low:g}"
        )
        return f"{name}: {value:g} is outside {bound} ({parameter.description})"
    return None
