"""The production routes of the CBAM communication template's code list, per goods sector.

A process's ``route`` is one of these values, not free text, so an importer's tool can read it
[CBAM-TPL c_CodeLists; IR-2025-2547 Annex I points 3.13-3.17 and IR-2023-1773 Annex II section 3,
which name the routes per aggregated goods category]. The template offers "Other production
routes" and "Unknown production routes" beside the named ones. The list is the transitional-period
template's, read in public copies of its code list; **verify** it against the definitive-period
template before release.

The check is per sector (the CN code's Annex I category), not per aggregated goods category: a
crude-steel process may not name a cement route, but the loader does not tell crude steel from
pig iron.
"""

from __future__ import annotations

__all__ = ["ALL_ROUTES", "OTHER", "ROUTES", "UNKNOWN", "routes_of"]

ALL_ROUTES = "All production routes"
OTHER = "Other production routes"
UNKNOWN = "Unknown production routes"

ROUTES: dict[str, tuple[str, ...]] = {
    "cement": (ALL_ROUTES,),
    "iron_steel": (
        "Blast furnace route",
        "Smelting reduction",
        "Basic oxygen steelmaking",
        "Electric arc furnace",
        ALL_ROUTES,
        OTHER,
        UNKNOWN,
    ),
    "aluminium": (
        "Primary (electrolytic) smelting",
        "Secondary melting (recycling)",
        ALL_ROUTES,
        OTHER,
        UNKNOWN,
    ),
    "fertilisers": (
        "Haber-Bosch process with steam reforming of natural gas or biogas",
        "Haber-Bosch process with gasification of coal or other fuels",
        ALL_ROUTES,
        OTHER,
        UNKNOWN,
    ),
    "hydrogen": (
        "Steam reforming and partial oxidation",
        "Electrolysis of water",
        "Chlor-Alkali electrolysis and production of chlorates",
        OTHER,
        UNKNOWN,
    ),
    "electricity": (ALL_ROUTES,),
}
"""Sector (Annex I category) -> the routes its goods' processes may name."""


def routes_of(category: str) -> tuple[str, ...]:
    """The routes of a sector; every route of the code list for an unknown one."""
    if category in ROUTES:
        return ROUTES[category]
    return tuple(dict.fromkeys(route for routes in ROUTES.values() for route in routes))
