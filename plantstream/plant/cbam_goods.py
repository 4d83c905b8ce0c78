"""CBAM: goods and precursors, declarations and verification, the ``cbam`` section as a whole.

See docs/cbam.md; the sources are in docs/references.md.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from plantstream.plant.base import Identifier, _Strict
from plantstream.plant.cbam_installation import (
    _COUNTRY,
    CbamElectricity,
    CbamInstallation,
    CbamOperator,
    CbamProcess,
    StreamActivity,
)
from plantstream.plant.cbam_parameters import check_parameter
from plantstream.plant.cn_codes import cn_category, normalise_cn
from plantstream.plant.numbers import Integer, Number

__all__ = [
    "CarbonPricePaid",
    "Cbam",
    "CbamDeclarations",
    "CbamGood",
    "CbamVerification",
    "DefaultValue",
    "GoodOutput",
    "GoodPrecursor",
    "PurchasedPrecursor",
]


def _cbam_cn(value: str) -> str:
    """An 8-digit CN code that Annex I of Reg. 2023/956 covers, spaces removed."""
    digits = normalise_cn(value)
    if cn_category(digits) is None:
        raise ValueError(
            f"CN {value} is not a CBAM good (Annex I of Reg. 2023/956: cement, electricity, "
            "fertilisers, iron and steel, aluminium, hydrogen)"
        )
    return digits


class GoodOutput(_Strict):
    """Where a good's activity level (tonnes) comes from: a machine's good pieces, or a scale."""

    machine: Identifier
    mass_kg_per_piece: Number | None = Field(default=None, gt=0)
    weighed: bool = Field(default=False, description="the machine's good_count is a weigh-scale total in kg")

    @model_validator(mode="after")
    def _one_way(self) -> GoodOutput:
        if (self.mass_kg_per_piece is None) == (not self.weighed):
            raise ValueError("give mass_kg_per_piece, or weighed: true for a weigh-scale total in kg")
        return self


class GoodPrecursor(_Strict):
    """A precursor consumed by a good: purchased, or another good of this installation."""

    purchased: Identifier | None = Field(default=None, description="id in cbam.purchased_precursors")
    good: Identifier | None = Field(default=None, description="id in cbam.goods (made here)")
    mass_t_per_t: Number | None = Field(default=None, ge=0, description="m_i: t consumed per t of good")
    mass_t_by_year: dict[Integer, Annotated[Number, Field(ge=0)]] = Field(
        default_factory=dict, description="M_i: t consumed in the year, incl. spill and scrap"
    )
    metered: StreamActivity | None = Field(
        default=None, description="M_i measured: the scale (or counter) where it enters the process"
    )

    @model_validator(mode="after")
    def _one_each(self) -> GoodPrecursor:
        if (self.purchased is None) == (self.good is None):
            raise ValueError("give exactly one of purchased and good")
        given = [self.mass_t_per_t is not None, bool(self.mass_t_by_year), self.metered is not None]
        if sum(given) != 1:
            raise ValueError("give exactly one of mass_t_per_t, mass_t_by_year and metered")
        return self


class CbamGood(_Strict):
    """A CBAM good made by the installation (an Annex I CN code)."""

    id: Identifier
    name: str | None = None
    cn_code: str
    process: Identifier
    output: GoodOutput
    precursors: list[GoodPrecursor] = Field(default_factory=list)
    # Checked by name against the good's sector (check_parameter), which also checks each value:
    # a Number | str union would report a wrong value twice, once for each type.
    qualifying_parameters: dict[str, Any] = Field(
        default_factory=dict,
        description="the sector's qualifying parameters, e.g. scrap_t_per_t (docs/cbam.md lists them)",
    )

    @field_validator("cn_code", mode="before")
    @classmethod
    def _annex_i(cls, value: Any) -> Any:
        # An unquoted 73063077 reads as a number; the code is the same digits.
        return _cbam_cn(str(value)) if isinstance(value, str | int) else value

    @field_validator("qualifying_parameters")
    @classmethod
    def _parameters_of_its_sector(
        cls, value: dict[str, float | str], info: ValidationInfo
    ) -> dict[str, float | str]:
        cn_code = info.data.get("cn_code")
        if cn_code is None:
            return value  # the CN code's own error says what is wrong
        category = cn_category(cn_code) or ""
        problems = [p for name, v in value.items() if (p := check_parameter(category, name, v)) is not None]
        if problems:
            raise ValueError("; ".join(problems))
        return value

    @property
    def category(self) -> str:
        """The Annex I category (cement, iron_steel, ...), derived from the CN code."""
        return cn_category(self.cn_code) or ""


class DefaultValue(_Strict):
    """A published default value of IR 2025/2621 (before the year's mark-up), in t CO2e/t."""

    direct: Number = Field(ge=0)
    indirect: Number | None = Field(
        default=None, ge=0, description="the indirect default; without it the indirect figure is not known"
    )
    source: str = Field(min_length=1, description="table, CN code and country row it was taken from")


class PurchasedPrecursor(_Strict):
    """A relevant precursor bought in from another installation [IR-2025-2547 Annex III B; Art. 15]."""

    id: Identifier
    name: str | None = None
    cn_code: str
    origin: str = Field(pattern=_COUNTRY, description="country of production, ISO 3166-1 alpha-2")
    basis: Literal["actual_verified", "default"]
    see_direct: Number | None = Field(default=None, ge=0)
    see_indirect: Number | None = Field(default=None, ge=0)
    default: DefaultValue | None = None
    production_period: str | None = Field(default=None, description="period the actual SEE covers")
    supplier_operator_id: str | None = None
    supplier_installation_id: str | None = None
    verifier_report: str | None = Field(default=None, description="id of the verification report")

    @field_validator("cn_code", mode="before")
    @classmethod
    def _annex_i(cls, value: Any) -> Any:
        # An unquoted 73063077 reads as a number; the code is the same digits.
        return _cbam_cn(str(value)) if isinstance(value, str | int) else value

    @model_validator(mode="after")
    def _has_a_value(self) -> PurchasedPrecursor:
        if self.see_direct is None and self.default is None:
            raise ValueError(
                f"precursor {self.id!r} has neither an actual SEE (see_direct, see_indirect) nor a "
                "default value (default: {direct, indirect, source})"
            )
        if self.basis == "actual_verified" and (self.see_direct is None or self.see_indirect is None):
            raise ValueError(
                "basis actual_verified needs see_direct and see_indirect from the supplier's verified report"
            )
        if self.basis == "default" and self.default is None:
            raise ValueError("basis default needs default: {direct, indirect, source} (IR 2025/2621)")
        return self

    @property
    def category(self) -> str:
        """The Annex I category, derived from the CN code."""
        return cn_category(self.cn_code) or ""


class CbamDeclarations(_Strict):
    """Summary report items the pipeline does not measure, as the operator declares them."""

    measurable_heat: str = "none imported or exported"
    zero_rated_fuels: str = "none"
    waste_gases: str = "none"
    co2_capture: str = "none"
    own_electricity_generation: str = "none"
    precursor_period_weighting: str = "not applied (Art. 14(1))"
    multi_source_precursors: str = "not applied (Art. 14(2)-(3))"


class CbamVerification(_Strict):
    """Who verified the installation's own data for the reporting year [IR-2025-2546]."""

    verifier: str = Field(min_length=1, description="the accredited verifier's name")
    accreditation: str | None = Field(default=None, description="accreditation body and number")
    statement_reference: str = Field(min_length=1, description="the verification statement's reference")
    year: Integer = Field(ge=2026, le=2100, description="the reporting year the statement covers")


class CarbonPricePaid(_Strict):
    """A carbon price paid in the country of origin for the embedded emissions [CBAM-REG Art. 9]."""

    year: Integer = Field(ge=2026, le=2100, description="the reporting year it was paid for")
    instrument: str = Field(min_length=1, description="e.g. Korea ETS allowances surrendered, a carbon tax")
    amount: Number = Field(ge=0, description="the amount paid, in currency")
    currency: str = Field(pattern=r"^[A-Z]{3}$", description="ISO 4217, e.g. KRW, VND, EUR")
    goods: list[Identifier] = Field(min_length=1, description="ids in cbam.goods the price covers")
    rebate: str | None = Field(
        default=None, description="any rebate or compensation received, which reduces the price paid"
    )


class Cbam(_Strict):
    """The ``cbam`` section: what the embedded-emissions ledger and its reports need."""

    operator: CbamOperator
    installation: CbamInstallation
    electricity: CbamElectricity = Field(default_factory=CbamElectricity)
    processes: list[CbamProcess] = Field(min_length=1)
    goods: list[CbamGood] = Field(
        min_length=1,
        max_length=500,
        description="an installation makes a handful; the bound keeps chains of own-made precursors short",
    )
    purchased_precursors: list[PurchasedPrecursor] = Field(default_factory=list)
    declarations: CbamDeclarations = Field(default_factory=CbamDeclarations)
    verifications: list[CbamVerification] = Field(
        default_factory=list, description="the verification statement of each verified year"
    )
    carbon_prices_paid: list[CarbonPricePaid] = Field(default_factory=list)
    # Our choice, not a regulatory figure: the verifier's 5 % materiality at goods level (IR 2025/2546,
    # as summarised in [CBAM-NOTE] section 5.1.4, VERIFY) is the order of magnitude a gap must stay under.
    min_data_completeness: Number = Field(
        default=0.95,
        ge=0,
        le=1,
        description="share of each process's operating hours that must have data for a report to be "
        "signed without --allow-partial (docs/cbam.md)",
    )
