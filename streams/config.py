"""Resolve a validated plant model into what the calculators need, checking reference data.

The plant file names grid factors, fuels and calendars; here they are looked up in the shipped
tables (streams.carbon) and expanded (streams.calendar). Problems come back as (key path,
message) pairs so the caller can point at the plant file's line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from plantstream.plant.schema import (
    CORRECTION_HISTORY_BYTES,
    CounterSignal,
    EnergySignal,
    FuelSignal,
    Machine,
    OeeMethod,
    PlantModel,
    PowerSignal,
    ReasonSignal,
    Role,
    Site,
    StateSignal,
)
from streams import carbon
from streams.calendar import US, Schedule, check_alignment
from streams.reasons import ReasonTree

__all__ = ["CarbonSpec", "ConfigProblem", "EngineSpec", "FuelSpec", "MachineSpec", "build_spec"]

Path = tuple[str | int, ...]


class ConfigProblem(ValueError):
    """The plant model refers to something the calculators do not have; ``problems`` say where."""

    def __init__(self, problems: list[tuple[Path, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(msg for _, msg in problems))


@dataclass(frozen=True)
class CarbonSpec:
    """Resolved carbon settings of a site."""

    grid: carbon.GridFactor
    market_t_per_mwh: float | None
    gwp: carbon.Gwp


@dataclass(frozen=True)
class FuelSpec:
    """A resolved fuel meter: how raw meter units become TJ and which fuel factors apply."""

    signal: str
    fuel: carbon.FuelSpec
    unit: str
    ncv_mj_per_nm3: float | None
    modulus: float | None
    max_gap_us: int


@dataclass(frozen=True, slots=True)
class MachineSpec:
    """Everything the per-machine calculator needs, resolved once."""

    id: str
    site: str
    line: str
    area: str | None
    window_us: int
    micro_stop_max_us: int
    method: OeeMethod
    schedule: Schedule
    state_signal: str | None
    state_codes: dict[str, int]
    counters: dict[str, int]
    counter_modulus: dict[str, int | None]
    power: PowerSignal | None
    power_signal: str | None
    energy: EnergySignal | None
    energy_signal: str | None
    fuels: dict[str, FuelSpec]
    product_signal: str | None
    ideal_cycle_us: float | None
    ideal_cycle_us_by_product: dict[str, float]
    rated_kw: float | None
    carbon: CarbonSpec | None
    recorded: frozenset[str] = frozenset()
    reason_signal: str | None = None
    """The PLC fault or reason-code tag (streams.stops), if the machine has one."""
    reason_rule: str = "first"
    machine_type: str | None = None
    startup_reject_us: int = 0
    """Rejects counted this long after a setup ends are start-up rejects (a six-big-losses split)."""

    @property
    def has_rework(self) -> bool:
        """True when the machine has a rework counter (``rework_count``, ISO 22400-2 RQ)."""
        return COUNTER_INDEX[Role.REWORK_COUNT] in self.counters.values()

    @property
    def has_oee(self) -> bool:
        """True when the machine reports state or counts."""
        return self.state_signal is not None or bool(self.counters)

    @property
    def has_energy(self) -> bool:
        """True when the machine reports power or an energy register."""
        return self.power is not None or self.energy is not None


@dataclass(frozen=True)
class EngineSpec:
    """The resolved plant: machines by id, and the lines and sites they roll up into."""

    machines: dict[str, MachineSpec]
    window_us: int
    allowed_lateness_us: int
    correction_horizon_us: int
    site_carbon: dict[str, CarbonSpec] = field(default_factory=dict)
    correction_history_max: int = 2_000_000
    """Readings kept for corrections across all machines; each machine keeps an equal share."""
    correction_history_bytes: int = CORRECTION_HISTORY_BYTES
    """Bytes of correction history across all machines, as the history counts them
    (:attr:`streams.history.History.nbytes`); each machine keeps an equal share."""
    max_future_us: int | None = 300 * US
    """How far an event time may be ahead of its receipt time; ``None``: receipt times are ignored
    (a simulated clock runs ahead on purpose) and jumps need confirming, as in ``replay``."""
    max_clock_jump_us: int = 86_400 * US
    """How far a reading may jump past its machine's newest event time."""
    max_gap_fill_us: int = 8 * 86_400 * US
    """A machine silent longer than this resumes without emitting the windows of the silence."""
    reasons: ReasonTree = field(default_factory=ReasonTree)
    """The plant's reason tree (stop reason codes, shared by every machine)."""


# Indices into the per-window state durations; MICRO is a part of RUNNING (see streams.oee).
RUNNING, IDLE, DOWN, SETUP, PLANNED_STOP, OFF, MICRO = range(7)
CATEGORY_INDEX = {
    "running": RUNNING,
    "idle": IDLE,
    "down": DOWN,
    "setup": SETUP,
    "planned_stop": PLANNED_STOP,
    "off": OFF,
}
_NONE_RECORDED: frozenset[str] = frozenset()
COUNTER_INDEX = {Role.TOTAL_COUNT: 0, Role.GOOD_COUNT: 1, Role.REJECT_COUNT: 2, Role.REWORK_COUNT: 3}


def _carbon(site: Site, path: Path, problems: list[tuple[Path, str]]) -> CarbonSpec | None:
    if site.carbon is None:
        return None
    cfg = site.carbon
    grid_path = (*path, "carbon", "grid")
    if cfg.grid.factor_t_per_mwh is not None:
        grid = carbon.GridFactor(
            country=cfg.grid.country or site.country,
            basis=cfg.grid.basis,
            year=cfg.grid.year or 0,
            t_per_mwh=cfg.grid.factor_t_per_mwh,
            source=cfg.grid.source or "",
        )
    else:
        try:
            grid = carbon.grid_factor(cfg.grid.country or site.country, cfg.grid.basis, cfg.grid.year or 0)
        except carbon.UnknownFactorError as exc:
            problems.append((grid_path, str(exc)))
            return None
    market = None
    if cfg.market is not None:
        market = carbon.MarketInstruments(
            cfg.market.covered_share, cfg.market.covered_t_per_mwh, cfg.market.residual_t_per_mwh
        ).effective_t_per_mwh()
    return CarbonSpec(grid=grid, market_t_per_mwh=market, gwp=carbon.gwp_set(cfg.gwp))


def _machine(
    plant: PlantModel,
    site: Site,
    line_index: int,
    machine: Machine,
    path: Path,
    problems: list[tuple[Path, str]],
    carbon_spec: CarbonSpec | None,
    schedules: dict[tuple[str | None, str], Schedule],
) -> MachineSpec:
    line = site.lines[line_index]
    production = plant.production
    calendar_id = machine.calendar or line.calendar or site.calendar
    calendar = plant.calendars.get(calendar_id) if calendar_id else None
    if calendar is not None:
        for message in check_alignment(calendar, site.timezone, production.window_s):
            problems.append((("calendars", calendar_id or ""), message + " (production.window_s)"))
    state_signal, state_codes = None, {}
    counters: dict[str, int] = {}
    counter_modulus: dict[str, int | None] = {}
    power = energy = None
    power_signal = energy_signal = product_signal = reason_signal = None
    reason_rule = "first"
    fuels: dict[str, FuelSpec] = {}
    for name, signal in machine.signals.items():
        if isinstance(signal, StateSignal):
            state_signal = name
            state_codes = {code: CATEGORY_INDEX[cat.value] for code, cat in signal.codes.items()}
            state_codes.update(dict(CATEGORY_INDEX.items()))
        elif isinstance(signal, CounterSignal):
            counters[name] = COUNTER_INDEX[signal.role]
            counter_modulus[name] = signal.modulus
        elif isinstance(signal, PowerSignal):
            power, power_signal = signal, name
        elif isinstance(signal, EnergySignal):
            energy, energy_signal = signal, name
        elif isinstance(signal, FuelSignal):
            fuel = carbon.FUELS.get(signal.fuel)
            if fuel is None:
                known = ", ".join(sorted(carbon.FUELS))
                problems.append(
                    ((*path, "signals", name, "fuel"), f"unknown fuel {signal.fuel!r} (known: {known})")
                )
                continue
            fuels[name] = FuelSpec(
                name, fuel, signal.unit, signal.ncv_mj_per_nm3, signal.modulus, int(signal.max_gap_s * US)
            )
        elif isinstance(signal, ReasonSignal):
            reason_signal, reason_rule = name, signal.rule
        else:
            product_signal = name
    # Machines on the same calendar in the same zone share one (its cache is the same for all).
    key = (calendar_id if calendar is not None else None, site.timezone)
    schedule = schedules.get(key)
    if schedule is None:
        schedule = schedules[key] = Schedule(calendar, site.timezone)
    # Most machines record no signal: they share one empty set.
    recorded = frozenset(name for name, signal in machine.signals.items() if signal.record) or _NONE_RECORDED
    micro = machine.micro_stop_max_s if machine.micro_stop_max_s is not None else production.micro_stop_max_s
    return MachineSpec(
        id=machine.id,
        site=site.id,
        line=line.id,
        area=line.area,
        window_us=production.window_s * US,
        micro_stop_max_us=int(micro * US),
        method=production.oee_method,
        schedule=schedule,
        state_signal=state_signal,
        state_codes=state_codes,
        counters=counters,
        counter_modulus=counter_modulus,
        power=power,
        power_signal=power_signal,
        energy=energy,
        energy_signal=energy_signal,
        fuels=fuels,
        product_signal=product_signal,
        ideal_cycle_us=machine.ideal_cycle_s * US if machine.ideal_cycle_s else None,
        ideal_cycle_us_by_product={k: v * US for k, v in machine.ideal_cycle_s_by_product.items()},
        rated_kw=machine.rated_power_kw,
        carbon=carbon_spec,
        recorded=recorded,
        reason_signal=reason_signal,
        reason_rule=reason_rule,
        machine_type=machine.type,
        startup_reject_us=int(
            (
                machine.startup_reject_s
                if machine.startup_reject_s is not None
                else production.startup_reject_s
            )
            * US
        ),
    )


def build_spec(plant: PlantModel) -> EngineSpec:
    """Resolve ``plant``; raise :class:`ConfigProblem` listing every unresolvable reference."""
    problems: list[tuple[Path, str]] = []
    machines: dict[str, MachineSpec] = {}
    site_carbon: dict[str, CarbonSpec] = {}
    schedules: dict[tuple[str | None, str], Schedule] = {}
    for s, site in enumerate(plant.sites):
        carbon_spec = _carbon(site, ("sites", s), problems)
        if carbon_spec is not None:
            site_carbon[site.id] = carbon_spec
        for li, line in enumerate(site.lines):
            for mi, machine in enumerate(line.machines):
                path: Path = ("sites", s, "lines", li, "machines", mi)
                machines[machine.id] = _machine(
                    plant, site, li, machine, path, problems, carbon_spec, schedules
                )
    if problems:
        # One calendar misaligned for many machines is one problem.
        raise ConfigProblem(list(dict.fromkeys(problems)))
    production = plant.production
    return EngineSpec(
        machines=machines,
        window_us=production.window_s * US,
        allowed_lateness_us=int(production.allowed_lateness_s * US),
        correction_horizon_us=int(production.correction_horizon_s * US),
        site_carbon=site_carbon,
        correction_history_max=production.correction_history_max,
        correction_history_bytes=production.correction_history_bytes,
        max_future_us=None if production.max_future_s is None else int(production.max_future_s * US),
        max_clock_jump_us=int(production.max_clock_jump_s * US),
        max_gap_fill_us=int(production.max_gap_fill_s * US),
        reasons=_reason_tree(plant),
    )


def _reason_tree(plant: PlantModel) -> ReasonTree:
    """The plant file's reason tree in the calculators' form (validated by the plant model)."""
    tree = plant.reasons

    def entries(codes: dict[str, Any]) -> dict[str, tuple[str, str]]:
        return {code: (entry.reason, entry.group) for code, entry in codes.items()}

    return ReasonTree(
        codes=entries(tree.codes),
        groups=dict(tree.groups),
        by_type={name: entries(codes) for name, codes in tree.machine_types.items()},
    )
