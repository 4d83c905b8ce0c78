"""CBAM: the installation, its electricity, source streams and production processes.

See docs/cbam.md; the sources are in docs/references.md.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from plantstream.plant.base import Identifier, _Strict
from plantstream.plant.cbam_factors import PFC_SLOPE_DEFAULTS, STOICHIOMETRIC
from plantstream.plant.cbam_routes import routes_of
from plantstream.plant.numbers import Integer, Number

__all__ = [
    "CbamElectricity",
    "CbamInstallation",
    "CbamOperator",
    "CbamProcess",
    "Coordinates",
    "SharedMachine",
    "SourceStream",
    "StreamActivity",
    "StreamFactors",
]

_COUNTRY = r"^[A-Z]{2}$"


class CbamOperator(_Strict):
    """The operator of the installation (summary report item 1)."""

    name: str = Field(min_length=1)
    address: str | None = None
    contact: str | None = Field(default=None, description="e-mail or telephone for importers")


class Coordinates(_Strict):
    """Coordinates of the installation's main emission source (summary item 2)."""

    latitude: Number = Field(ge=-90, le=90)
    longitude: Number = Field(ge=-180, le=180)


class CbamInstallation(_Strict):
    """Identity of the installation (summary report item 2)."""

    id: Identifier = Field(description="the ledger's key and the tag of `cbam` points")
    name: str = Field(min_length=1)
    registry_id: str | None = Field(
        default=None, description="CBAM Registry installation id, once registered"
    )
    country: str = Field(pattern=_COUNTRY, description="ISO 3166-1 alpha-2")
    city: str | None = None
    address: str | None = None
    unlocode: str | None = Field(default=None, pattern=r"^[A-Z]{2} ?[A-Z2-9]{3}$", description="e.g. VNSGN")
    coordinates: Coordinates | None = None
    economic_activity: str | None = Field(default=None, description="e.g. NACE 24.10")
    site: Identifier | None = Field(default=None, description="the plant file's site; default: the only one")

    @model_validator(mode="after")
    def _locatable(self) -> CbamInstallation:
        if not self.address and not self.unlocode:
            raise ValueError("give the installation's address or its UN/LOCODE (summary report item 2)")
        return self


class CbamElectricity(_Strict):
    """The CBAM electricity emission factor for indirect emissions [IR-2025-2621; CBAM-REG].

    ``commission_default``: the Commission's default for the country (IR 2025/2621 Annex II);
    the shipped table has few countries, so others give ``factor_t_per_mwh`` with its ``source``.
    ``actual``: only with a direct technical link or a PPA meeting Annex IV point 6 of 2023/956.
    """

    basis: Literal["commission_default", "actual"] = "commission_default"
    country: str | None = Field(
        default=None, pattern=r"^([A-Z]{2}|OTHER)$", description="default: the installation's; OTHER"
    )
    factor_t_per_mwh: Number | None = Field(default=None, ge=0)
    source: str | None = None
    link: Literal["direct_link", "ppa"] | None = Field(
        default=None, description="actual factors: how the electricity reaches the installation"
    )
    year: Integer | None = Field(
        default=None, ge=2000, le=2100, description="the factor's year, if it has one"
    )

    @model_validator(mode="after")
    def _documented(self) -> CbamElectricity:
        if self.basis == "actual":
            if self.factor_t_per_mwh is None or self.link is None or not self.source:
                raise ValueError(
                    "an actual electricity factor needs factor_t_per_mwh, link (direct_link or ppa) "
                    "and source (Annex IV point 6 of Reg. 2023/956)"
                )
        elif self.link is not None:
            raise ValueError("link applies to an actual factor (basis: actual) only")
        if self.factor_t_per_mwh is not None and not self.source:
            raise ValueError("a factor_t_per_mwh needs its source, so the number can be audited")
        return self


class SharedMachine(_Strict):
    """A machine serving several processes (a boiler, a compressor): this process's share of it."""

    machine: Identifier
    share: Number = Field(gt=0, le=1, description="fraction of its Scope 1 and electricity attributed here")
    basis: str = Field(min_length=1, description="how the share was determined (metered heat, hours, ...)")


class StreamActivity(_Strict):
    """Where a source stream's activity data (t) comes from: a machine's pieces, or a scale total."""

    machine: Identifier
    mass_kg_per_piece: Number | None = Field(default=None, gt=0)
    weighed: bool = Field(default=False, description="the machine's good_count is a weigh-scale total in kg")

    @model_validator(mode="after")
    def _one_way(self) -> StreamActivity:
        if (self.mass_kg_per_piece is None) == (not self.weighed):
            raise ValueError("give mass_kg_per_piece, or weighed: true for a weigh-scale total in kg")
        return self


_Fraction = Annotated[Number, Field(ge=0, le=1)]


class StreamFactors(_Strict):
    """A source stream's calculation factors, valid from ``from`` (the first: from the start).

    A default value names its ``source``; an operator-specific one (a laboratory analysis) names
    the ``laboratory``, the date the sample was ``analysed`` and the analysis ``standard``
    [IR-2025-2547 Annex II; MRR-2018-2066 Art. 32-35]; a ``measured`` one (an operating figure
    such as the anode-effect minutes from the pot-line control system) names its ``source``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    valid_from: date | None = Field(default=None, alias="from", description="first day these apply")
    basis: Literal["default", "laboratory", "measured"]
    source: str | None = Field(
        default=None, min_length=1, description="where a default or measured value comes from"
    )
    laboratory: str | None = Field(default=None, min_length=1)
    analysed: date | None = Field(default=None, description="date of the laboratory analysis")
    standard: str | None = Field(default=None, min_length=1, description="analysis standard, e.g. EN 196-2")
    emission_factor: Number | None = Field(
        default=None, ge=0, le=1000, description="t CO2/t of a process material, t CO2/TJ of a fuel"
    )
    composition: dict[str, _Fraction] | None = Field(
        default=None, description="mass fractions of carbonates (input method) or oxides (output method)"
    )
    ncv_tj_per_t: Number | None = Field(default=None, gt=0, le=0.1, description="a fuel's NCV, TJ/t")
    oxidation_factor: Number = Field(default=1.0, gt=0, le=1)
    conversion_factor: Number = Field(default=1.0, gt=0, le=1)
    carbon_content: Number | None = Field(default=None, ge=0, le=1, description="t C per t (mass balance)")
    cell_technology: str | None = Field(default=None, description="CWPB, SWPB, VSS or HSS: the PFC defaults")
    slope_cf4: Number | None = Field(default=None, gt=0, le=10, description="(kg CF4/t Al)/(AE-min/cell-day)")
    c2f6_per_cf4: Number | None = Field(default=None, ge=0, le=1, description="kg C2F6 per kg CF4")
    anode_effect_minutes: Number | None = Field(
        default=None, ge=0, le=1000, description="anode-effect minutes per cell-day, over the period"
    )

    @field_validator("composition")
    @classmethod
    def _known_compounds(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        if value is None:
            return value
        unknown = sorted(set(value) - set(STOICHIOMETRIC))
        if unknown:
            raise ValueError(f"unknown compound(s) {unknown} (known: {', '.join(STOICHIOMETRIC)})")
        if sum(value.values()) > 1 + 1e-9:
            raise ValueError(f"the mass fractions add up to {sum(value.values()):g}, more than 1")
        return value

    @field_validator("cell_technology")
    @classmethod
    def _known_technology(cls, value: str | None) -> str | None:
        if value is not None and value not in PFC_SLOPE_DEFAULTS:
            raise ValueError(f"unknown cell technology {value!r} (known: {', '.join(PFC_SLOPE_DEFAULTS)})")
        return value

    @model_validator(mode="after")
    def _provenance(self) -> StreamFactors:
        if self.basis in ("default", "measured") and self.source is None:
            raise ValueError(f"a {self.basis} factor needs its source, so it can be audited")
        if self.basis == "laboratory" and None in (self.laboratory, self.analysed, self.standard):
            raise ValueError("a laboratory factor needs laboratory, analysed (its date) and standard")
        if self.emission_factor is not None and self.composition is not None:
            raise ValueError("give emission_factor or composition, not both")
        return self


# What each method needs in its factors, and what it must not be given (a typo of a method).
_PFC = ("slope_cf4", "c2f6_per_cf4", "anode_effect_minutes", "cell_technology")


_METHOD_FACTORS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "fuel": (
        ("emission_factor", "ncv_tj_per_t"),
        ("composition", "conversion_factor", "carbon_content", *_PFC),
    ),
    "process_material": (
        ("emission_factor|composition",),
        ("ncv_tj_per_t", "oxidation_factor", "carbon_content", *_PFC),
    ),
    "mass_balance": (
        ("carbon_content",),
        ("emission_factor", "composition", "ncv_tj_per_t", "oxidation_factor", "conversion_factor", *_PFC),
    ),
    "pfc_slope": (
        ("anode_effect_minutes", "slope_cf4|cell_technology", "c2f6_per_cf4|cell_technology"),
        (
            "emission_factor",
            "composition",
            "ncv_tj_per_t",
            "oxidation_factor",
            "conversion_factor",
            "carbon_content",
        ),
    ),
}


class SourceStream(_Strict):
    """A source stream of a process [IR-2025-2547 Annex II B]: its method, activity and factors."""

    id: Identifier
    name: str | None = None
    method: Literal["standard", "mass_balance", "n2o_measured", "pfc_slope"]
    material: Literal["fuel", "process_material"] | None = Field(
        default=None, description="standard method: a fuel (NCV, OF) or a process material (CF)"
    )
    direction: Literal["input", "output"] = Field(
        default="input", description="mass balance: carbon in, or out (product, slag, dust)"
    )
    activity: StreamActivity
    factors: list[StreamFactors] = Field(default_factory=list, max_length=400)

    @model_validator(mode="after")
    def _method_needs(self) -> SourceStream:
        if self.method == "standard" and self.material is None:
            raise ValueError("the standard method needs material: fuel or process_material")
        if self.method != "standard" and self.material is not None:
            raise ValueError(f"material applies to the standard method, not to {self.method}")
        if self.method != "mass_balance" and self.direction != "input":
            raise ValueError("direction applies to the mass balance method only")
        if self.method == "n2o_measured":
            if self.factors:
                raise ValueError("metered N2O needs no factors (its GWP is the regulation's)")
            return self
        if not self.factors:
            raise ValueError(f"the {self.method} method needs factors (one entry at least)")
        key = self.material if self.method == "standard" else self.method
        needs, forbidden = _METHOD_FACTORS[key or ""]
        for i, factor in enumerate(self.factors):
            # What the entry says, defaults left out: an oxidation factor on a process material is a mistake.
            given = {name for name in factor.model_fields_set if getattr(factor, name) is not None}
            for need in needs:
                if not any(name in given for name in need.split("|")):
                    raise ValueError(f"factors[{i}] needs {' or '.join(need.split('|'))} for {key}")
            wrong = [name for name in forbidden if name in given]
            if wrong:
                raise ValueError(f"factors[{i}]: {', '.join(wrong)} does not apply to {key}")
            if i == 0 and factor.valid_from is not None:
                raise ValueError("factors[0] applies from the start: leave out its from")
            if i > 0:
                previous = self.factors[i - 1].valid_from
                if factor.valid_from is None or (previous is not None and factor.valid_from <= previous):
                    raise ValueError(f"factors[{i}] needs a from date after the one before it")
        return self


class CbamProcess(_Strict):
    """A production process: its route and the machines whose emissions and electricity it owns."""

    id: Identifier
    name: str | None = None
    route: str = Field(description="the production route, a value of the template's code list (docs/cbam.md)")
    route_description: str | None = Field(
        default=None, min_length=1, description="the route in the operator's words, for the operator report"
    )
    machines: list[Identifier]
    shared_machines: list[SharedMachine] = Field(default_factory=list)
    source_streams: list[SourceStream] = Field(
        default_factory=list,
        max_length=200,
        description="process materials, mass balances, N2O and PFCs beside the machines' fuel meters",
    )

    @field_validator("route")
    @classmethod
    def _route_of_the_code_list(cls, value: str) -> str:
        known = routes_of("")
        if value not in known:
            raise ValueError(
                f"{value!r} is not a production route of the template's code list (one of: "
                f"{'; '.join(known)}); describe the route in route_description"
            )
        return value

    @field_validator("machines")
    @classmethod
    def _has_machines(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("a production process needs at least one machine (its emissions come from them)")
        return value
