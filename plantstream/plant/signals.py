"""A machine's signals: what each reading means (its role), and how its values are read."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from plantstream.plant.base import _Strict
from plantstream.plant.numbers import Integer, Number

__all__ = [
    "CounterSignal",
    "EnergySignal",
    "FuelSignal",
    "PowerSignal",
    "ProductSignal",
    "ReasonSignal",
    "Role",
    "Signal",
    "StateCategory",
    "StateSignal",
]


class _SignalBase(_Strict):
    record: bool = Field(default=True, description="also write the raw readings as `reading` points")


class StateCategory(StrEnum):
    """What a machine is doing, in the categories the OEE time model is built from.

    ``running`` is actual production time (APT); ``down`` unplanned stops from malfunction (ADET);
    ``idle`` available but not producing (ADOT); ``setup`` changeover (ASUT); ``planned_stop``
    planned downtime (PDOT); ``off`` switched off during planned time (a loss, like ADOT).
    """

    RUNNING = "running"
    IDLE = "idle"
    DOWN = "down"
    SETUP = "setup"
    PLANNED_STOP = "planned_stop"
    OFF = "off"


class Role(StrEnum):
    """The meaning of a signal to the calculators."""

    STATE = "state"
    TOTAL_COUNT = "total_count"
    GOOD_COUNT = "good_count"
    REJECT_COUNT = "reject_count"
    REWORK_COUNT = "rework_count"
    POWER_KW = "power_kw"
    ENERGY_KWH = "energy_kwh"
    FUEL = "fuel"
    PRODUCT = "product"
    REASON = "reason"


class StateSignal(_SignalBase):
    """A machine-state tag. Category names are always accepted as values; ``codes`` maps PLC codes."""

    role: Literal[Role.STATE]
    codes: dict[str, StateCategory] = Field(
        default_factory=dict, description="PLC code (as written by the PLC) -> category"
    )

    @field_validator("codes", mode="before")
    @classmethod
    def _codes_as_text(cls, value: Any) -> Any:
        # PLC codes arrive as numbers; keys are compared as their text form.
        if isinstance(value, dict):
            codes: dict[str, Any] = {}
            for key, category in value.items():
                text = _code_key(key)
                if text in codes:
                    raise ValueError(f"code {key!r} is given twice (codes are compared as text: {text!r})")
                codes[text] = category
            return codes
        return value


def _code_key(code: Any) -> str:
    if isinstance(code, float) and code.is_integer():
        return str(int(code))
    return str(code)


class CounterSignal(_SignalBase):
    """A cumulative piece counter (total, good, reject or rework); resets and rollovers are handled.

    A rework counter counts the pieces sent to be reworked (ISO 22400-2 RQ), a part of the
    machine's rejects: rework is a defect, not good output (docs/references.md [WILLMOTT] p. 100).
    """

    role: Literal[Role.TOTAL_COUNT, Role.GOOD_COUNT, Role.REJECT_COUNT, Role.REWORK_COUNT]
    modulus: Integer | None = Field(
        default=None, gt=0, description="register width, e.g. 65536 for a 16-bit counter"
    )


class PowerSignal(_SignalBase):
    """Active power in kW, integrated into kWh when no energy register exists."""

    role: Literal[Role.POWER_KW]
    integration: Literal["trapezoid", "hold"] = Field(
        default="trapezoid", description="trapezoid for sampled signals, hold for report-on-change"
    )
    scale: Number = Field(default=1.0, gt=0, description="multiplier to kW, e.g. 0.001 for a tag in W")
    max_gap_s: Number = Field(default=300.0, gt=0, description="do not integrate across a longer gap")


class EnergySignal(_SignalBase):
    """A cumulative active-energy register in kWh (after ``scale``), differenced into kWh per window."""

    role: Literal[Role.ENERGY_KWH]
    scale: Number = Field(default=1.0, gt=0, description="multiplier to kWh, e.g. 0.001 for a Wh register")
    modulus: Number | None = Field(default=None, gt=0, description="register rollover value, in raw units")
    max_gap_s: Number = Field(
        default=900.0, gt=0, description="longer gaps are booked when the next sample comes"
    )


class FuelSignal(_SignalBase):
    """A cumulative fuel meter (Scope 1): quantity in ``unit`` of ``fuel``."""

    role: Literal[Role.FUEL]
    fuel: str = Field(description="fuel key of the factor table, e.g. natural_gas")
    unit: Literal["kg", "t", "GJ", "TJ", "MWh", "Nm3"]
    ncv_mj_per_nm3: Number | None = Field(default=None, gt=0, description="required when unit is Nm3")
    modulus: Number | None = Field(default=None, gt=0)
    max_gap_s: Number = Field(
        default=900.0, gt=0, description="longer gaps are booked when the next sample comes"
    )

    @model_validator(mode="after")
    def _nm3_needs_ncv(self) -> FuelSignal:
        if self.unit == "Nm3" and self.ncv_mj_per_nm3 is None:
            raise ValueError("unit Nm3 needs ncv_mj_per_nm3 (the fuel's net calorific value per Nm3)")
        return self


class ProductSignal(_SignalBase):
    """The product (or recipe) currently made; selects the ideal cycle time and mass per piece."""

    role: Literal[Role.PRODUCT]


class ReasonSignal(_SignalBase):
    """A PLC fault or reason-code tag (integer or text), resolved through the plant's reason tree."""

    role: Literal[Role.REASON]
    rule: Literal["first", "last"] = Field(
        default="first",
        description="first: the code active when a stop began (first cause); last: the last before it ended",
    )


Signal = Annotated[
    StateSignal | CounterSignal | PowerSignal | EnergySignal | FuelSignal | ProductSignal | ReasonSignal,
    Field(discriminator="role"),
]
