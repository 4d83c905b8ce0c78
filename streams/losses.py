"""The six big losses of a machine (or a roll-up) in one window, as time.

Pure. Nakajima's six big losses (docs/references.md [WILLMOTT] pp. 100-101) laid
over the ISO 22400-2 time elements of :class:`streams.oee.OeeElements` ([ISO22400-2]):

=====================  =====================================================================
``breakdown``          ``down + off``: unplanned stops (ADET beyond micro-stops), and the
                       machine switched off while it was planned to run
``setup``              ``setup`` (ASUT): setup and adjustments
``small_stop``         ``idle + micro``: idling (ADOT) and minor stoppages (the micro-stops
                       kept inside APT)
``reduced_speed``      ``(run − micro) − ideal``: net run time not covered by the ideal time of
                       the pieces made (PRU × PQ). Negative when the machine beat its ideal
                       cycle (ISO allows E > 100 %): the ideal cycle time is then too long
``startup_reject``     ideal time of the start-up rejects: ``ideal × startup_reject / total``
``production_reject``  ideal time of the other rejects: ``ideal × (total − good −
                       startup_reject) / total``
=====================  =====================================================================

**The identity.** Fully productive time is the ideal time of the good pieces,
``FPT = ideal × good / total`` (OEE = FPT / PBT, the simple form [VORNE-WS]). Since
``PBT = run + down + idle + setup + off + unknown`` (docs/points.md),

    breakdown + setup + small_stop + reduced_speed + startup_reject + production_reject
        + unobserved = PBT − FPT

where ``unobserved`` is ``unknown``: planned busy time with no state data is reported on its own,
never guessed into a loss, so with a fully observed window the six add up to PBT − FPT alone.

A machine without a piece counter (an oven) has no ideal time to measure speed or quality
against: its fully productive time is its net run time (``run − micro``) and its speed and
quality losses are 0, so the identity holds for it too.
"""

from __future__ import annotations

from dataclasses import dataclass

from streams.oee import OeeElements

__all__ = ["LOSS_FIELDS", "SixLosses", "six_losses"]

_US = 1_000_000
LOSS_FIELDS = (
    "breakdown_s",
    "setup_s",
    "small_stop_s",
    "reduced_speed_s",
    "startup_reject_s",
    "production_reject_s",
)
"""The six losses as the fields of a ``losses`` point, in Nakajima's order."""


@dataclass(frozen=True, slots=True)
class SixLosses:
    """The six big losses, the unobserved time and fully productive time, all in µs."""

    breakdown: float
    setup: float
    small_stop: float
    reduced_speed: float
    startup_reject: float
    production_reject: float
    unobserved: float
    fully_productive: float

    @property
    def total(self) -> float:
        """The six losses added up (``unobserved`` not included)."""
        return (
            self.breakdown
            + self.setup
            + self.small_stop
            + self.reduced_speed
            + self.startup_reject
            + self.production_reject
        )

    def plus(self, other: SixLosses) -> SixLosses:
        """The sum of two: a roll-up's losses are its members' losses added up."""
        return SixLosses(
            self.breakdown + other.breakdown,
            self.setup + other.setup,
            self.small_stop + other.small_stop,
            self.reduced_speed + other.reduced_speed,
            self.startup_reject + other.startup_reject,
            self.production_reject + other.production_reject,
            self.unobserved + other.unobserved,
            self.fully_productive + other.fully_productive,
        )

    def fields(self) -> dict[str, float]:
        """The losses as point fields in seconds, with ``unobserved_s`` and ``fully_productive_s``."""
        values = (
            self.breakdown,
            self.setup,
            self.small_stop,
            self.reduced_speed,
            self.startup_reject,
            self.production_reject,
        )
        out = {name: value / _US for name, value in zip(LOSS_FIELDS, values, strict=True)}
        out["unobserved_s"] = self.unobserved / _US
        out["fully_productive_s"] = self.fully_productive / _US
        return out


def six_losses(e: OeeElements, *, has_counts: bool = True) -> SixLosses:
    """The six big losses of ``e`` (see the module docstring for each formula).

    Example (TV-OEE-5 as arithmetic): PBT 420 min, run 383 min of which 10 micro, down 37 min,
    19 271 pieces at 1 s ideal (321.18 min), 423 rejects. Breakdown 37, small stops 10, reduced
    speed 373 − 321.18 = 51.82, rejects 321.18 × 423 / 19 271 = 7.05 min; FPT 314.13 min, and
    37 + 10 + 51.82 + 7.05 = 105.87 = 420 − 314.13.
    """
    net_run = e.run - e.micro
    if has_counts:
        ideal = e.ideal
        if e.total > 0:
            bad = max(e.total - e.good, 0.0)
            startup = min(max(e.startup_reject, 0.0), bad)
            startup_loss = ideal * startup / e.total
            production_loss = ideal * (bad - startup) / e.total
        else:
            startup_loss = production_loss = 0.0
        speed = net_run - ideal
        fpt = ideal - startup_loss - production_loss
    else:
        speed = startup_loss = production_loss = 0.0
        fpt = float(net_run)
    return SixLosses(
        breakdown=float(e.down + e.off),
        setup=float(e.setup),
        small_stop=float(e.idle + e.micro),
        reduced_speed=speed,
        startup_reject=startup_loss,
        production_reject=production_loss,
        unobserved=float(e.unknown),
        fully_productive=fpt,
    )
