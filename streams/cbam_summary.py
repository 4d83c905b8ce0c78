"""What leaves the plant: the CBAM summary report, its allowed schema, and the full operator report.

The summary is built from the item list of IR (EU) 2025/2547 Annex IV §1.2 [ANNEX-IV]
and recital 17 of 2025/2547 [IR-2025-2547], not as a projection of the full report. Its
schema is :class:`CbamSummary`, closed at every level (unknown keys are refused), and is the one
place that defines what may appear: annual, per-good figures and the installation's identity.
Per-machine, per-shift, per-batch or per-day production data, fuel quantities, activity levels,
precursor masses and OEE never appear in it; they go to the operator report for the verifier.

Rounding: SEE and emission figures to 3 decimals, half-up, as the default-value tables print them
(streams.cbam.round_template [CBAM-NOTE]). Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from datetime import date, timedelta
from typing import Any, Literal, cast

from pydantic import BaseModel, ConfigDict, model_validator

from plantstream.plant.cbam_factors import GWP_CBAM
from plantstream.plant.cbam_parameters import QUALIFYING_PARAMETERS
from streams import cbam
from streams.cbam_completeness import NOT_MEASURED, ProcessCompleteness
from streams.cbam_ledger import CbamSpec, GoodFigures, PeriodFigures

__all__ = [
    "SUMMARY_FORMAT",
    "CbamSummary",
    "SummaryCarbonPrice",
    "SummaryVerification",
    "build_operator_report",
    "build_summary",
    "completeness_statement",
    "factor_table",
    "percent",
]

SUMMARY_FORMAT = "plantstream-cbam-summary/3"


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_reasons(model: BaseModel, reasons: dict[str, str]) -> None:
    """Every empty figure has a reason, and every reason names an empty figure of ``model``."""
    for name, reason in reasons.items():
        if name not in type(model).model_fields or getattr(model, name) is not None:
            raise ValueError(f"null_reasons[{name!r}]: not an empty figure of this item")
        if not reason:
            raise ValueError(f"null_reasons[{name!r}]: the reason is empty")


class SummaryOperator(_Closed):
    """Item 1: the operator."""

    name: str
    address: str | None
    contact: str | None


class SummaryCoordinates(_Closed):
    """Item 2: coordinates of the main emission source."""

    latitude: float
    longitude: float


class SummaryInstallation(_Closed):
    """Item 2: the installation."""

    name: str
    registry_id: str | None
    country: str
    city: str | None
    address: str | None
    unlocode: str | None
    coordinates: SummaryCoordinates | None
    economic_activity: str | None


class SummaryPeriod(_Closed):
    """The reporting period, first and last day (calendar year by default, 2025/2547 Art. 7)."""

    start: date
    end: date


MeterKind = Literal["electricity", "source_stream", "fuel", "production", "transfer"]
"""The kinds of meters of :data:`streams.cbam_completeness.METER_KINDS`."""


class SummaryKindShare(_Closed):
    """The completeness of one kind of meter of a process: hours with data over operating hours."""

    kind: MeterKind
    share: float


class SummaryCompleteness(_Closed):
    """A process's data completeness in the period (streams.cbam_completeness); no time stamps."""

    operating_hours: float
    hours_with_data: float | None
    share: float | None
    gaps: int
    longest_gap_hours: float | None
    by_meter_kind: list[SummaryKindShare] = []
    """The share per kind of meter the figures rest on; ``share`` is the lowest of them (where the
    electricity is metered). Kinds only, as values: no meter, stream, machine or quantity is named
    (Annex IV §1.2). Empty in summaries written before it was kept."""
    null_reasons: dict[str, str]

    @model_validator(mode="after")
    def _reasons(self) -> SummaryCompleteness:
        _check_reasons(self, self.null_reasons)
        if self.share is None and "share" not in self.null_reasons:
            raise ValueError("share is null without a reason in null_reasons")
        if self.share is not None and self.by_meter_kind:
            lowest = min(k.share for k in self.by_meter_kind)
            # Both are rounded from the same figure: any difference is a changed summary.
            if abs(self.share - lowest) > 1e-9:
                raise ValueError(f"share {self.share} is not the lowest share of by_meter_kind ({lowest})")
        return self


class SummaryDataCompleteness(_Closed):
    """Whether the report rests on complete data, and what it says if not.

    ``partial`` is true when a process is under ``threshold`` (or cannot be measured) and the
    report was issued anyway with ``--allow-partial``; without it such a report is refused.
    """

    threshold: float
    partial: bool
    gaps_filled: Literal[False]
    statement: str


class SummaryProcess(_Closed):
    """Items 3, 5 and 6: a production process, its route, its goods and its emissions."""

    id: str
    name: str
    route: str
    goods_categories: list[str]
    cn_codes: list[str]
    direct_emissions_t: float
    indirect_emissions_t: float | None
    """The whole figure: the process's electricity x the CBAM factor, whatever its goods."""
    indirect_emissions_counted_t: float | None
    """The part of it attributed to goods that carry indirect emissions (Art. 7(1))."""
    data_completeness: SummaryCompleteness
    null_reasons: dict[str, str]

    @model_validator(mode="after")
    def _reasons(self) -> SummaryProcess:
        _check_reasons(self, self.null_reasons)
        if self.indirect_emissions_t is None and "indirect_emissions_t" not in self.null_reasons:
            raise ValueError("indirect_emissions_t is null without a reason in null_reasons")
        return self


class SummaryGood(_Closed):
    """Item 4: a good's specific embedded emissions, which of them count, and the shares on defaults.

    ``see_direct``, ``see_indirect`` (the whole indirect figure, for every good: its electricity
    and its precursors' times their factors) and ``see_total`` (their sum) describe the good;
    ``see_cbam`` is what counts under Art. 7(1) of Reg. 2023/956: ``see_direct +
    see_indirect_counted``, direct only for an Annex II good (``direct_emissions_only``) except the
    indirect emissions of non-Annex II precursors, which the cross-channel rule includes; for other
    goods direct and indirect, except the indirect emissions of Annex II precursors
    (2025/2547 Annex I pt 3.1). ``see_cbam_rule`` says so in words. A figure that cannot be
    computed is null and ``null_reasons`` says why.
    """

    cn_code: str
    name: str
    goods_category: str
    production_process: str
    route: str
    direct_emissions_only: bool
    see_direct: float | None
    see_indirect: float | None
    see_total: float | None
    see_indirect_counted: float | None
    see_cbam: float | None
    see_cbam_rule: str
    null_reasons: dict[str, str]
    default_share_direct: float | None
    default_share_indirect: float | None
    default_share_total: float | None
    default_share_cbam: float | None
    indirect_share_actual: float | None
    indirect_share_default: float | None
    electricity_factor_t_per_mwh: float
    electricity_factor_basis: str
    electricity_factor_source: str
    specific_electricity_mwh_per_t: float | None
    specific_embedded_free_allocation: float | None
    benchmark_confirmation: str | None
    qualifying_parameters: dict[str, float | str]
    """The sector's qualifying parameters as the operator declares them (Annex IV section 2)."""
    qualifying_parameters_not_declared: list[str]
    """Those of the good's sector the plant file does not declare: the importer sees what is missing."""
    data_completeness: float | None
    """The lowest completeness share of the processes behind the good (its own, its precursors' made here)."""
    data_completeness_processes: list[str]

    @model_validator(mode="after")
    def _reasons(self) -> SummaryGood:
        _check_reasons(self, self.null_reasons)
        for name in ("see_direct", "see_indirect", "see_total", "see_cbam"):
            if getattr(self, name) is None and name not in self.null_reasons:
                raise ValueError(f"{name} is null without a reason in null_reasons")
        return self


class SummaryDefaultPrecursor(_Closed):
    """Item 12: a precursor on default values."""

    cn_code: str
    name: str
    origin: str
    default_direct: float
    default_indirect: float | None
    mark_up: float
    default_source: str
    used_in: list[str]


class SummaryActualPrecursor(_Closed):
    """Items 13 and 16: a precursor on actual (verified) values, with its producer's ids."""

    cn_code: str
    name: str
    origin: str
    production_period: str | None
    see_direct: float
    see_indirect: float
    supplier_operator_id: str | None
    supplier_installation_id: str | None
    verification_report: str | None
    used_in: list[str]


class SummaryDeclarations(_Closed):
    """Items 7-11, 14 and 15, as the operator declares them."""

    measurable_heat: str
    zero_rated_fuels: str
    waste_gases: str
    co2_capture: str
    own_electricity_generation: str
    precursor_period_weighting: str
    multi_source_precursors: str


class SummaryVerification(_Closed):
    """Who verified the installation's own data for the reporting year, if anyone has."""

    verified: bool
    verifier: str | None
    accreditation: str | None
    statement_reference: str | None
    null_reasons: dict[str, str]

    @model_validator(mode="after")
    def _reasons(self) -> SummaryVerification:
        _check_reasons(self, self.null_reasons)
        if self.verified != (self.statement_reference is not None):
            raise ValueError("verified is true exactly when a statement_reference is given")
        return self


class SummaryCarbonPrice(_Closed):
    """A carbon price paid in the country of origin (Art. 9 of Reg. 2023/956), as declared."""

    instrument: str
    amount: float
    currency: str
    rebate: str | None
    cn_codes: list[str]


class CbamSummary(_Closed):
    """The summary report (IR 2025/2547 Annex IV §1.2): the only artefact meant for importers."""

    format: Literal["plantstream-cbam-summary/3"]
    legal_basis: str
    reporting_period: SummaryPeriod
    operator: SummaryOperator
    installation: SummaryInstallation
    processes: list[SummaryProcess]
    goods: list[SummaryGood]
    total_direct_emissions_t: float
    total_indirect_emissions_t: float | None
    """Whole: the electricity of every CBAM process; null when one of them is not metered."""
    total_indirect_emissions_counted_t: float | None
    data_completeness: SummaryDataCompleteness
    verification: SummaryVerification
    carbon_prices_paid: list[SummaryCarbonPrice]
    """Empty when none is declared for the year."""
    precursors_default: list[SummaryDefaultPrecursor]
    precursors_actual: list[SummaryActualPrecursor]
    declarations: SummaryDeclarations


_LEGAL_BASIS = (
    "Reg. (EU) 2023/956 as amended by Reg. (EU) 2025/2083; summary report of IR (EU) 2025/2547 "
    "Annex IV section 1.2; default values IR (EU) 2025/2621 as corrected by IR (EU) 2026/1740"
)


def _r(value: float | None) -> float | None:
    return None if value is None else cbam.round_template(value)


def _share(value: float | None) -> float | None:
    # Shares to 4 decimals (0.01 %), as ratios elsewhere in the pipeline are checked.
    return None if value is None else round(value, 4)


_NO_FREE_ALLOCATION = (
    "not computed here: the free-allocation adjustment follows the CBAM benchmarks of IR (EU) "
    "2025/2620 and the EU ETS free allocation, which the declarant applies"
)
_NOT_VERIFIED = "no verification statement for this year in the plant file (cbam.verifications)"


def _verification(spec: CbamSpec, year: int) -> SummaryVerification:
    found = next((v for v in spec.verifications if v.year == year), None)
    if found is None:
        reasons = {"verifier": _NOT_VERIFIED, "statement_reference": _NOT_VERIFIED}
        return SummaryVerification(
            verified=False, verifier=None, accreditation=None, statement_reference=None, null_reasons=reasons
        )
    return SummaryVerification(
        verified=True,
        verifier=found.verifier,
        accreditation=found.accreditation,
        statement_reference=found.statement_reference,
        null_reasons={},
    )


def _carbon_prices(spec: CbamSpec, year: int) -> list[SummaryCarbonPrice]:
    return [
        SummaryCarbonPrice(
            instrument=price.instrument,
            amount=price.amount,
            currency=price.currency,
            rebate=price.rebate,
            cn_codes=sorted({spec.goods[gid].cn_code for gid in price.goods}),
        )
        for price in spec.carbon_prices_paid
        if price.year == year
    ]


_RULE_ANNEX_II = (
    "direct emissions only (Annex II good, Art. 7(1) of Reg. 2023/956); the indirect emissions of "
    "non-Annex II precursors are included (IR 2025/2547 Annex I pt 3.1)"
)
_RULE_OTHER = (
    "direct and indirect emissions (Art. 7(1) of Reg. 2023/956); the indirect emissions of Annex II "
    "precursors are excluded (IR 2025/2547 Annex I pt 3.1)"
)


def _processes_behind(spec: CbamSpec, gid: str) -> list[str]:
    """The good's process and those of its precursors made here, recursively (sorted)."""
    found: set[str] = set()
    todo = [gid]
    while todo:
        good = spec.goods[todo.pop()]
        if good.process not in found:
            found.add(good.process)
        todo += [use.ref for use in good.precursors if use.kind == "good"]
    return sorted(found)


def _good(
    spec: CbamSpec, gid: str, figures: GoodFigures, completeness: Mapping[str, ProcessCompleteness]
) -> SummaryGood:
    good = spec.goods[gid]
    process = spec.processes[good.process]
    el = spec.electricity
    default_indirect = figures.default_share("indirect")
    mwh = figures.electricity_mwh
    specific_el = mwh / figures.activity_t if mwh is not None and figures.activity_t > 0 else None
    reasons = dict(figures.reasons)
    if "see_cbam" in reasons:
        reasons["see_indirect_counted"] = reasons["see_cbam"]
    if specific_el is None:
        unmetered = f"process {good.process!r} has machines without an electricity meter"
        reasons["specific_electricity_mwh_per_t"] = reasons.get("see_direct", unmetered)
    reasons["specific_embedded_free_allocation"] = _NO_FREE_ALLOCATION
    reasons["benchmark_confirmation"] = _NO_FREE_ALLOCATION
    declared = dict(good.qualifying_parameters)
    behind = _processes_behind(spec, gid)
    shares = [completeness[pid].share for pid in behind]
    lowest = None if None in shares else min(share or 0.0 for share in shares)
    if lowest is None:
        unmeasured = [pid for pid in behind if completeness[pid].share is None]
        reasons["data_completeness"] = f"process(es) {', '.join(unmeasured)}: {NOT_MEASURED}"
    return SummaryGood(
        cn_code=good.cn_code,
        name=good.name,
        goods_category=good.category.value,
        production_process=process.id,
        route=process.route,
        direct_emissions_only=not good.carries_indirect,
        see_direct=_r(figures.see_direct),
        see_indirect=_r(figures.see_indirect),
        see_total=_r(figures.see_total),
        see_indirect_counted=_r(figures.see_indirect_counted),
        see_cbam=_r(figures.see_cbam),
        see_cbam_rule=_RULE_OTHER if good.carries_indirect else _RULE_ANNEX_II,
        null_reasons=reasons,
        default_share_direct=_share(figures.default_share("direct")),
        default_share_indirect=_share(default_indirect),
        default_share_total=_share(figures.default_share("total")),
        default_share_cbam=_share(figures.default_share("cbam")),
        indirect_share_actual=None if default_indirect is None else _share(1 - default_indirect),
        indirect_share_default=_share(default_indirect),
        electricity_factor_t_per_mwh=el.t_per_mwh,
        electricity_factor_basis=el.basis,
        electricity_factor_source=el.source,
        specific_electricity_mwh_per_t=_r(specific_el),
        specific_embedded_free_allocation=None,
        benchmark_confirmation=None,
        qualifying_parameters=declared,
        qualifying_parameters_not_declared=sorted(
            set(QUALIFYING_PARAMETERS[good.category.value]) - set(declared)
        ),
        data_completeness=_share(lowest),
        data_completeness_processes=behind,
    )


def _counted_indirect(indirect_t: float | None, goods: list[tuple[bool, float]]) -> float | None:
    """The part of a process's indirect emissions attributed to goods that carry them (by mass)."""
    carrying = sum(mass for carries, mass in goods if carries)
    made = sum(mass for _, mass in goods)
    # Nothing made: the share follows the goods' kind, all or nothing.
    share = carrying / made if made > 0 else float(all(carries for carries, _ in goods))
    if share == 0.0:
        return 0.0
    return None if indirect_t is None else indirect_t * share


def _used_in(spec: CbamSpec, precursor_id: str) -> list[str]:
    return sorted(
        {
            g.cn_code
            for g in spec.goods.values()
            if any(u.kind == "purchased" and u.ref == precursor_id for u in g.precursors)
        }
    )


def _process_completeness(result: ProcessCompleteness) -> SummaryCompleteness:
    longest = max((gap.hours for gap in result.gaps), default=None)
    hours = result.hours_with_data
    return SummaryCompleteness(
        operating_hours=round(result.operating_hours, 3),
        hours_with_data=None if hours is None else round(hours, 3),
        share=_share(result.share),
        gaps=len(result.gaps),
        longest_gap_hours=None if longest is None else round(longest, 3),
        by_meter_kind=[
            SummaryKindShare(kind=cast(MeterKind, k.kind), share=round(k.share, 4)) for k in result.kinds
        ],
        null_reasons={}
        if result.share is not None
        else {"share": NOT_MEASURED, "hours_with_data": NOT_MEASURED},
    )


def percent(share: float) -> str:
    """A share as a percentage to at most 2 decimals: ``0.95`` -> ``95 %``, ``0.00548`` -> ``0.55 %``."""
    return f"{share * 100:.2f}".rstrip("0").rstrip(".") + " %"


def completeness_statement(
    completeness: Mapping[str, ProcessCompleteness], threshold: float, allow_partial: bool
) -> SummaryDataCompleteness:
    """What the summary says about its data: complete, or partial and issued anyway.

    Args:
        completeness: process id -> its completeness over the reporting period.
        threshold: the share of operating hours with data each process needs.
        allow_partial: the report was asked for with ``--allow-partial``.
    """
    under = [c for c in completeness.values() if not c.meets(threshold)]
    not_filled = "gaps are not filled: the figures cover only the hours with data"
    if not under:
        text = (
            f"every process has data for at least {percent(threshold)} of its operating hours; {not_filled}"
        )
        return SummaryDataCompleteness(threshold=threshold, partial=False, gaps_filled=False, statement=text)
    parts = [
        f"process {c.process!r}: "
        + ("not measurable" if c.share is None else f"{percent(c.share)} of its operating hours")
        + _kinds_under(c, threshold)
        for c in under
    ]
    text = (
        f"PARTIAL DATA, issued with --allow-partial: {'; '.join(parts)} "
        f"(threshold {percent(threshold)}); {not_filled}"
    )
    if not allow_partial:
        raise ValueError(f"data under the completeness threshold without allow_partial: {'; '.join(parts)}")
    return SummaryDataCompleteness(threshold=threshold, partial=True, gaps_filled=False, statement=text)


def _kinds_under(result: ProcessCompleteness, threshold: float) -> str:
    """The kinds of meters under ``threshold``, when the process has several: `` (source stream 90 %)``."""
    if len(result.kinds) < 2:
        return ""
    under = [f"{k.kind.replace('_', ' ')} {percent(k.share)}" for k in result.kinds if k.share < threshold]
    return f" ({', '.join(under)})" if under else ""


def build_summary(
    spec: CbamSpec,
    year: PeriodFigures,
    completeness: Mapping[str, ProcessCompleteness],
    data: SummaryDataCompleteness,
) -> CbamSummary:
    """The summary report of one reporting year from the year's figures.

    Args:
        spec: the resolved ``cbam`` section.
        year: the figures of the reporting year (``period_figures`` over the calendar year).
        completeness: process id -> its data completeness over the year.
        data: the statement on the data (see :func:`completeness_statement`).
    """
    inst = spec.installation
    processes = []
    counted_total: float | None = 0.0
    for pid, process in spec.processes.items():
        goods = [g for g in spec.goods.values() if g.process == pid]
        figures = year.processes[pid]
        counted = _counted_indirect(
            figures.indirect_t, [(g.carries_indirect, year.goods[g.id].activity_t) for g in goods]
        )
        counted_total = None if counted is None or counted_total is None else counted_total + counted
        reasons = {}
        if figures.indirect_t is None:
            reasons["indirect_emissions_t"] = "a machine of the process has no electricity meter"
            if counted is None:
                reasons["indirect_emissions_counted_t"] = reasons["indirect_emissions_t"]
        processes.append(
            SummaryProcess(
                id=pid,
                name=process.name,
                route=process.route,
                goods_categories=sorted({g.category.value for g in goods}),
                cn_codes=sorted({g.cn_code for g in goods}),
                direct_emissions_t=cbam.round_template(figures.direct_t),
                indirect_emissions_t=_r(figures.indirect_t),
                indirect_emissions_counted_t=_r(counted),
                data_completeness=_process_completeness(completeness[pid]),
                null_reasons=reasons,
            )
        )
    defaults, actuals = [], []
    for pid, pre in spec.precursors.items():
        if pre.basis == "default" and pre.default is not None:
            defaults.append(
                SummaryDefaultPrecursor(
                    cn_code=pre.cn_code,
                    name=pre.name,
                    origin=pre.origin,
                    default_direct=pre.default.direct,
                    default_indirect=pre.default.indirect,
                    mark_up=cbam.default_markup(pre.category, year.start.year),
                    default_source=pre.default.source,
                    used_in=_used_in(spec, pid),
                )
            )
        elif pre.see_direct is not None and pre.see_indirect is not None:
            actuals.append(
                SummaryActualPrecursor(
                    cn_code=pre.cn_code,
                    name=pre.name,
                    origin=pre.origin,
                    production_period=pre.production_period,
                    see_direct=pre.see_direct,
                    see_indirect=pre.see_indirect,
                    supplier_operator_id=pre.supplier_operator_id,
                    supplier_installation_id=pre.supplier_installation_id,
                    verification_report=pre.verifier_report,
                    used_in=_used_in(spec, pid),
                )
            )
    parts = [p.indirect_t for p in year.processes.values()]
    indirect_total = None if None in parts else sum(part or 0.0 for part in parts)
    coords = inst.coordinates
    return CbamSummary(
        format=SUMMARY_FORMAT,
        legal_basis=_LEGAL_BASIS,
        reporting_period=SummaryPeriod(start=year.start, end=year.end - timedelta(days=1)),
        operator=SummaryOperator(
            name=spec.operator.name, address=spec.operator.address, contact=spec.operator.contact
        ),
        installation=SummaryInstallation(
            name=inst.name,
            registry_id=inst.registry_id,
            country=inst.country,
            city=inst.city,
            address=inst.address,
            unlocode=inst.unlocode,
            coordinates=(
                SummaryCoordinates(latitude=coords.latitude, longitude=coords.longitude) if coords else None
            ),
            economic_activity=inst.economic_activity,
        ),
        processes=processes,
        goods=[_good(spec, gid, figures, completeness) for gid, figures in year.goods.items()],
        total_direct_emissions_t=cbam.round_template(year.direct_t),
        total_indirect_emissions_t=_r(indirect_total),
        total_indirect_emissions_counted_t=_r(counted_total),
        data_completeness=data,
        verification=_verification(spec, year.start.year),
        carbon_prices_paid=_carbon_prices(spec, year.start.year),
        precursors_default=defaults,
        precursors_actual=actuals,
        declarations=SummaryDeclarations(**spec.declarations.model_dump()),
    )


def factor_table(spec: CbamSpec, year: int, fuels: dict[str, Any]) -> dict[str, Any]:
    """Every factor behind the figures, with its source and year (an evidence set of its own).

    Args:
        spec: the resolved ``cbam`` section.
        year: the reporting year (mark-ups and CBAM factor).
        fuels: fuel key -> properties used for Scope 1 (NCV, EF, source) and the GWP set.
    """
    el = spec.electricity
    return {
        "electricity": {
            "t_per_mwh": el.t_per_mwh,
            "basis": el.basis,
            "country": el.country,
            "source": el.source,
            "link": el.link,
            "year": el.year,
        },
        "scope1": fuels,
        "source_streams": {
            sid: {
                "process": stream.process,
                "method": stream.method,
                "material": stream.material,
                "direction": stream.direction,
                "activity": {"machine": stream.machine, "t_per_unit": stream.t_per_unit},
                "factors": [
                    {**given, "resolved": asdict(used)}
                    for given, used in zip(stream.provenance, stream.factors, strict=True)
                ],
            }
            for sid, stream in spec.streams.items()
        },
        "gwp_cbam": {**GWP_CBAM, "source": "AR5, IR 2018/2066 Annex VI Table 6"},
        "precursors": {
            pid: {
                "cn_code": p.cn_code,
                "basis": p.basis,
                "see_direct": p.see_direct,
                "see_indirect": p.see_indirect,
                "default": p.default.model_dump() if p.default else None,
                "mark_up": cbam.default_markup(p.category, year) if p.basis == "default" else None,
                "values_used": dict(zip(("direct", "indirect", "on_defaults"), p.values(year), strict=True)),
                "verification_report": p.verifier_report,
            }
            for pid, p in spec.precursors.items()
        },
        "cbam_factor": {"year": year, "value": cbam.cbam_factor(year), "source": "IR 2025/2620 Annex"},
        "rounding": "3 decimals, half-up (streams.cbam.round_template)",
    }


def _period_dict(spec: CbamSpec, figures: PeriodFigures) -> dict[str, Any]:
    return {
        "period": figures.label,
        "start": figures.start.isoformat(),
        "end_exclusive": figures.end.isoformat(),
        "processes": {
            pid: {
                "machine_shares": {m: spec.processes[pid].share(m) for m in spec.processes[pid].machines},
                "attributed_direct_t": p.direct_t,
                "fuel_meters_co2_t": p.fuel_co2_t,
                "source_streams": {
                    sid: {
                        "method": spec.streams[sid].method,
                        "activity_t": f.activity_t,
                        "co2_t": f.emissions.co2_t,
                        "n2o_t": f.emissions.n2o_t,
                        "cf4_t": f.emissions.cf4_t,
                        "c2f6_t": f.emissions.c2f6_t,
                        "co2e_t": f.emissions.co2e_t,
                    }
                    for sid, f in p.streams.items()
                },
                "electricity_mwh": p.electricity_mwh,
                "attributed_indirect_t": p.indirect_t,
                "machines_without_electricity_meter": list(spec.processes[pid].unmetered),
                "activity_t": p.activity_t,
                "window_points": p.windows,
            }
            for pid, p in figures.processes.items()
        },
        "goods": {
            gid: {
                "cn_code": spec.goods[gid].cn_code,
                "process": g.process,
                "output_machine": spec.goods[gid].output_machine,
                "t_per_unit": spec.goods[gid].t_per_unit,
                "activity_t": g.activity_t,
                "transferred_t": g.transferred_t,
                "sold_t": g.sold_t,
                "transfer_check": g.transfer_excess or "consumed here no more than made",
                "attributed_direct_t": g.attributed_direct_t,
                "attributed_indirect_t": g.attributed_indirect_t,
                "electricity_mwh": g.electricity_mwh,
                "precursors": [
                    {
                        "kind": p.kind,
                        "ref": p.ref,
                        "cn_code": p.cn_code,
                        "mass_t": p.mass_t,
                        "mass_basis": _mass_basis(spec, gid, i),
                        "see_direct": p.see_direct,
                        "see_indirect": p.see_indirect,
                        "see_indirect_counted": p.see_indirect_counted,
                        "indirect_counted": p.counts_indirect,
                        "default_direct": p.default_direct,
                        "default_indirect": p.default_indirect,
                        "default_indirect_counted": p.default_indirect_counted,
                        "embedded_direct_t": p.embedded_direct_t,
                        "embedded_indirect_t": p.embedded_indirect_t,
                        "embedded_indirect_counted_t": p.embedded_indirect_counted_t,
                    }
                    for i, p in enumerate(g.precursors)
                ],
                "see_direct": g.see_direct,
                "see_indirect": g.see_indirect,
                "see_total": g.see_total,
                "see_indirect_counted": g.see_indirect_counted,
                "see_cbam": g.see_cbam,
                "default_direct": g.default_direct,
                "default_indirect": g.default_indirect,
                "default_indirect_counted": g.default_indirect_counted,
                "default_share_cbam": g.default_share("cbam"),
                "default_share_total": g.default_share("total"),
                "null_reasons": g.reasons,
            }
            for gid, g in figures.goods.items()
        },
    }


def _mass_basis(spec: CbamSpec, gid: str, index: int) -> str:
    use = spec.goods[gid].precursors[index]
    if use.machine is not None:
        return f"metered on machine {use.machine!r}"
    return "per tonne of good" if use.mass_t_per_t is not None else "declared per year"


def build_operator_report(
    spec: CbamSpec,
    periods: list[PeriodFigures],
    machine_totals: dict[str, dict[str, Any]],
    factors: dict[str, Any],
    evidence: dict[str, Any],
) -> dict[str, Any]:
    """The full internal report for the verifier: every input and intermediate figure.

    Args:
        spec: the resolved ``cbam`` section.
        periods: the year first, then its quarters and months.
        machine_totals: machine id -> the year's totals (good pieces, kWh, CO2 kg, windows).
        factors: the factor table (see :func:`factor_table`).
        evidence: figure -> the evidence sets (file, SHA-256) behind it.
    """
    return {
        "format": "plantstream-cbam-operator-report/1",
        "operator": spec.operator.model_dump(),
        "installation": spec.installation.model_dump(),
        "timezone": spec.timezone,
        "method": {
            "activity": "good pieces of the output machine x mass per piece, or a weigh-scale total (kg)",
            "direct": "CO2 of the fuels of the process's machines: fuel x NCV x EF_CO2 x OF (not the "
            "Scope 1 CO2e: CBAM does not count the CH4 and N2O of combustion), plus the process's "
            "source streams: standard method AD x EF x CF (fuels AD x NCV x EF x OF), mass balance "
            "44.01/12.011 x sum(AD x CC) with outputs negative, metered N2O x 265, PFCs by the slope "
            "method (CF4 x 6630 + C2F6 x 11100); factors valid on each day",
            "indirect": "electricity of the process's machines (MWh) x the CBAM electricity factor, for "
            "every good (whole figure); counted under Art. 7(1) for non-Annex II goods only, with the "
            "cross-channel rule for precursors (2025/2547 Annex I pt 3.1)",
            "allocation": "a process's attributed emissions split among its goods by mass",
            "see": "2025/2547 Annex III B Eq. 59-60 per channel; cross-channel rule Annex I pt 3.1",
        },
        "routes": {
            pid: {"route": p.route, "description": p.route_description} for pid, p in spec.processes.items()
        },
        "machine_totals": machine_totals,
        "periods": [_period_dict(spec, p) for p in periods],
        "factors": factors,
        "evidence": evidence,
        "declarations": spec.declarations.model_dump(),
    }
