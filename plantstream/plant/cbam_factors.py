"""Shipped default factors of CBAM source streams: carbonates, oxides, PFCs and GWPs (tables only).

The plant file names these keys (``composition: {CaCO3: 0.78}``, ``cell_technology: CWPB``), so the
loader checks them here; the arithmetic is in streams/cbam_sources.py. Sources, keys of
docs/references.md:

- **Carbonates** (method A, input method): t CO2 released per t of carbonate calcined, the
  stoichiometric ratio ``n x M(CO2) / M(carbonate)`` (n CO2 per formula unit: 2 for dolomite).
  IPCC 2006 prints five decimals (CaCO3 0.43971, MgCO3 0.52197, CaMg(CO3)2 0.47732, FeCO3
  0.37987, MnCO3 0.38286, Na2CO3 0.41492) [IPCC06-V3 Table 2.1, read in a secondary copy]; we
  ship them rounded to the three decimals the MRR prints (CaCO3 0.440, MgCO3 0.522)
  [MRR-2018-2066 Annex VI section 2, Table 2; verify the other rows against it].
- **Oxides** (method B, output method): t CO2 per t of CaO or MgO in the product that came from
  carbonates, ``M(CO2) / M(oxide)``: CaO 0.785, MgO 1.092 [MRR-2018-2066 Annex VI section 2,
  Table 3], the same stoichiometry as the carbonates (44.01 / 56.08 and 44.01 / 40.30).
- **PFCs by the slope method**: the slope emission factor ``SEF_CF4`` (kg CF4 per t Al per
  anode-effect minute per cell-day) and the weight fraction ``F_C2F6`` (t C2F6 per t CF4) per
  cell technology: IR 2025/2547 Annex II point B.7.1, Table 2, the minimum requirement
  [IR-2025-2547]. Those are not the IPCC 2006 Tier 2 defaults (SWPB, VSS and HSS differ); the
  regulation's are shipped. For modern point-fed prebake cells without automated anode-effect
  intervention (PFPB MW) the table gives no value: the operator measures, or uses CWPB's.
- **GWPs** of the gases CBAM counts beside CO2 (Annex I of Reg. 2023/956: N2O for nitric acid and
  fertilisers, PFCs for aluminium): N2O 265, CF4 6 630, C2F6 11 100 (AR5), IR 2025/2547 Annex II
  point G, Table 6, as the MRR's Annex VI Table 6 [IR-2025-2547; MRR-2018-2066; IPCC-GWP].

The IR 2025/2547 tables were read in a verbatim extract of the Official Journal text kept in a
third party's public repository; **verify** them against EUR-Lex before release.
"""

from __future__ import annotations

__all__ = [
    "CARBONATES",
    "CO2_PER_C",
    "GWP_CBAM",
    "OXIDES",
    "PFC_SLOPE_DEFAULTS",
    "STOICHIOMETRIC",
]

CARBONATES: dict[str, float] = {
    "CaCO3": 0.440,
    "MgCO3": 0.522,
    "CaMg(CO3)2": 0.477,
    "FeCO3": 0.380,
    "MnCO3": 0.383,
    "Na2CO3": 0.415,
}
"""t CO2 per t of carbonate (method A) [MRR-2018-2066 Annex VI Table 2; IPCC06-V3 Table 2.1]."""

OXIDES: dict[str, float] = {"CaO": 0.785, "MgO": 1.092}
"""t CO2 per t of oxide from carbonates (method B, clinker output method) [MRR-2018-2066 Annex VI Table 3]."""

STOICHIOMETRIC: dict[str, float] = {**CARBONATES, **OXIDES}
"""Every key a source stream's ``composition`` may name."""

CO2_PER_C = 44.01 / 12.011
"""t CO2 per t C: the molar masses of CO2 and C [IR-2025-2547 Annex II B; MRR-2018-2066 Art. 25]."""

PFC_SLOPE_DEFAULTS: dict[str, tuple[float, float]] = {
    "PFPB_L": (0.122, 0.097),
    "PFPB_M": (0.104, 0.057),
    "CWPB": (0.143, 0.121),
    "SWPB": (0.233, 0.280),
    "VSS": (0.058, 0.086),
    "HSS": (0.165, 0.077),
}
"""Cell technology -> (SEF_CF4 in (kg CF4/t Al)/(AE-min/cell-day), F_C2F6 in t C2F6/t CF4).

Legacy and modern point-feed prebake, centre-worked and side-worked prebake, vertical- and
horizontal-stud Soederberg [IR-2025-2547 Annex II B.7.1 Table 2].
"""

GWP_CBAM: dict[str, float] = {"N2O": 265.0, "CF4": 6630.0, "C2F6": 11100.0}
"""GWP-100 of the non-CO2 gases CBAM counts (AR5) [IR-2025-2547 Annex II G Table 6; IPCC-GWP]."""
