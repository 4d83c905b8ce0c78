"""A site's carbon: which grid emission factor applies, and the market-based (Scope 2) covered share."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from plantstream.plant.base import _Strict
from plantstream.plant.numbers import Integer, Number

__all__ = ["Carbon", "GridRef", "Market"]


class GridRef(_Strict):
    """Which grid emission factor applies: a row of the shipped table, or a documented custom value."""

    country: str | None = Field(default=None, pattern=r"^[A-Z]{2}$", description="defaults to the site's")
    basis: str = Field(default="annual", description="annual, avg_2014_2016, avg_2020_2022, ...")
    year: Integer | None = Field(default=None, ge=1990, le=2100)
    factor_t_per_mwh: Number | None = Field(
        default=None, ge=0, description="custom factor instead of the table"
    )
    source: str | None = Field(default=None, description="required with a custom factor")

    @model_validator(mode="after")
    def _table_or_custom(self) -> GridRef:
        if self.factor_t_per_mwh is None and self.year is None:
            raise ValueError("give year (a row of the factor table) or factor_t_per_mwh with its source")
        if self.factor_t_per_mwh is not None and not self.source:
            raise ValueError("a custom factor_t_per_mwh needs a source, so the number can be audited")
        return self


class Market(_Strict):
    """Market-based Scope 2: the share covered by contractual instruments and the residual mix."""

    covered_share: Number = Field(ge=0, le=1)
    covered_t_per_mwh: Number = Field(ge=0)
    residual_t_per_mwh: Number = Field(ge=0)
    source: str = Field(
        min_length=1, description="the instruments (PPA, EACs, supplier rate) and their vintage"
    )


class Carbon(_Strict):
    """How a site's energy turns into CO2e."""

    grid: GridRef
    market: Market | None = None
    gwp: Literal["AR5", "AR6", "SAR"] = "AR5"
