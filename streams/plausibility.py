"""What a machine could physically have done: plausibility rules for cumulative values and times.

Pure (no clock, no I/O). A counter, energy register or fuel meter moves by at most what the
machine can make in the elapsed time; a value that claims more, or that falls a little (a glitch
on the wire, a bad word from a PLC), is refused rather than booked. A real reset (the value
drops to near zero or below half of what it was) and a rollover (the register was near its
modulus) are accepted as they always were.

The bounds, per machine:

- counts: ``1 / ideal_cycle_s`` pieces per second x :data:`COUNT_MARGIN`, plus
  :data:`COUNT_SLACK` pieces per judgement (a counter sampled right after a burst); without an
  ideal cycle time, :data:`DEFAULT_MAX_COUNT_PER_S`.
- energy: ``rated_power_kw`` x :data:`POWER_MARGIN`; without it, :data:`DEFAULT_MAX_KW`. Power
  readings above the same bound are refused too.
- fuel meters: :data:`DEFAULT_MAX_FUEL_PER_S` meter units per second (no rating is configured
  for burners).

A refused value does not move the machine's baseline. A meter that was really replaced shows
:data:`REBASE_AFTER` consecutive readings that agree with each other but not with the old
baseline: :class:`Rebase` follows them (without crediting the jump).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from streams.counters import CounterEvent

__all__ = [
    "COUNT_MARGIN",
    "COUNT_SLACK",
    "DEFAULT_MAX_COUNT_PER_S",
    "DEFAULT_MAX_FUEL_PER_S",
    "DEFAULT_MAX_KW",
    "EARLIEST_US",
    "LATEST_US",
    "MAX_EXACT",
    "POWER_MARGIN",
    "REBASE_AFTER",
    "RESET_BELOW",
    "Bound",
    "Increase",
    "Rebase",
    "count_bound",
    "energy_bound",
    "judge",
    "max_kw",
    "plausible_time",
]

COUNT_MARGIN = 1.5
"""A machine may run this much faster than its ideal cycle time before a count is implausible."""
COUNT_SLACK = 10.0
"""Pieces allowed on top of the rate at every judgement (a burst released by a buffer)."""
DEFAULT_MAX_COUNT_PER_S = 1000.0
"""Pieces per second, when the machine has no ``ideal_cycle_s``."""
POWER_MARGIN = 1.2
"""A machine may draw this much more than ``rated_power_kw`` (start-up currents, tolerance)."""
DEFAULT_MAX_KW = 20_000.0
"""kW, when the machine has no ``rated_power_kw`` (an electric arc furnace draws tens of MW)."""
DEFAULT_MAX_FUEL_PER_S = 1_000.0
"""Fuel meter units (m³, Nm³, kg, l) per second: a large burner uses well under a cubic metre."""
RESET_BELOW = 0.5
"""A fall to below this share of the previous value is a reset (meter cleared or replaced)."""
REBASE_AFTER = 3
"""Consecutive readings that agree with each other, not with the baseline, before it follows them."""
MAX_EXACT = float(2**53)
"""Larger magnitudes are refused: a float no longer counts single units there (one more is lost)."""
EARLIEST_US = 946_684_800_000_000
"""2000-01-01T00:00:00Z in µs since the epoch: older event times are a clock that was never set."""
LATEST_US = 4_102_444_800_000_000
"""2100-01-01T00:00:00Z in µs since the epoch: event times from here on are refused."""

_US_PER_S = 1_000_000.0
_NEAR_TOP = 0.9


@dataclass(frozen=True, slots=True)
class Bound:
    """The largest increase a cumulative value may show: ``per_s`` x elapsed seconds + ``slack``."""

    per_s: float
    slack: float = 0.0

    def max_increase(self, elapsed_us: float) -> float:
        """The largest plausible increase over ``elapsed_us`` microseconds (never negative)."""
        return self.per_s * max(0.0, elapsed_us) / _US_PER_S + self.slack


class Increase(NamedTuple):
    """A plausible increase and how it was decided (a plain rise, a reset or a rollover)."""

    delta: float
    event: CounterEvent


def count_bound(ideal_cycle_us: float | None) -> Bound:
    """The bound of a piece counter of a machine whose fastest ideal cycle is ``ideal_cycle_us``."""
    if ideal_cycle_us:
        return Bound(_US_PER_S / ideal_cycle_us * COUNT_MARGIN, COUNT_SLACK)
    return Bound(DEFAULT_MAX_COUNT_PER_S, COUNT_SLACK)


def energy_bound(rated_kw: float | None, scale: float = 1.0) -> Bound:
    """The bound of an energy register counting ``kWh / scale`` units (power: use ``max_kw``)."""
    kw = max_kw(rated_kw)
    return Bound(kw / 3600.0 / scale)


def max_kw(rated_kw: float | None) -> float:
    """The largest plausible power of a machine, in kW."""
    return rated_kw * POWER_MARGIN if rated_kw else DEFAULT_MAX_KW


def plausible_time(ts: int) -> bool:
    """Whether ``ts`` (µs since the epoch) lies in 2000-2099, where a set clock can be."""
    return EARLIEST_US <= ts < LATEST_US


def judge(
    previous: float, current: float, elapsed_us: float, bound: Bound, modulus: float | None = None
) -> Increase | str:
    """The increase of a cumulative value from ``previous`` to ``current``, or why it is refused.

    Args:
        previous: the baseline (the last value taken).
        current: the new sample, already known to be a finite number.
        elapsed_us: microseconds between the two samples.
        bound: what the machine can make per second.
        modulus: the register's rollover value, if it has one.

    Returns:
        An :class:`Increase`, or a message saying why the value is implausible.
    """
    if not 0 <= current <= MAX_EXACT:
        return f"{current!r} is not a meter reading (it must lie in 0 .. 2**53)"
    most = bound.max_increase(elapsed_us)
    if current < previous:
        return _fall(previous, current, most, bound, modulus)
    delta = current - previous
    if delta > most:
        return f"an increase of {delta:g} in {elapsed_us / _US_PER_S:g} s is more than the {most:g} possible"
    return Increase(delta, CounterEvent.NONE)


def _fall(
    previous: float, current: float, most: float, bound: Bound, modulus: float | None
) -> Increase | str:
    """A value lower than the baseline: a rollover, a reset, or a glitch."""
    if modulus is not None and previous >= _NEAR_TOP * modulus and current < modulus:
        wrapped = current + modulus - previous
        if wrapped <= most:
            return Increase(wrapped, CounterEvent.ROLLOVER)
    if current <= bound.slack or current < RESET_BELOW * previous:
        if current > most:
            return f"a reset to {current:g} is more than the {most:g} possible since the last value"
        return Increase(current, CounterEvent.RESET)
    return f"a fall from {previous:g} to {current:g} is neither a reset nor a rollover (a glitch)"


class Rebase:
    """The readings refused since the last accepted one, to follow a meter that was replaced.

    Plain data in a list ``[[ts, value], ...]`` so it copies and serialises with the state.
    """

    @staticmethod
    def offer(suspects: list[list[float]], ts: int, value: float, bound: Bound) -> bool:
        """Add a refused reading; True when :data:`REBASE_AFTER` readings now agree with each other.

        ``suspects`` is changed in place: a reading that does not follow on from the last suspect
        (a plausible increase from it) starts a new run of suspects.
        """
        if suspects:
            last_ts, last_value = suspects[-1]
            verdict = judge(last_value, value, ts - last_ts, bound)
            if not isinstance(verdict, Increase) or verdict.event is not CounterEvent.NONE:
                suspects.clear()
        suspects.append([ts, value])
        if len(suspects) > REBASE_AFTER:
            del suspects[0]
        return len(suspects) >= REBASE_AFTER
