"""How production is measured: the OEE method, windows, and the engine's bounds."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field, model_validator

from plantstream.plant.base import _Strict
from plantstream.plant.numbers import Integer, Number

__all__ = ["CORRECTION_HISTORY_BYTES", "CORRECTION_HISTORY_BYTES_MAX", "OeeMethod", "Production"]


class OeeMethod(StrEnum):
    """Which OEE formulation: ISO 22400-2 (default) or the Nakajima/Vorne variant."""

    ISO22400 = "iso22400"
    VORNE = "vorne"


CORRECTION_HISTORY_BYTES = 32 * 2**20
"""The correction history's default byte budget: 32 MiB, about 1.9 million numeric readings."""


CORRECTION_HISTORY_BYTES_MAX = 2**40
"""1 TiB: a budget beyond any machine plantstream runs on is a typo, not a plan."""


class Production(_Strict):
    """Window, lateness and OEE settings shared by every machine."""

    oee_method: OeeMethod = OeeMethod.ISO22400
    micro_stop_max_s: Number = Field(default=0.0, ge=0, description="stops this short stay in run time")
    startup_reject_s: Number = Field(
        default=0.0,
        ge=0,
        le=86_400,
        description="rejects counted this long after a setup ends are start-up rejects (0: none)",
    )
    window_s: Integer = Field(default=60, gt=0, le=86_400)
    allowed_lateness_s: Number = Field(default=5.0, ge=0)
    correction_horizon_s: Number = Field(default=3_600.0, ge=0, description="how far back late data corrects")
    correction_history_max: Integer = Field(
        default=2_000_000,
        ge=0,
        description="readings kept for corrections, all machines together (a memory bound)",
    )
    correction_history_bytes: Integer = Field(
        default=CORRECTION_HISTORY_BYTES,
        ge=0,
        le=CORRECTION_HISTORY_BYTES_MAX,
        description="bytes of readings kept for corrections, all machines together (a memory bound)",
    )
    max_future_s: float | None = Field(
        default=300.0,
        ge=0,
        le=86_400,
        description="how far an event time may be ahead of its receipt; null for a simulated clock",
    )
    max_clock_jump_s: float = Field(
        default=86_400.0,
        gt=0,
        le=3_650 * 86_400,
        description="how far a reading may jump past its machine's newest event time",
    )
    max_gap_fill_s: float = Field(
        default=8 * 86_400.0,
        gt=0,
        le=31 * 86_400,
        description="a machine silent longer than this resumes without the empty windows of the silence",
    )

    @model_validator(mode="after")
    def _horizon_covers_lateness(self) -> Production:
        if self.correction_horizon_s < self.allowed_lateness_s:
            raise ValueError("correction_horizon_s must be >= allowed_lateness_s")
        return self
