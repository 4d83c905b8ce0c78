"""Sites, their lines and machines: the plant's structure, with each machine's signals."""

from __future__ import annotations

from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator

from plantstream.plant.base import Identifier, _Strict
from plantstream.plant.carbon import Carbon
from plantstream.plant.numbers import Number
from plantstream.plant.signals import Role, Signal

__all__ = ["Line", "Machine", "Site"]


def _role_shorthand(value: Any) -> Any:
    # `good_count: good_count` is the short form of `good_count: {role: good_count}`.
    if isinstance(value, str):
        return {"role": value}
    return value


class Machine(_Strict):
    """A work unit: its signals, ideal cycle time per product, and the calendar it runs to."""

    id: Identifier
    name: str | None = None
    signals: dict[Identifier, Signal] = Field(min_length=1)
    ideal_cycle_s: Number | None = Field(
        default=None, gt=0, description="ideal (design) cycle time per piece"
    )
    ideal_cycle_s_by_product: dict[str, Annotated[Number, Field(gt=0)]] = Field(default_factory=dict)
    mass_kg_per_piece: Number | None = Field(default=None, gt=0)
    mass_kg_per_piece_by_product: dict[str, Annotated[Number, Field(gt=0)]] = Field(default_factory=dict)
    rated_power_kw: Number | None = Field(
        default=None, gt=0, description="nameplate power: bounds register plausibility and rollover"
    )
    calendar: Identifier | None = None
    micro_stop_max_s: Number | None = Field(default=None, ge=0, description="overrides production's")
    startup_reject_s: Number | None = Field(
        default=None, ge=0, le=86_400, description="overrides production's"
    )
    type: Identifier | None = Field(
        default=None, description="machine type: selects its own reason codes (reasons.machine_types)"
    )

    @field_validator("signals", mode="before")
    @classmethod
    def _expand_shorthand(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {name: _role_shorthand(spec) for name, spec in value.items()}
        return value

    @model_validator(mode="after")
    def _one_signal_per_role(self) -> Machine:
        seen: dict[Role, str] = {}
        for name, signal in self.signals.items():
            if signal.role is Role.FUEL:
                continue
            if signal.role in seen:
                raise ValueError(
                    f"signals {seen[signal.role]!r} and {name!r} both have role {signal.role.value}"
                )
            seen[signal.role] = name
        counted = {Role.TOTAL_COUNT, Role.GOOD_COUNT, Role.REJECT_COUNT} & seen.keys()
        if counted and self.ideal_cycle_s is None and not self.ideal_cycle_s_by_product:
            raise ValueError("a machine with count signals needs ideal_cycle_s (or ideal_cycle_s_by_product)")
        if Role.REWORK_COUNT in seen and not counted:
            raise ValueError(
                f"signal {seen[Role.REWORK_COUNT]!r} (rework_count) needs a total_count, good_count or "
                "reject_count beside it: the rework ratio is rework over the pieces produced"
            )
        return self

    def signal_of(self, role: Role) -> str | None:
        """Return the name of the signal with ``role``, if the machine has one."""
        for name, signal in self.signals.items():
            if signal.role is role:
                return name
        return None


class Line(_Strict):
    """A production line: machines that are rolled up together."""

    id: Identifier
    name: str | None = None
    area: Identifier | None = None
    calendar: Identifier | None = None
    machines: list[Machine] = Field(min_length=1)


class Site(_Strict):
    """A plant site: its time zone (for shift calendars), country and carbon settings."""

    id: Identifier
    name: str | None = None
    timezone: str
    country: str = Field(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2")
    calendar: Identifier | None = None
    carbon: Carbon | None = None
    lines: list[Line] = Field(min_length=1)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a zone folder such as "Asia"
            raise ValueError(
                f"unknown time zone {value!r} (use an IANA name such as Asia/Ho_Chi_Minh)"
            ) from None
        return value
