"""ISO 22400-2 KPIs beyond OEE, from summed time elements and stop counts.

Pure. Every KPI is computed from elements that sum (a window, a shift, a line, a site: sum the
elements first, then divide; ratios are never averaged, docs/references.md [ISO22400-2] and
[ISO-OWL]). A KPI whose denominator is zero is absent, never NaN. Times are seconds.

=========================  ===================================================  ===============
field                      formula (our elements)                               ISO 22400-2
=========================  ===================================================  ===============
``mtbf_s``                 ``run / failures``                                   MTBF = Σ TBF / FE
``mttr_s``                 ``down / failures``                                  MTTR = Σ TTR / FE
``setup_ratio``            ``setup / (run + setup)``                            SeR = ASUT / AUPT
``technical_efficiency``   ``run / (run + down)``                               TE = APT / (APT + ADET)
``scrap_ratio``            ``reject / total``                                   SQ / PQ
``rework_ratio``           ``rework / total`` (only with a rework count)        RQ / PQ
``stops``                  stops ended in the period, micro-stops not included
``micro_stops``            micro-stops ended in the period
``failures``               stops of state ``down`` (FE)
=========================  ===================================================  ===============

- **MTBF** [ISO-OWL MeanOperationTimeBetweenFailures]: "the expectation of the operating time
  between failures … Every time a failure happens, a new TBFi is obtained". The operating time
  between failures summed over the period is the actual production time APT (``run``), and the
  failure events FE are the stops in state ``down`` (a breakdown, ADET) longer than the micro-stop
  threshold, so MTBF = APT / FE.
- **MTTR** [ISO-OWL MeanTimeToRestoration]: the mean of the times to restoration TTRi over FE;
  their sum is the time in state ``down`` (ADET), so MTTR = ADET / FE.
- **Setup ratio, technical efficiency, scrap and rework ratio**: [ISO-OWL] formulas, as listed.
- **NEE** (``AUPT / PBT × E × QR``) is already a field of ``oee`` (:func:`streams.oee.oee_kpis`).

Counting stops and failures by the window they end in, and times by the window they fall in,
puts a failure and its repair time in different windows when it crosses an edge; over a shift
or a longer period (where MTBF and MTTR mean something) the sums agree.
"""

from __future__ import annotations

from streams.oee import OeeElements

__all__ = ["iso_kpis"]

_US = 1_000_000


def iso_kpis(e: OeeElements, *, has_counts: bool = True, rework: float | None = None) -> dict[str, float]:
    """The KPIs of ``e`` as point fields; undefined ones are absent.

    Example: run 7 h, down 1 h, setup 30 min, 4 failures, 6 stops, 2 micro-stops, 1 000 pieces
    of which 20 scrap and 10 reworked: MTBF = 25 200 s / 4 = 6 300 s, MTTR = 3 600 / 4 = 900 s,
    setup ratio = 1 800 / (25 200 + 1 800) = 0.0667, technical efficiency = 25 200 / 28 800 =
    0.875, scrap ratio 0.02, rework ratio 0.01.
    """
    out: dict[str, float] = {
        "stops": e.stops,
        "micro_stops": e.micro_stops,
        "failures": e.failures,
    }
    if e.failures > 0:
        out["mtbf_s"] = e.run / _US / e.failures
        out["mttr_s"] = e.down / _US / e.failures
    if e.run + e.setup > 0:
        out["setup_ratio"] = e.setup / (e.run + e.setup)
    if e.run + e.down > 0:
        out["technical_efficiency"] = e.run / (e.run + e.down)
    if has_counts and e.total > 0:
        out["scrap_ratio"] = e.reject / e.total
        if rework is not None:
            out["rework_ratio"] = rework / e.total
    return out
