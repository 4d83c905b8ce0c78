"""OEE from ISO 22400-2 time elements and quantities, and the Nakajima/Vorne variant.

Sources (docs/references.md):
- ISO 22400-2 [ISO-OWL; PTC]: PBT = POT − PDOT; Availability A = APT / PBT; Effectiveness
  E = PRU × PQ / APT (may exceed 100 %); Quality ratio QR = GQ / PQ; OEE = A × E × QR;
  NEE = AUPT / PBT × E × QR with AUPT = ASUT + APT.
- Vorne worksheet [VORNE-WS; OEE.COM]: the same ratios with the ideal cycle time; performance
  "should never exceed 100 %", so it is capped and the raw value is kept beside it.
- Roll-ups sum elements, then compute ratios; ratios are never averaged (§1.3).

A ratio whose denominator is zero is undefined and left out, never NaN. OEE itself is defined
whenever planned busy time is: it equals ``ideal time of good output / PBT`` (the simple form,
TV-OEE-1), which is A × E × QR when all three are defined and 0 when nothing was made.
"""

from __future__ import annotations

from dataclasses import dataclass

from plantstream.plant.schema import OeeMethod

__all__ = ["OeeElements", "element_fields", "oee_kpis"]

_US = 1_000_000


@dataclass(slots=True)
class OeeElements:
    """Time elements (microseconds) and quantities of one machine, or of many summed.

    ``run`` is APT and includes ``micro`` (stops no longer than the micro-stop threshold);
    ``planned_stop`` is PDOT (calendar breaks plus time in state ``planned_stop``); ``unknown``
    is planned time with no state data. ``ideal`` is Σ count × ideal cycle time (PRU × PQ).

    ``stops`` counts the stops (:mod:`streams.stops`) that ended in the window, micro-stops not
    included; ``micro_stops`` those; ``failures`` the stops of state ``down`` among ``stops``
    (ISO 22400-2 FE, the failure events of MTBF and MTTR). ``startup_reject`` is the part of
    ``reject`` made while the machine was starting up after a setup (a six-big-losses split);
    ``rework`` the pieces sent to rework (RQ, from a rework counter; part of the rejects).

    ``counted_run`` is set on roll-ups only: the run time of the members that count pieces, the
    base of the roll-up's performance. A member without a piece counter (an oven) adds its time
    elements to the availability of its line but neither pieces nor ideal time, so its run time
    must not dilute the line's performance (ISO 22400-2 E = PRU × PQ / APT over the same units).
    """

    scheduled: int = 0
    planned_stop: int = 0
    run: int = 0
    micro: int = 0
    down: int = 0
    idle: int = 0
    setup: int = 0
    off: int = 0
    unknown: int = 0
    total: float = 0
    good: float = 0
    reject: float = 0
    ideal: float = 0.0
    counted_run: int | None = None
    stops: int = 0
    micro_stops: int = 0
    failures: int = 0
    startup_reject: float = 0
    rework: float = 0

    def to_dict(self) -> dict[str, int | float | None]:
        """A JSON-ready form (what ``dataclasses.asdict`` gives, without its deep copy)."""
        return {
            "scheduled": self.scheduled,
            "planned_stop": self.planned_stop,
            "run": self.run,
            "micro": self.micro,
            "down": self.down,
            "idle": self.idle,
            "setup": self.setup,
            "off": self.off,
            "unknown": self.unknown,
            "total": self.total,
            "good": self.good,
            "reject": self.reject,
            "ideal": self.ideal,
            "counted_run": self.counted_run,
            "stops": self.stops,
            "micro_stops": self.micro_stops,
            "failures": self.failures,
            "startup_reject": self.startup_reject,
            "rework": self.rework,
        }

    @property
    def planned_busy(self) -> int:
        """PBT = POT − PDOT."""
        return self.scheduled - self.planned_stop

    def add(self, other: OeeElements) -> None:
        """Add ``other`` into these elements (roll-up: elements sum, ratios do not)."""
        # Written out: this runs for every window of every shift and roll-up.
        self.scheduled += other.scheduled
        self.planned_stop += other.planned_stop
        self.run += other.run
        self.micro += other.micro
        self.down += other.down
        self.idle += other.idle
        self.setup += other.setup
        self.off += other.off
        self.unknown += other.unknown
        self.total += other.total
        self.good += other.good
        self.reject += other.reject
        self.ideal += other.ideal
        self.stops += other.stops
        self.micro_stops += other.micro_stops
        self.failures += other.failures
        self.startup_reject += other.startup_reject
        self.rework += other.rework
        if other.counted_run is not None:
            self.counted_run = (self.counted_run or 0) + other.counted_run

    def add_member(self, member: OeeElements, counts_pieces: bool) -> None:
        """Add a machine's elements into a roll-up's.

        Its run time is a base of performance only if it ``counts_pieces`` (see the class docstring).
        """
        self.add(member)
        counted = self.counted_run or 0
        self.counted_run = counted + member.run if counts_pieces else counted

    def copy(self) -> OeeElements:
        """An independent copy."""
        return OeeElements(
            self.scheduled,
            self.planned_stop,
            self.run,
            self.micro,
            self.down,
            self.idle,
            self.setup,
            self.off,
            self.unknown,
            self.total,
            self.good,
            self.reject,
            self.ideal,
            self.counted_run,
            self.stops,
            self.micro_stops,
            self.failures,
            self.startup_reject,
            self.rework,
        )


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator > 0 else None


def oee_kpis(e: OeeElements, method: OeeMethod) -> dict[str, float]:
    """Return the OEE ratios of ``e`` as point fields; undefined ratios are absent.

    Example (TV-OEE-1/5): PBT 420 min, APT 373 min, PQ 19 271, GQ 18 848, ideal 1 s gives
    A = 0.8881, E = 0.8611, QR = 0.9780, OEE = 0.7479.
    """
    pbt = e.planned_busy
    out: dict[str, float] = {}
    availability = _ratio(e.run, pbt)
    performance = _ratio(e.ideal, e.run if e.counted_run is None else e.counted_run)
    quality = _ratio(e.good, e.total)
    if availability is not None:
        out["availability"] = availability
    if performance is not None:
        if method is OeeMethod.VORNE and performance > 1:
            out["performance_uncapped"] = performance
            performance = 1.0
        out["performance"] = performance
    if quality is not None:
        out["quality"] = quality
    if availability is not None and performance is not None and quality is not None:
        out["oee"] = availability * performance * quality
        if method is OeeMethod.ISO22400:
            out["nee"] = (e.run + e.setup) / pbt * performance * quality
    elif pbt > 0:
        # Simple form: ideal time of the good output over planned busy time.
        good_share = e.good / e.total if e.total > 0 else 0.0
        out["oee"] = e.ideal * good_share / pbt
    return out


def element_fields(e: OeeElements) -> dict[str, float]:
    """The elements as point fields, durations in seconds."""
    return {
        "scheduled_s": e.scheduled / _US,
        "planned_busy_s": e.planned_busy / _US,
        "planned_stop_s": e.planned_stop / _US,
        "run_s": e.run / _US,
        "micro_stop_s": e.micro / _US,
        "down_s": e.down / _US,
        "idle_s": e.idle / _US,
        "setup_s": e.setup / _US,
        "off_s": e.off / _US,
        "unknown_s": e.unknown / _US,
        "total_count": e.total,
        "good_count": e.good,
        "reject_count": e.reject,
        "ideal_run_s": e.ideal / _US,
        **({} if e.counted_run is None else {"counted_run_s": e.counted_run / _US}),
    }
