"""The CBAM embedded-emissions ledger, pure part: window totals in, per-good SEE and figures out.

The durable part (sinks/cbam_store.py) keeps the closed machine windows the engine emits (the
latest revision of each identity) and sums them per local day and machine. This module turns such
machine totals into the ledger's figures [IR-2025-2547; IR-2025-2621; IR-2026-1740], for any period:

- **activity level** ``AL_g`` (t): the good pieces of the good's output machine x mass per piece,
  or a weigh-scale total in kg;
- **attributed direct emissions** of a production process: the CO2 of its machines' fuels
  (``carbon`` points' ``scope1_co2_kg``, fuels x NCV x EF_CO2 x OF; not the Scope 1 CO2e, which
  adds combustion's CH4 and N2O that CBAM does not count); of its goods, split by mass when a
  process makes several (one SEE for the process's aggregated goods, as the template's
  process-level attribution does);
- **electricity** (MWh) of the process's machines and **attributed indirect emissions**
  ``E_el x EF_el`` with the CBAM electricity factor (Commission default or documented actual);
- **precursors**: purchased (actual-and-verified, or default with the year's mark-up) and goods
  made in another process of the installation (recursive), with the cross-channel rule;
- **SEE** per good and channel with :func:`streams.cbam.embedded_emissions`, and the part of each
  channel that rests on default values.

Daily ``cbam`` points (one per day and good, docs/points.md) are built here too. No I/O, no clock.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from plantstream.plant.cbam_factors import PFC_SLOPE_DEFAULTS
from plantstream.plant.schema import (
    CarbonPricePaid,
    Cbam,
    CbamDeclarations,
    CbamInstallation,
    CbamOperator,
    CbamVerification,
    DefaultValue,
    PlantModel,
    Role,
    SourceStream,
    StreamFactors,
)
from plantstream.records import Point
from streams import cbam, cbam_sources
from streams.cbam_sources import StreamEmissions, StreamFactor
from streams.config import ConfigProblem

__all__ = [
    "CbamSpec",
    "ElectricityFactor",
    "GoodFigures",
    "GoodSpec",
    "MachineTotals",
    "PeriodFigures",
    "PrecursorFigures",
    "PrecursorSpec",
    "ProcessFigures",
    "ProcessSpec",
    "SourceStreamSpec",
    "StreamFigures",
    "build_cbam_spec",
    "daily_points",
    "period_figures",
    "periods_of_year",
    "stream_figures",
    "totals_of",
]

Path = tuple[str | int, ...]
_ELECTRICITY_ROLES = frozenset({Role.POWER_KW, Role.ENERGY_KWH})


@dataclass(frozen=True)
class ElectricityFactor:
    """The resolved CBAM electricity factor and where it comes from [IR-2025-2621; CBAM-REG]."""

    t_per_mwh: float
    basis: str
    country: str
    source: str
    link: str | None
    year: int | None

    @property
    def is_default(self) -> bool:
        """True for the Commission default (its emissions count as resting on default values)."""
        return self.basis == "commission_default"


@dataclass(frozen=True)
class ProcessSpec:
    """A production process and its machines; ``shares`` < 1 for machines shared with others."""

    id: str
    name: str
    route: str
    machines: tuple[str, ...]
    shares: Mapping[str, float] = field(default_factory=dict)
    unmetered: tuple[str, ...] = ()
    """Machines without a power or energy signal: the process's electricity is then not known."""
    route_description: str | None = None
    """The route in the operator's words (``route`` is the template's code-list value)."""

    def share(self, machine: str) -> float:
        """The fraction of ``machine``'s Scope 1 and electricity attributed to this process."""
        return self.shares.get(machine, 1.0)


@dataclass(frozen=True)
class SourceStreamSpec:
    """A source stream of a process, resolved: its method, where its activity comes from, factors."""

    id: str
    name: str
    process: str
    method: str
    material: str | None
    direction: str
    machine: str
    t_per_unit: float
    factors: tuple[StreamFactor, ...]
    provenance: tuple[dict[str, object], ...] = ()
    """The factors as the plant file gives them (basis, source or laboratory), for the factor table."""

    def emissions(self, activity_t: float, day: date) -> StreamEmissions:
        """The emissions of ``activity_t`` with the factors valid on ``day``."""
        return cbam_sources.stream_emissions(
            self.method,
            activity_t,
            cbam_sources.factor_on(self.factors, day),
            fuel=self.material == "fuel",
            output=self.direction == "output",
        )

    def changes_within(self, start: date, end: date) -> bool:
        """True when another factor takes over after ``start`` and before ``end``."""
        return any(f.valid_from is not None and start < f.valid_from < end for f in self.factors)


@dataclass(frozen=True)
class PrecursorSpec:
    """A purchased precursor, resolved."""

    id: str
    name: str
    cn_code: str
    category: cbam.CbamCategory
    carries_indirect: bool
    origin: str
    basis: str
    see_direct: float | None
    see_indirect: float | None
    default: DefaultValue | None
    production_period: str | None
    supplier_operator_id: str | None
    supplier_installation_id: str | None
    verifier_report: str | None

    def values(self, year: int) -> tuple[float, float | None, bool]:
        """(SEE direct, SEE indirect, rests on default values) used for ``year``.

        Default values get the year's mark-up (IR 2026/1740 Annex I intro [IR-2026-1740]),
        channel by channel, unrounded; VERIFY whether the Registry marks up precursor defaults so.
        The indirect SEE is ``None`` for a default given without its indirect part.
        """
        if self.basis == "actual_verified" and self.see_direct is not None and self.see_indirect is not None:
            return self.see_direct, self.see_indirect, False
        assert self.default is not None  # the schema guarantees one of the two
        indirect = self.default.indirect
        return (
            cbam.default_with_markup(self.default.direct, self.category, year),
            None if indirect is None else cbam.default_with_markup(indirect, self.category, year),
            True,
        )


@dataclass(frozen=True)
class PrecursorUse:
    """One precursor of a good: purchased or made here; how much per tonne, per year, or metered.

    A metered precursor's mass is ``machine``'s count x ``t_per_unit`` over the period (the scale
    where it enters the consuming process: a measured internal transfer).
    """

    kind: str  # "purchased" or "good"
    ref: str
    mass_t_per_t: float | None
    mass_t_by_year: Mapping[int, float]
    machine: str | None = None
    t_per_unit: float = 0.0


@dataclass(frozen=True)
class GoodSpec:
    """A CBAM good of the installation, resolved."""

    id: str
    name: str
    cn_code: str
    category: cbam.CbamCategory
    carries_indirect: bool
    process: str
    output_machine: str
    t_per_unit: float
    precursors: tuple[PrecursorUse, ...]
    qualifying_parameters: tuple[tuple[str, float | str], ...] = ()
    """The sector's qualifying parameters as declared (plantstream.plant.cbam_parameters)."""


@dataclass(frozen=True)
class CbamSpec:
    """Everything the ledger needs from the plant file's ``cbam`` section, resolved once."""

    operator: CbamOperator
    installation: CbamInstallation
    declarations: CbamDeclarations
    timezone: str
    electricity: ElectricityFactor
    processes: dict[str, ProcessSpec]
    goods: dict[str, GoodSpec]
    precursors: dict[str, PrecursorSpec]
    verifications: tuple[CbamVerification, ...] = ()
    carbon_prices_paid: tuple[CarbonPricePaid, ...] = ()
    streams: dict[str, SourceStreamSpec] = field(default_factory=dict)

    @property
    def machines(self) -> frozenset[str]:
        """Every machine whose windows the ledger keeps: the processes' and the source streams'."""
        own = {m for p in self.processes.values() for m in p.machines}
        metered = {u.machine for g in self.goods.values() for u in g.precursors if u.machine is not None}
        return frozenset(own | metered | {s.machine for s in self.streams.values()})

    def stream_machines(self, process: str) -> tuple[str, ...]:
        """The machines whose windows give the activity of ``process``'s source streams."""
        return tuple(sorted({s.machine for s in self.streams.values() if s.process == process}))

    def evidence_machines(self, process: str) -> tuple[str, ...]:
        """Every machine whose windows a figure of ``process`` rests on.

        Its own, its source streams' and the scales of its goods' metered precursors.
        """
        metered = {
            u.machine
            for g in self.goods.values()
            if g.process == process
            for u in g.precursors
            if u.machine is not None
        }
        own = self.processes[process].machines
        return (*own, *sorted((set(self.stream_machines(process)) | metered) - set(own)))

    def good_order(self) -> list[str]:
        """Goods with own-made precursors after those precursors (the plant file has no cycles)."""
        done: list[str] = []

        def visit(gid: str) -> None:
            if gid in done:
                return
            for use in self.goods[gid].precursors:
                if use.kind == "good":
                    visit(use.ref)
            done.append(gid)

        for gid in self.goods:
            visit(gid)
        return done


def _electricity(section: Cbam, problems: list[tuple[Path, str]]) -> ElectricityFactor:
    el = section.electricity
    country = el.country or section.installation.country
    if el.factor_t_per_mwh is not None:
        return ElectricityFactor(el.factor_t_per_mwh, el.basis, country, el.source or "", el.link, el.year)
    try:
        found = cbam.electricity_default(country)
    except ValueError as exc:
        problems.append((("cbam", "electricity"), str(exc)))
        return ElectricityFactor(math.nan, el.basis, country, "", None, None)
    return ElectricityFactor(found.t_per_mwh, el.basis, found.country, found.source, None, el.year)


def build_cbam_spec(plant: PlantModel) -> CbamSpec | None:
    """Resolve the ``cbam`` section (``None`` when the plant file has none).

    Raises:
        ConfigProblem: the electricity factor cannot be resolved, or an output machine lacks the
            mass it needs; each problem names its key path.
    """
    section = plant.cbam
    if section is None:
        return None
    problems: list[tuple[Path, str]] = []
    electricity = _electricity(section, problems)
    site_id = section.installation.site or plant.sites[0].id
    timezone = next(site.timezone for site in plant.sites if site.id == site_id)
    metered = {
        machine.id
        for _, _, machine in plant.machines()
        if any(signal.role in _ELECTRICITY_ROLES for signal in machine.signals.values())
    }
    processes = {}
    for p in section.processes:
        machines = (*p.machines, *(m.machine for m in p.shared_machines))
        processes[p.id] = ProcessSpec(
            p.id,
            p.name or p.id,
            p.route,
            machines,
            {m.machine: m.share for m in p.shared_machines},
            tuple(m for m in machines if m not in metered),
            p.route_description,
        )
    precursors = {}
    for index, item in enumerate(section.purchased_precursors):
        category = cbam.CbamCategory(item.category)
        no_indirect = item.basis == "default" and item.default is not None and item.default.indirect is None
        if no_indirect and cbam.carries_indirect(category, item.cn_code):
            problems.append(
                (
                    ("cbam", "purchased_precursors", index, "default"),
                    f"precursor {item.id!r} is not an Annex II good: its indirect emissions count in "
                    "the goods made from it (Art. 7(1), 2025/2547 Annex I pt 3.1), so its default needs "
                    "indirect (IR 2025/2621 Annex I)",
                )
            )
        precursors[item.id] = PrecursorSpec(
            id=item.id,
            name=item.name or item.id,
            cn_code=item.cn_code,
            category=category,
            carries_indirect=cbam.carries_indirect(category, item.cn_code),
            origin=item.origin,
            basis=item.basis,
            see_direct=item.see_direct,
            see_indirect=item.see_indirect,
            default=item.default,
            production_period=item.production_period,
            supplier_operator_id=item.supplier_operator_id,
            supplier_installation_id=item.supplier_installation_id,
            verifier_report=item.verifier_report,
        )
    goods = {}
    for good in section.goods:
        category = cbam.CbamCategory(good.category)
        out = good.output
        t_per_unit = 0.001 if out.weighed else (out.mass_kg_per_piece or 0.0) / 1000
        uses = tuple(
            PrecursorUse(
                "purchased" if use.purchased is not None else "good",
                use.purchased or use.good or "",
                use.mass_t_per_t,
                dict(use.mass_t_by_year),
                None if use.metered is None else use.metered.machine,
                0.0
                if use.metered is None
                else (0.001 if use.metered.weighed else (use.metered.mass_kg_per_piece or 0.0) / 1000),
            )
            for use in good.precursors
        )
        goods[good.id] = GoodSpec(
            id=good.id,
            name=good.name or good.id,
            cn_code=good.cn_code,
            category=category,
            carries_indirect=cbam.carries_indirect(category, good.cn_code),
            process=good.process,
            output_machine=out.machine,
            t_per_unit=t_per_unit,
            precursors=uses,
            qualifying_parameters=tuple(good.qualifying_parameters.items()),
        )
    streams = {
        stream.id: _stream_spec(p.id, stream) for p in section.processes for stream in p.source_streams
    }
    if problems:
        raise ConfigProblem(problems)
    return CbamSpec(
        operator=section.operator,
        installation=section.installation,
        declarations=section.declarations,
        timezone=timezone,
        electricity=electricity,
        processes=processes,
        goods=goods,
        precursors=precursors,
        verifications=tuple(section.verifications),
        carbon_prices_paid=tuple(section.carbon_prices_paid),
        streams=streams,
    )


def _stream_factor(given: StreamFactors) -> StreamFactor:
    """A factor entry of the plant file as the calculator takes it (composition and defaults resolved)."""
    ef = given.emission_factor
    if given.composition is not None:
        ef = cbam_sources.composition_factor(given.composition)
    slope, ratio = given.slope_cf4, given.c2f6_per_cf4
    if given.cell_technology is not None:
        default_slope, default_ratio = PFC_SLOPE_DEFAULTS[given.cell_technology]
        slope = default_slope if slope is None else slope
        ratio = default_ratio if ratio is None else ratio
    return StreamFactor(
        valid_from=given.valid_from,
        basis=given.basis,
        emission_factor=ef,
        ncv_tj_per_t=given.ncv_tj_per_t,
        oxidation_factor=given.oxidation_factor,
        conversion_factor=given.conversion_factor,
        carbon_content=given.carbon_content,
        slope_cf4=slope,
        c2f6_per_cf4=ratio,
        anode_effect_minutes=given.anode_effect_minutes,
    )


def _stream_spec(process: str, stream: SourceStream) -> SourceStreamSpec:
    activity = stream.activity
    return SourceStreamSpec(
        id=stream.id,
        name=stream.name or stream.id,
        process=process,
        method=stream.method,
        material=stream.material,
        direction=stream.direction,
        machine=activity.machine,
        t_per_unit=0.001 if activity.weighed else (activity.mass_kg_per_piece or 0.0) / 1000,
        factors=tuple(_stream_factor(f) for f in stream.factors),
        provenance=tuple(f.model_dump(mode="json", by_alias=True, exclude_none=True) for f in stream.factors),
    )


# --------------------------------------------------------------------------------------------------
# Inputs: machine totals over a period
# --------------------------------------------------------------------------------------------------


@dataclass
class MachineTotals:
    """Sums of a machine's closed windows over some days (from the durable store).

    ``good_count`` from ``oee`` points, ``kwh`` from ``energy`` points, ``co2_kg`` from ``carbon``
    points (``scope1_co2_kg``: the CO2 of the fuels alone, not the Scope 1 CO2e, because CBAM
    counts CO2 and, for some goods, N2O or PFCs, not the CH4 and N2O of combustion: Annex I of
    Reg. 2023/956, IR 2025/2547 Annex II B); ``windows`` counts the window points behind them.
    """

    good_count: float = 0.0
    kwh: float = 0.0
    co2_kg: float = 0.0
    windows: int = 0

    def add(self, other: MachineTotals) -> None:
        """Sum ``other`` into these totals."""
        self.good_count += other.good_count
        self.kwh += other.kwh
        self.co2_kg += other.co2_kg
        self.windows += other.windows


# --------------------------------------------------------------------------------------------------
# Figures of a period
# --------------------------------------------------------------------------------------------------


@dataclass
class StreamFigures:
    """A source stream over a period: its activity data (t) and emissions per gas."""

    id: str
    activity_t: float
    emissions: StreamEmissions


@dataclass
class ProcessFigures:
    """Attributed emissions and electricity of one production process over a period.

    ``direct_t`` (t CO2e) is the CO2 of its machines' fuel meters (``fuel_co2_t``) plus its
    source streams' emissions (CO2, and N2O or PFCs by their GWPs). ``electricity_mwh`` and
    ``indirect_t`` are ``None`` when a machine of the process has no electricity meter (the
    consumption is not known, and is not taken as zero).
    """

    id: str
    direct_t: float
    electricity_mwh: float | None
    indirect_t: float | None
    activity_t: float
    windows: int
    fuel_co2_t: float = 0.0
    streams: dict[str, StreamFigures] = field(default_factory=dict)


@dataclass
class PrecursorFigures:
    """One precursor of a good over a period: mass consumed, SEE used, embedded emissions.

    ``see_indirect`` is the precursor's whole indirect SEE (``None`` when not known, with
    ``unknown_indirect`` saying why); ``see_indirect_counted`` the part of it that enters the
    good's counted figure when ``counts_indirect``; ``embedded_indirect_counted_t`` is that part
    times the mass, 0 when it does not count.
    """

    kind: str
    ref: str
    cn_code: str
    mass_t: float
    see_direct: float
    see_indirect: float | None
    see_indirect_counted: float | None
    counts_indirect: bool
    default_direct: float  # t CO2e/t of see_direct resting on default values
    default_indirect: float | None
    default_indirect_counted: float | None
    embedded_direct_t: float
    embedded_indirect_t: float | None
    embedded_indirect_counted_t: float | None
    unknown_indirect: str | None = None
    unknown_direct: str | None = None

    @property
    def on_defaults(self) -> bool:
        """True when any part of the precursor's SEE rests on default values."""
        return self.default_direct > 0 or bool(self.default_indirect) or bool(self.default_indirect_counted)


@dataclass
class GoodFigures:
    """A good over a period: activity, attributed and embedded emissions, SEE, default shares.

    SEE in t CO2e/t (see :class:`streams.cbam.SeeResult`): ``see_direct``; ``see_indirect``, the
    whole indirect figure of every good; ``see_indirect_counted``, its part counted under Art. 7(1)
    of Reg. 2023/956 with the cross-channel rule; :attr:`see_total` and :attr:`see_cbam`. A figure
    that cannot be computed is ``None`` and ``reasons`` maps its name to why.
    """

    id: str
    process: str
    activity_t: float
    attributed_direct_t: float
    attributed_indirect_t: float | None
    electricity_mwh: float | None
    precursors: list[PrecursorFigures] = field(default_factory=list)
    see_direct: float | None = None
    see_indirect: float | None = None
    see_indirect_counted: float | None = None
    default_direct: float = 0.0  # t CO2e/t of see_direct resting on default values
    default_indirect: float | None = 0.0
    default_indirect_counted: float | None = 0.0
    reasons: dict[str, str] = field(default_factory=dict)
    transferred_t: float = 0.0
    """Consumed as a precursor by other goods of the installation (an internal transfer)."""

    @property
    def sold_t(self) -> float:
        """Made and not consumed here: sold, or put into stock (negative when more was consumed)."""
        return self.activity_t - self.transferred_t

    @property
    def transfer_excess(self) -> str | None:
        """Why the transfers do not add up: more consumed here than made, or ``None``.

        Stock made in an earlier period can explain it; the report says so, it does not refuse.
        """
        if self.transferred_t <= self.activity_t * (1 + 1e-9) + 1e-9:
            return None
        return (
            f"the installation consumed {self.transferred_t:.3f} t of good {self.id!r} but made "
            f"{self.activity_t:.3f} t in the period: a consumption meter, the output meter or stock "
            "from an earlier period explains the difference"
        )

    @property
    def see_total(self) -> float | None:
        """Direct plus the whole indirect SEE."""
        if self.see_direct is None or self.see_indirect is None:
            return None
        return self.see_direct + self.see_indirect

    @property
    def see_cbam(self) -> float | None:
        """The SEE counted under Art. 7(1): direct plus the counted indirect part."""
        if self.see_direct is None or self.see_indirect_counted is None:
            return None
        return self.see_direct + self.see_indirect_counted

    def default_share(self, channel: str = "cbam") -> float | None:
        """Share of a figure resting on default values: ``direct``, ``indirect``, ``total`` or ``cbam``."""
        if self.see_direct is None:
            return None
        part: float | None
        whole: float | None
        if channel == "direct":
            part, whole = self.default_direct, self.see_direct
        elif channel == "indirect":
            part, whole = self.default_indirect, self.see_indirect
        elif channel == "total":
            part = None if self.default_indirect is None else self.default_direct + self.default_indirect
            whole = self.see_total
        else:
            counted = self.default_indirect_counted
            part = None if counted is None else self.default_direct + counted
            whole = self.see_cbam
        if part is None or whole is None:
            return None
        return part / whole if whole > 0 else 0.0


@dataclass
class PeriodFigures:
    """The ledger's figures of one period (a year, a quarter or a month)."""

    label: str
    start: date
    end: date  # exclusive
    processes: dict[str, ProcessFigures]
    goods: dict[str, GoodFigures]

    @property
    def direct_t(self) -> float:
        """Total attributed direct emissions of the installation's CBAM processes."""
        return sum(p.direct_t for p in self.processes.values())


def periods_of_year(year: int) -> list[tuple[str, date, date]]:
    """The year, its quarters and its months as (label, first day, day after the last)."""
    out = [(str(year), date(year, 1, 1), date(year + 1, 1, 1))]
    for q in range(4):
        first = date(year, 3 * q + 1, 1)
        after = date(year + 1, 1, 1) if q == 3 else date(year, 3 * q + 4, 1)
        out.append((f"{year}-Q{q + 1}", first, after))
    for month in range(1, 13):
        after = date(year + 1, 1, 1) if month == 12 else date(year, month + 1, 1)
        out.append((f"{year}-{month:02d}", date(year, month, 1), after))
    return out


def stream_figures(
    spec: CbamSpec,
    start: date,
    end: date,
    totals: Mapping[str, MachineTotals],
    days: Iterable[tuple[date, Mapping[str, MachineTotals]]] | None = None,
) -> dict[str, StreamFigures]:
    """Every source stream's activity and emissions over ``[start, end)``.

    With ``days`` (the machine totals of each day) each day's activity meets the factors valid
    that day; without, the period's totals meet those valid on ``start``, which needs no factor
    to change within the period.

    Raises:
        ValueError: ``days`` is missing and a stream's factors change within the period.
    """
    out = {sid: StreamFigures(sid, 0.0, StreamEmissions()) for sid in spec.streams}
    if days is None:
        for sid, stream in spec.streams.items():
            if stream.changes_within(start, end):
                raise ValueError(
                    f"the factors of source stream {sid!r} change within {start}..{end}: give days"
                )
        days = [(start, totals)]
    for day, day_totals in days:
        for sid, stream in spec.streams.items():
            activity = totals_of(day_totals, stream.machine).good_count * stream.t_per_unit
            if activity:
                figures = out[sid]
                figures.activity_t += activity
                figures.emissions = figures.emissions + stream.emissions(activity, day)
    return out


def totals_of(totals: Mapping[str, MachineTotals], machine: str) -> MachineTotals:
    """``machine``'s totals, empty when it had no window."""
    return totals.get(machine, _NO_TOTALS)


_NO_TOTALS = MachineTotals()


def _process_figures(
    spec: CbamSpec, totals: Mapping[str, MachineTotals], streams: Mapping[str, StreamFigures]
) -> dict[str, ProcessFigures]:
    factor = spec.electricity.t_per_mwh
    out = {}
    for pid, process in spec.processes.items():
        summed = MachineTotals()
        for mid in process.machines:
            machine = totals.get(mid, MachineTotals())
            share = process.share(mid)
            summed.add(
                MachineTotals(
                    machine.good_count, machine.kwh * share, machine.co2_kg * share, machine.windows
                )
            )
        activity = sum(
            totals.get(g.output_machine, MachineTotals()).good_count * g.t_per_unit
            for g in spec.goods.values()
            if g.process == pid
        )
        # A machine without an electricity meter makes the process's consumption unknown, not 0.
        mwh = None if process.unmetered else summed.kwh / 1000
        indirect = None if mwh is None else mwh * factor
        own = {sid: f for sid, f in streams.items() if spec.streams[sid].process == pid}
        fuel_co2_t = summed.co2_kg / 1000
        direct = fuel_co2_t + sum(f.emissions.co2e_t for f in own.values())
        out[pid] = ProcessFigures(pid, direct, mwh, indirect, activity, summed.windows, fuel_co2_t, own)
    return out


def period_figures(
    spec: CbamSpec,
    label: str,
    start: date,
    end: date,
    totals: Mapping[str, MachineTotals],
    year_activity: Mapping[str, float] | None = None,
    days: Iterable[tuple[date, Mapping[str, MachineTotals]]] | None = None,
) -> PeriodFigures:
    """The ledger's figures for one period from the machines' totals over it.

    Args:
        spec: the resolved ``cbam`` section.
        label: the period's name (``2026``, ``2026-Q1``, ``2026-03``).
        start: first day of the period (its year selects mark-ups and ``mass_t_by_year``).
        end: the day after the period.
        totals: machine id -> totals over the period.
        year_activity: good id -> activity of the whole year, to turn a precursor's
            ``mass_t_by_year`` into a ratio for a shorter period; the period's own activity if
            not given.
        days: the machine totals of each day of the period, so that each source stream's
            activity meets the factors valid that day (see :func:`stream_figures`).
    """
    year = start.year
    processes = _process_figures(spec, totals, stream_figures(spec, start, end, totals, days))
    goods: dict[str, GoodFigures] = {}
    for gid in spec.good_order():
        good = spec.goods[gid]
        process = processes[good.process]
        activity = totals.get(good.output_machine, MachineTotals()).good_count * good.t_per_unit
        # Several goods of one process share its attributed emissions by mass.
        share = activity / process.activity_t if process.activity_t > 0 else 0.0
        figures = GoodFigures(
            id=gid,
            process=good.process,
            activity_t=activity,
            attributed_direct_t=process.direct_t * share,
            attributed_indirect_t=None if process.indirect_t is None else process.indirect_t * share,
            electricity_mwh=None if process.electricity_mwh is None else process.electricity_mwh * share,
        )
        annual = (year_activity or {}).get(gid, activity)
        for use in good.precursors:
            metered = (
                None if use.machine is None else totals_of(totals, use.machine).good_count * use.t_per_unit
            )
            figures.precursors.append(_precursor(spec, good, use, activity, annual, year, goods, metered))
        _see(spec, good, figures)
        goods[gid] = figures
    # Internal transfers: what the installation's other goods consumed of each good made here.
    for figures in goods.values():
        for pre in figures.precursors:
            if pre.kind == "good":
                goods[pre.ref].transferred_t += pre.mass_t
    return PeriodFigures(label, start, end, processes, goods)


def _times(mass: float, see: float | None) -> float | None:
    return None if see is None else mass * see


def _precursor(
    spec: CbamSpec,
    good: GoodSpec,
    use: PrecursorUse,
    activity: float,
    annual_activity: float,
    year: int,
    goods: Mapping[str, GoodFigures],
    metered: float | None = None,
) -> PrecursorFigures:
    if metered is not None:
        mass = metered
    elif use.mass_t_per_t is not None:
        mass = use.mass_t_per_t * activity
    else:
        year_mass = use.mass_t_by_year.get(year, 0.0)
        mass = year_mass * activity / annual_activity if annual_activity > 0 else 0.0
    see_i_counted: float | None
    default_i_counted: float | None
    unknown_direct = None
    if use.kind == "purchased":
        pre = spec.precursors[use.ref]
        see_d, see_i, on_default = pre.values(year)
        see_i_counted = see_i
        cn_code, counts = pre.cn_code, pre.carries_indirect
        default_d, default_i = (see_d, see_i) if on_default else (0.0, 0.0)
        default_i_counted = default_i
        unknown = (
            None
            if see_i is not None
            else f"the default value of {pre.name} (CN {pre.cn_code}) has no indirect part"
        )
    else:
        made = goods[use.ref]
        own = spec.goods[use.ref]
        see_d = made.see_direct or 0.0
        see_i, see_i_counted = made.see_indirect, made.see_indirect_counted
        if made.see_direct is None and mass > 0:
            # Consumed but not made in the period (a day or month): its SEE is not known here.
            unknown_direct = f"{own.name} (CN {own.cn_code}), made here, was not produced in the period"
        cn_code = own.cn_code
        # An Annex II good made here into an Annex II good passes on the indirect emissions of its
        # own non-Annex II precursors, which its counted part holds (2025/2547 Annex I pt 3.1).
        counts = own.carries_indirect or not good.carries_indirect
        default_d, default_i = made.default_direct, made.default_indirect
        default_i_counted = made.default_indirect_counted
        unknown = (
            None if see_i is not None else f"the indirect SEE of {own.name} (CN {own.cn_code}) is not known"
        )
    return PrecursorFigures(
        kind=use.kind,
        ref=use.ref,
        cn_code=cn_code,
        mass_t=mass,
        see_direct=see_d,
        see_indirect=see_i,
        see_indirect_counted=see_i_counted,
        counts_indirect=counts,
        default_direct=default_d,
        default_indirect=default_i,
        default_indirect_counted=default_i_counted,
        embedded_direct_t=mass * see_d,
        embedded_indirect_t=_times(mass, see_i),
        embedded_indirect_counted_t=_times(mass, see_i_counted) if counts else 0.0,
        unknown_indirect=unknown,
        unknown_direct=unknown_direct,
    )


_NO_PRODUCTION = "no production of the good in the period in the ledger"
_SEE_FIGURES = ("see_direct", "see_indirect", "see_total", "see_cbam")


def _see(spec: CbamSpec, good: GoodSpec, figures: GoodFigures) -> None:
    """SEE per channel (cross-channel rule included), the parts on default values, and reasons."""
    if figures.activity_t <= 0:
        figures.reasons = dict.fromkeys(_SEE_FIGURES, _NO_PRODUCTION)
        return
    missing = "; ".join(p.unknown_direct for p in figures.precursors if p.unknown_direct)
    if missing:
        figures.reasons = dict.fromkeys(_SEE_FIGURES, missing)
        return
    inputs = [
        (
            cbam.PrecursorInput(p.mass_t, p.see_direct, p.see_indirect, p.see_indirect_counted),
            p.counts_indirect,
        )
        for p in figures.precursors
    ]
    result = cbam.embedded_emissions(
        good.category,
        good.cn_code,
        attributed_direct_t=figures.attributed_direct_t,
        attributed_indirect_t=figures.attributed_indirect_t,
        activity_t=figures.activity_t,
        precursors=inputs,
    )
    figures.see_direct = result.direct
    figures.see_indirect, figures.see_indirect_counted = result.indirect, result.indirect_counted
    # The same rule applied to the default-based parts alone gives the default-based SEE.
    default_inputs = [
        (
            cbam.PrecursorInput(p.mass_t, p.default_direct, p.default_indirect, p.default_indirect_counted),
            p.counts_indirect,
        )
        for p in figures.precursors
    ]
    own = figures.attributed_indirect_t
    defaults = cbam.embedded_emissions(
        good.category,
        good.cn_code,
        attributed_direct_t=0.0,
        attributed_indirect_t=own if spec.electricity.is_default else (None if own is None else 0.0),
        activity_t=figures.activity_t,
        precursors=default_inputs,
    )
    figures.default_direct = defaults.direct
    figures.default_indirect, figures.default_indirect_counted = defaults.indirect, defaults.indirect_counted
    figures.reasons = _reasons(spec, good, figures)


def _reasons(spec: CbamSpec, good: GoodSpec, figures: GoodFigures) -> dict[str, str]:
    """Why each figure that is ``None`` could not be computed (the causes, joined)."""
    own: list[str] = []
    if figures.attributed_indirect_t is None:
        own.append(
            f"process {good.process!r} has machines without an electricity meter, so its electricity "
            "consumption is not known"
        )
    whole = own + [p.unknown_indirect for p in figures.precursors if p.unknown_indirect]
    counted = (own if good.carries_indirect else []) + [
        p.unknown_indirect for p in figures.precursors if p.unknown_indirect and p.counts_indirect
    ]
    reasons = {}
    if figures.see_indirect is None:
        reasons["see_indirect"] = reasons["see_total"] = "; ".join(whole)
    if figures.see_indirect_counted is None:
        reasons["see_cbam"] = "; ".join(counted)
    return reasons


# --------------------------------------------------------------------------------------------------
# Daily `cbam` points (docs/points.md)
# --------------------------------------------------------------------------------------------------


def day_start_utc(day: date, timezone: str) -> datetime:
    """The UTC instant of local midnight starting ``day`` in ``timezone``."""
    return datetime.combine(day, time(0), tzinfo=ZoneInfo(timezone)).astimezone(UTC)


def daily_points(
    spec: CbamSpec,
    days: Iterable[tuple[date, Mapping[str, MachineTotals]]],
    year_activity: Mapping[str, float],
) -> list[Point]:
    """One ``cbam`` point per day and good, for Grafana (tracking only; the report is annual).

    Args:
        spec: the resolved ``cbam`` section.
        days: (local day, machine totals of that day) pairs.
        year_activity: good id -> activity so far in the day's year, for ``mass_t_by_year``.
    """
    out = []
    installation = spec.installation.id
    for day, totals in days:
        figures = period_figures(
            spec, day.isoformat(), day, day + timedelta(days=1), totals, year_activity=year_activity
        )
        moment = day_start_utc(day, spec.timezone)
        for gid, good in figures.goods.items():
            spec_good = spec.goods[gid]
            fields: dict[str, float | int | str | bool] = {
                "activity_t": good.activity_t,
                "attributed_direct_t": good.attributed_direct_t,
                "precursor_direct_t": sum(p.embedded_direct_t for p in good.precursors),
                "windows": figures.processes[good.process].windows,
            }
            # A figure that is not known is left out of the point, never written as 0.
            indirect_parts = [p.embedded_indirect_t for p in good.precursors]
            optional = {
                "electricity_mwh": good.electricity_mwh,
                "attributed_indirect_t": good.attributed_indirect_t,
                "precursor_indirect_t": None
                if None in indirect_parts
                else sum(part or 0.0 for part in indirect_parts),
                "see_direct": good.see_direct,
                "see_indirect": good.see_indirect,
                "see_cbam": good.see_cbam,
                "default_share": good.default_share(),
            }
            fields |= {name: value for name, value in optional.items() if value is not None}
            tags = {
                "installation": installation,
                "process": good.process,
                "good": gid,
                "cn_code": spec_good.cn_code,
                "window": "1d",
            }
            out.append(Point.trusted(measurement="cbam", tags=tags, fields=fields, time=moment))
    return out
