"""Energy from power samples and cumulative registers, split exactly at window edges.

Sources: docs/references.md.
- Trapezoidal rule ``E = Σ (t[i+1] − t[i]) · (P[i] + P[i+1]) / 2`` [FLUX-INT]; sample-and-hold
  (left Riemann) ``E = Σ Δt · P[i]`` for devices that report on change. At a window edge P is
  interpolated linearly, so energy splits exactly between adjacent windows.
- Gaps longer than ``max_gap`` are not integrated across (§2.1).
- Specific energy consumption ``SEC = E / GQ`` over the same period as the OEE quantities (§2.3).

Times are integer microseconds; power in kW; energy in kWh.
"""

from __future__ import annotations

__all__ = ["US_PER_HOUR", "hold_kwh", "specific_energy", "trapezoid_kwh"]

US_PER_HOUR = 3_600_000_000


def trapezoid_kwh(t0: int, p0: float, t1: int, p1: float, a: int, b: int) -> float:
    """Energy of the straight line from (t0, p0) to (t1, p1) over the part [a, b] of [t0, t1].

    With ``a == t0`` and ``b == t1`` this is the trapezoid ``(t1 − t0) · (p0 + p1) / 2``.
    """
    span = t1 - t0
    pa = p0 + (p1 - p0) * (a - t0) / span
    pb = p0 + (p1 - p0) * (b - t0) / span
    return (b - a) * (pa + pb) / 2 / US_PER_HOUR


def hold_kwh(p0: float, a: int, b: int) -> float:
    """Energy of power held at ``p0`` over [a, b] (sample-and-hold)."""
    return (b - a) * p0 / US_PER_HOUR


def specific_energy(kwh: float, good_units: float) -> float | None:
    """Energy per good unit (kWh/unit), or ``None`` when nothing good was made."""
    if good_units <= 0:
        return None
    return kwh / good_units
