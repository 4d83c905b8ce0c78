"""Cumulative counters and registers: the increase between two samples, with resets and rollovers.

Sources: docs/references.md [FLUX-INC], [PROM-1161].
- Reset (meter replaced, register cleared, power cycle): if ``C[i] < C[i-1]`` take ``ΔC = C[i]``,
  i.e. the counter restarted from 0 — what InfluxData's Flux ``increase()`` does [FLUX-INC]; the
  result is a lower bound on the true increase, as Prometheus notes [PROM-1161].
- Rollover of a register of modulus M: ``ΔC = C[i] + M − C[i−1]``, chosen when that increase is
  plausible: at most ``max_delta`` (P_max · Δt for energy) when a bound is known, otherwise when
  ``C[i−1]`` lies in the top tenth of the register ("``C[i−1]`` lies near M").
"""

from __future__ import annotations

from enum import StrEnum
from typing import NamedTuple

__all__ = ["CounterEvent", "Increase", "increase"]

_NEAR_TOP = 0.9


class CounterEvent(StrEnum):
    """What happened between two samples of a cumulative counter."""

    NONE = "none"
    RESET = "reset"
    ROLLOVER = "rollover"


class Increase(NamedTuple):
    """The increase between two samples and how it was decided."""

    delta: float
    event: CounterEvent


def increase(
    previous: float, current: float, modulus: float | None = None, max_delta: float | None = None
) -> Increase:
    """Return the non-negative increase of a cumulative counter from ``previous`` to ``current``.

    Args:
        previous: the earlier sample.
        current: the later sample.
        modulus: the register's rollover value (e.g. 2**32), if it has one.
        max_delta: the largest increase physically possible between the two samples, if known.

    Example (TV-EN-1): samples 1, 2, 8, 10, 0, 4 give increases 1, 6, 2, 0 (reset: 0), 4.
    """
    if current >= previous:
        return Increase(current - previous, CounterEvent.NONE)
    if modulus is not None and current < modulus:
        wrapped = current + modulus - previous
        plausible = wrapped <= max_delta if max_delta is not None else previous >= _NEAR_TOP * modulus
        if wrapped >= 0 and plausible:
            return Increase(wrapped, CounterEvent.ROLLOVER)
    return Increase(current, CounterEvent.RESET)
