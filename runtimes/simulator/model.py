"""The simulated plant: a deterministic, event-driven model of the machines of a plant file.

Pure: no asyncio, no clock, no I/O. Time is an argument: :meth:`PlantSimulation.step` advances
every machine to a simulated instant and returns the tag values that changed, each stamped with
the simulated instant at which it changed. Everything happens on a per-machine event timeline
(state transitions, finished pieces, calendar boundaries, meter samples on a fixed grid), so the
updates depend only on the seed and the start instant, never on how often ``step`` is called:
stepping once to 10:00 or a thousand times on the way gives the same updates.

What a plant engineer would expect of each machine:

- **State.** ``running`` between stops drawn from competing exponential clocks: micro-stops (a few
  seconds, ``idle`` or ``down``), starvation (``idle``, up to a few minutes) and breakdowns
  (``down``, minutes). Machines with a ``product`` signal run batches of the products of
  ``ideal_cycle_s_by_product`` in turn, with a ``setup`` (changeover) between batches. The shift
  calendar (machine, else line, else site calendar, in the site's time zone) makes breaks
  ``planned_stop`` and time outside shifts ``off``; a shift begins with a short ``idle`` start-up.
  Machines without a calendar run around the clock. The state tag carries the PLC code where the
  state signal has ``codes`` (a category the codes lack falls back to the nearest one they have),
  else the category name.
- **Pieces.** While running, one piece every ideal cycle time × a per-machine speed factor in
  [1.0, 1.25] (never faster than ideal), rejects at a small per-machine rate (higher for the first
  pieces after a start-up or changeover). Counters are cumulative from a seeded start value and
  roll over at their ``modulus``.
- **Power and energy.** Power follows the state (running near the load of ``rated_power_kw``, idle
  and setup lower, down and off near zero) with noise, sampled on a fixed grid (``meter_period_s``)
  and at every state change, quantised to whole watts. The energy register integrates exactly the
  power the machine reports: as a step function when the power signal's ``integration`` is
  ``hold``, piecewise linear (the trapezoid rule) otherwise. Registers count in the signal's raw
  unit (kWh, or Wh when ``scale`` is 0.001) and roll over at their ``modulus``; a register with an
  integral modulus (a 32-bit Wh register) is an integer register and reports whole units.
- **Stop reasons.** A machine with a ``reason`` signal writes a PLC fault or reason code at the
  instant each stop begins (drawn per kind of stop from :data:`REASON_CODES`: a micro-stop is
  most often a blocked sensor, a breakdown a motor overload or a film break, and one breakdown in
  ten an undocumented code 4711), keeps it through a break, and clears it (0) when it runs again.
  The ground truth gives the stop time per code within planned busy time (``stop_s_by_code``).
- **Fuel.** A fuel meter (an oven's gas meter) accumulates in its unit at a firing rate while
  running and a holding rate while idle, in setup or on a break.

Registers and counters with a modulus start close to it (``near_rollover``), so a demo of an hour
sees them roll over. :meth:`PlantSimulation.truth` is the ground truth: exactly what was produced
and consumed since the start, the numbers the pipeline should recover.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from enum import Enum
from fractions import Fraction
from typing import Any, Literal
from zoneinfo import ZoneInfo

from plantstream.plant.schema import (
    Calendar,
    CounterSignal,
    EnergySignal,
    FuelSignal,
    Line,
    Machine,
    PlantModel,
    PowerSignal,
    ProductSignal,
    ReasonSignal,
    Role,
    Signal,
    Site,
    StateCategory,
    StateSignal,
)
from streams.calendar import Schedule, ShiftInstance
from streams.carbon import FUELS

__all__ = [
    "MeterSample",
    "PlantSimulation",
    "TagSpec",
    "TagUpdate",
    "TagValue",
    "ValueType",
    "generic_plant",
]

TagValue = int | float | str
"""A tag's value: an integer (PLC state code, counter, integer register), a float or a string."""

ValueType = Literal["int32", "uint32", "uint64", "double", "string"]
"""The OPC UA built-in type a tag is served as."""

US = 1_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_NEVER = 1 << 62
_ACC_PER_KWH = 7_200_000_000_000
"""Energy is accumulated in half watt-microseconds: 1 kWh = 2 × 1000 W × 3.6e9 µs."""
_FUEL_ACC_PER_UNIT = 3_600_000_000_000_000
"""Fuel is accumulated in micro-units per hour × µs: 1 unit = 1e6 × 3.6e9."""

_RUNNING, _IDLE, _DOWN, _SETUP, _PLANNED, _OFF = (
    StateCategory.RUNNING,
    StateCategory.IDLE,
    StateCategory.DOWN,
    StateCategory.SETUP,
    StateCategory.PLANNED_STOP,
    StateCategory.OFF,
)

# Stops, from running: mean running seconds between two of the kind, and how long one lasts (s).
_MICRO_STOP_MEAN_GAP_S = 240.0
_STARVED_MEAN_GAP_S = 1_500.0
_BREAKDOWN_MEAN_GAP_S = 3_600.0
_STARVED_S = (30.0, 180.0)
_BREAKDOWN_S = (180.0, 1_200.0)
_SETUP_S = (480.0, 1_200.0)
_START_UP_S = (30.0, 120.0)
_BATCH_S = (2_400.0, 5_400.0)
"""A batch (between changeovers) lasts about this long at the ideal rate."""
REASON_CODES: dict[str, tuple[tuple[int, float], ...]] = {
    "micro": ((101, 0.5), (102, 0.3), (103, 0.2)),
    "starved": ((201, 0.7), (202, 0.3)),
    "breakdown": ((301, 0.4), (302, 0.35), (303, 0.15), (4711, 0.1)),
    "setup": ((401, 1.0),),
    "start_up": ((501, 1.0),),
}
"""Per kind of stop, the codes a simulated PLC writes and how often (weights). 4711 is a code no
reason tree documents: the pipeline must keep it as its own reason."""
_STOP_REPORTED = frozenset({"idle", "down", "setup", "off"})
_STARTUP_SCRAP_PIECES = 3
_STARTUP_REJECT_P = 0.2

_DEFAULT_RATED_KW = 20.0
_POWER_SHARE = {_RUNNING: 1.0, _IDLE: 0.35, _SETUP: 0.3, _DOWN: 0.06, _PLANNED: 0.15, _OFF: 0.01}
"""Electrical power in each state, as a share of the machine's running power."""
_OVEN_POWER_SHARE = {_RUNNING: 1.0, _IDLE: 0.7, _SETUP: 0.7, _DOWN: 0.06, _PLANNED: 0.6, _OFF: 0.01}
"""An oven keeps its fans going while it holds temperature."""
_FUEL_SHARE = {_RUNNING: 1.0, _IDLE: 0.4, _SETUP: 0.4, _DOWN: 0.1, _PLANNED: 0.4, _OFF: 0.0}
"""Fuel burnt in each state, as a share of the firing rate (holding temperature, pilot flame)."""
_THERMAL_PER_ELECTRIC = 8.0
_DEFAULT_NCV_MJ_PER_KG = 45.0

_FALLBACK: dict[StateCategory, tuple[StateCategory, ...]] = {
    _RUNNING: (),
    _IDLE: (_DOWN,),
    _DOWN: (_IDLE,),
    _SETUP: (_IDLE, _DOWN),
    _PLANNED: (_IDLE, _OFF, _DOWN),
    _OFF: (_PLANNED, _IDLE, _DOWN),
}
"""Where a state signal's codes lack a category, the state is reported as the first of these."""


@dataclass(frozen=True, slots=True)
class TagUpdate:
    """A new value of one tag, stamped with the simulated instant it took that value.

    Attributes:
        machine: The machine id.
        signal: The signal name, as in the plant file.
        value: The value in the tag's raw form (PLC code, raw register units).
        source_ts: The simulated instant of the change (timezone-aware UTC).
    """

    machine: str
    signal: str
    value: TagValue
    source_ts: datetime


@dataclass(frozen=True, slots=True)
class TagSpec:
    """One tag the simulation writes: which machine and signal, its role and its value type.

    Attributes:
        machine: The machine id.
        signal: The signal name, as in the plant file.
        role: The signal's role.
        value_type: The OPC UA type the tag is served as.
    """

    machine: str
    signal: str
    role: Role
    value_type: ValueType


@dataclass(frozen=True, slots=True)
class MeterSample:
    """What a machine's electricity meter says at one meter instant, as an MQTT meter would publish.

    Attributes:
        line: The line id.
        machine: The machine id.
        ts: The simulated instant of the sample.
        power_w: Active power in W.
        energy_wh: The meter's cumulative energy in Wh (never rolls over).
    """

    line: str
    machine: str
    ts: datetime
    power_w: float
    energy_wh: float


def generic_plant(n_machines: int) -> PlantModel:
    """A plant of ``n_machines`` machines shaped like ``m1`` of ``examples/minimal.yaml``.

    One site ``demo`` (UTC, VN grid 2023), one line ``l1``, machines ``m1`` … ``mN`` with an ideal
    cycle time of 1 s, no calendar (they run around the clock) and the signals named after their
    roles: ``state`` (category names), ``total_count``, ``good_count``, ``reject_count``,
    ``power_kw`` (trapezoid) and ``energy_kwh``.

    Args:
        n_machines: How many machines, at least one.

    Returns:
        The validated plant model.

    Raises:
        ValueError: When ``n_machines`` is smaller than 1.
    """
    if n_machines < 1:
        raise ValueError(f"n_machines must be at least 1, got {n_machines}")
    signals: dict[str, Any] = {
        "state": {"role": "state"},
        "total_count": {"role": "total_count"},
        "good_count": {"role": "good_count"},
        "reject_count": {"role": "reject_count"},
        "power_kw": {"role": "power_kw", "integration": "trapezoid"},
        "energy_kwh": {"role": "energy_kwh"},
    }
    machines = [{"id": f"m{i}", "ideal_cycle_s": 1.0, "signals": signals} for i in range(1, n_machines + 1)]
    return PlantModel.model_validate(
        {
            "sites": [
                {
                    "id": "demo",
                    "timezone": "UTC",
                    "country": "VN",
                    "carbon": {"grid": {"country": "VN", "basis": "annual", "year": 2023}},
                    "lines": [{"id": "l1", "machines": machines}],
                }
            ]
        }
    )


# -- time ---------------------------------------------------------------------------------------------


def _to_us(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError(f"simulated instants must be timezone-aware (UTC), got {moment.isoformat()}")
    return (moment - _EPOCH) // timedelta(microseconds=1)


def _to_datetime(instant: int) -> datetime:
    return _EPOCH + timedelta(microseconds=instant)


def _decimal(value: float) -> Fraction:
    """The decimal a plant file meant by a float (``0.001`` is one thousandth, exactly)."""
    return Fraction(repr(value))


class _Phase(Enum):
    PRODUCTIVE = "productive"
    BREAK = "break"
    OFF = "off"


def _boundaries(span: ShiftInstance) -> tuple[int, ...]:
    return (span.start, span.end, *(t for b in span.breaks for t in b))


class _CalendarClock:
    """A shift calendar in one time zone: the phase at an instant and when it next changes.

    Shifts are expanded by ``streams.calendar.Schedule`` itself (an end at or before the start is
    on the next day, holidays remove shifts, overtime adds time), so the simulator and the
    pipeline agree on every boundary.
    """

    def __init__(self, calendar: Calendar, zone: str) -> None:
        self._schedule = Schedule(calendar, zone)
        self._zone = ZoneInfo(zone)

    def phase(self, instant: int) -> tuple[_Phase, int]:
        """The phase at ``instant`` (µs) and the next instant at which it may change."""
        day = datetime.fromtimestamp(instant / US, tz=self._zone).date()
        phase = _Phase.OFF
        candidates = (*self._spans(day - timedelta(days=1)), *self._spans(day))
        for span in sorted(candidates, key=lambda s: s.start):
            if span.start <= instant < span.end:
                in_break = any(a <= instant < b for a, b in span.breaks)
                phase = _Phase.BREAK if in_break else _Phase.PRODUCTIVE
                break
        # Spans of the day before, the day and the next contain every boundary up to the end of
        # the next day; beyond that, look ahead day by day (weekends, holidays).
        for ahead in range(1, 400):
            days = (
                (day - timedelta(days=1), day, day + timedelta(days=1))
                if ahead == 1
                else (day + timedelta(days=ahead),)
            )
            bounds = [t for d in days for span in self._spans(d) for t in _boundaries(span) if t > instant]
            if bounds:
                return phase, min(bounds)
        return phase, _NEVER

    def _spans(self, day: date) -> tuple[ShiftInstance, ...]:
        return self._schedule.instances(day)


# -- one machine --------------------------------------------------------------------------------------


@dataclass
class _Counter:
    signal: str
    role: Role
    modulus: int | None
    start: int
    produced: int = 0

    def raw(self) -> int:
        value = self.start + self.produced
        return value % self.modulus if self.modulus is not None else value


@dataclass
class _Register:
    """A cumulative register: an exact accumulator, a start value and the raw-unit arithmetic."""

    signal: str | None
    per_unit: int
    """Accumulator units per unit of the register's base quantity (kWh, or the fuel's unit)."""
    scale: Fraction
    modulus: Fraction | None
    integer: bool
    start: Fraction
    """The start value in the base quantity (kWh or fuel units)."""
    acc: int = 0
    last: TagValue | None = None

    def consumed(self) -> float:
        return self.acc / self.per_unit

    def __post_init__(self) -> None:
        # In accumulator units, a raw unit is ``per_unit × scale`` and the start and the modulus
        # are usually whole numbers: then the raw value is integer arithmetic and one division.
        unit = self.scale * self.per_unit
        start = self.start * self.per_unit
        modulus = self.modulus * unit if self.modulus is not None else None
        exact = unit.denominator == 1 and start.denominator == 1
        exact = exact and (modulus is None or modulus.denominator == 1)
        self._int_unit = unit.numerator if exact else 0
        self._int_start = start.numerator if exact else 0
        self._int_modulus = modulus.numerator if exact and modulus is not None else 0

    def raw(self) -> TagValue:
        if self._int_unit:
            n = self._int_start + self.acc
            if self._int_modulus:
                n %= self._int_modulus
            return n // self._int_unit if self.integer else n / self._int_unit
        raw = (self.start + Fraction(self.acc, self.per_unit)) / self.scale
        if self.modulus is not None:
            raw %= self.modulus
        return math.floor(raw) if self.integer else float(raw)

    def unrolled(self) -> float:
        if self._int_unit:
            return (self._int_start + self.acc) / self.per_unit
        return float(self.start + Fraction(self.acc, self.per_unit))


@dataclass
class _Fuel:
    register: _Register
    rate: int
    """Firing rate in micro-units per hour."""


def _rng(seed: int, machine: str, stream: str) -> random.Random:
    return random.Random(f"plantstream-simulator:{seed}:{machine}:{stream}")


def _state_reporting(
    signal: StateSignal | None,
) -> tuple[dict[StateCategory, TagValue], dict[StateCategory, str]]:
    """Per simulated category: the value the PLC writes and the category that value means."""
    if signal is None or not signal.codes:
        return {c: c.value for c in StateCategory}, {c: c.value for c in StateCategory}
    numeric = all(re.fullmatch(r"-?\d+", code) for code in signal.codes)
    inverse: dict[StateCategory, str] = {}
    for code, category in signal.codes.items():
        inverse.setdefault(category, code)
    values: dict[StateCategory, TagValue] = {}
    meaning: dict[StateCategory, str] = {}
    first = next(iter(signal.codes))
    for category in StateCategory:
        chain = (category, *_FALLBACK[category])
        code = next((inverse[c] for c in chain if c in inverse), first)
        values[category] = int(code) if numeric else code
        meaning[category] = signal.codes[code].value
    return values, meaning


@dataclass
class _Signals:
    """A machine's signals by kind."""

    state: tuple[str, StateSignal] | None = None
    product: str | None = None
    counters: list[tuple[str, CounterSignal]] = field(default_factory=list)
    power: tuple[str, PowerSignal] | None = None
    energy: tuple[str, EnergySignal] | None = None
    fuels: list[tuple[str, FuelSignal]] = field(default_factory=list)
    reason: str | None = None


def _classify(machine: Machine) -> _Signals:
    found = _Signals()
    for name, signal in machine.signals.items():
        if isinstance(signal, StateSignal):
            found.state = (name, signal)
        elif isinstance(signal, ProductSignal):
            found.product = name
        elif isinstance(signal, CounterSignal):
            found.counters.append((name, signal))
        elif isinstance(signal, PowerSignal):
            found.power = (name, signal)
        elif isinstance(signal, EnergySignal):
            found.energy = (name, signal)
        elif isinstance(signal, FuelSignal):
            found.fuels.append((name, signal))
        else:
            found.reason = name
    return found


def _counters(
    counters: list[tuple[str, CounterSignal]], rng: random.Random, pieces_per_hour: float, near_rollover: bool
) -> list[_Counter]:
    """Counters with seeded start values (consistent: good + reject = total), near their modulus."""
    base_total = rng.randint(10_000, 500_000)
    base_reject = base_total // 50
    starts = {
        Role.TOTAL_COUNT: base_total,
        Role.GOOD_COUNT: base_total - base_reject,
        Role.REJECT_COUNT: base_reject,
        Role.REWORK_COUNT: base_reject // 4,  # the simulated line reworks nothing: it stays there
    }
    out = []
    for name, signal in counters:
        first = starts[signal.role]
        if signal.modulus is not None:
            first %= signal.modulus
            if near_rollover:
                ahead = pieces_per_hour * (0.02 if signal.role is Role.REJECT_COUNT else 0.75)
                first = signal.modulus - max(1, min(signal.modulus - 1, int(ahead)))
        out.append(_Counter(name, signal.role, signal.modulus, first))
    return out


def _energy_register(
    energy: tuple[str, EnergySignal] | None, rng: random.Random, run_kw: float, near_rollover: bool
) -> _Register:
    """The energy register (or, without one, the machine's internal meter) with a seeded start."""
    if energy is None:
        return _Register(None, _ACC_PER_KWH, Fraction(1), None, False, Fraction(rng.randint(1_000, 250_000)))
    name, signal = energy
    scale = _decimal(signal.scale)
    modulus = _decimal(signal.modulus) if signal.modulus is not None else None
    integer = modulus is not None and modulus.denominator == 1 and modulus <= 2**32
    start_raw = Fraction(rng.randint(1_000, 250_000)) / scale  # a start in whole kWh
    if modulus is not None:
        start_raw %= modulus
        if near_rollover:  # about 45 minutes of running below the modulus
            ahead = Fraction(math.floor(Fraction(run_kw * 0.75) / scale))
            start_raw = modulus - max(Fraction(1), min(modulus - 1, ahead))
    return _Register(name, _ACC_PER_KWH, scale, modulus, integer, start_raw * scale)


def _fuel_meter(name: str, signal: FuelSignal, rated_kw: float, rng: random.Random) -> _Fuel:
    """A fuel meter firing at a thermal power of a few times the machine's electrical rating."""
    modulus = _decimal(signal.modulus) if signal.modulus is not None else None
    start = Fraction(rng.randint(100, 100_000))
    if modulus is not None:
        start %= modulus
    thermal_kw = rated_kw * _THERMAL_PER_ELECTRIC
    spec = FUELS.get(signal.fuel)
    ncv = spec.ncv_tj_per_gg if spec is not None else _DEFAULT_NCV_MJ_PER_KG  # MJ/kg
    per_hour = {
        "kg": thermal_kw * 3.6 / ncv,
        "t": thermal_kw * 3.6 / ncv / 1000,
        "GJ": thermal_kw * 3.6 / 1000,
        "TJ": thermal_kw * 3.6 / 1e6,
        "MWh": thermal_kw / 1000,
        "Nm3": thermal_kw * 3.6 / (signal.ncv_mj_per_nm3 or 36.0),
    }[signal.unit]
    register = _Register(name, _FUEL_ACC_PER_UNIT, Fraction(1), modulus, False, start)
    return _Fuel(register, max(1, round(per_hour * 1e6)))


class _MachineSim:
    """One machine's event timeline: state, pieces, power, registers."""

    def __init__(
        self,
        site: Site,
        line: Line,
        machine: Machine,
        calendar: _CalendarClock | None,
        micro_stop_max_s: float,
        seed: int,
        start: int,
        meter_period: int,
        near_rollover: bool,
        record_meters: bool,
        resume: Mapping[str, float] | None = None,
    ) -> None:
        self.id = machine.id
        self.line = line.id
        self.site = site.id
        self._calendar = calendar
        self._meter_period = meter_period
        self._rng_state = _rng(seed, machine.id, "state")
        self._rng_piece = _rng(seed, machine.id, "pieces")
        self._rng_power = _rng(seed, machine.id, "power")
        # Its own stream: reason codes leave every other draw (and so every existing timeline) as it was.
        self._rng_reason = _rng(seed, machine.id, "reasons")
        setup_rng = _rng(seed, machine.id, "setup")

        self._values: dict[str, TagValue] = {}
        self._stamps: dict[str, int] = {}
        self._out: list[tuple[int, str, TagValue]] = []
        self.produced: dict[str, dict[str, int]] = {}
        self.record_meters = record_meters
        self.meter_samples: list[tuple[int, int, float]] = []

        found = _classify(machine)
        self._state_signal = found.state[0] if found.state else None
        self._state_values, self._state_meaning = _state_reporting(found.state[1] if found.state else None)
        self._product_signal = found.product
        self._reason_signal = found.reason
        products = list(machine.ideal_cycle_s_by_product) if found.product else []
        self._products = products or ["standard"]
        self._power_signal = found.power[0] if found.power else None
        self._power_divisor = 1000 * (_decimal(found.power[1].scale) if found.power else Fraction(1))
        self._hold = found.power is not None and found.power[1].integration == "hold"

        # Per-machine character, drawn from the seed alone.
        rated = machine.rated_power_kw or _DEFAULT_RATED_KW
        self._run_w = rated * 1000 * setup_rng.uniform(0.55, 0.85)
        self._shares = _OVEN_POWER_SHARE if found.fuels and not found.counters else _POWER_SHARE
        self._speed_factor = setup_rng.uniform(1.0, 1.25)
        self._reject_p = setup_rng.uniform(0.005, 0.03)
        self._stop_factor = setup_rng.uniform(0.7, 1.4)
        threshold = micro_stop_max_s
        self._micro_stop_s = (2.0, min(15.0, 0.9 * threshold) if threshold >= 3.0 else 15.0)
        self._ideal = machine.ideal_cycle_s
        self._ideal_by_product = dict(machine.ideal_cycle_s_by_product)
        self._makes_pieces = bool(found.counters)
        self._changeovers = len(products) > 1
        self._product_index = setup_rng.randrange(len(self._products)) if self._changeovers else 0
        ideal = self._ideal_cycle()
        pieces_per_hour = 3600.0 / ideal if ideal else 0.0
        self._batch_left = setup_rng.randint(1, self._batch_size()) if self._changeovers else 0
        self._counters = _counters(found.counters, setup_rng, pieces_per_hour, near_rollover)
        self._energy = _energy_register(found.energy, setup_rng, self._run_w / 1000, near_rollover)
        self._fuels = [_fuel_meter(name, signal, rated, setup_rng) for name, signal in found.fuels]
        if resume:
            self._resume_from(resume)
        self.tags = [
            TagSpec(self.id, name, signal.role, self._value_type(signal))
            for name, signal in machine.signals.items()
        ]
        self._begin(start)

    def _resume_from(self, raw: Mapping[str, float]) -> None:
        """Continue cumulative tags from these raw values (a PLC keeps its counters and meters)."""
        for counter in self._counters:
            if counter.signal in raw:
                counter.start = int(raw[counter.signal])

        def resumed(register: _Register) -> _Register:
            if register.signal is None or register.signal not in raw:
                return register
            return replace(register, start=Fraction(str(raw[register.signal])) * register.scale)

        self._energy = resumed(self._energy)
        for fuel in self._fuels:
            fuel.register = resumed(fuel.register)

    def _begin(self, start: int) -> None:
        """The initial state and the initial value of every tag, all stamped at ``start``."""
        self._t = self._fuel_t = self._power_t = start
        self._code = 0
        self._reason_us: dict[int, int] = {}
        self._state_us = {c.value: 0 for c in StateCategory}
        self._next_state = self._next_piece = self._next_calendar = _NEVER
        self._after_stop = _RUNNING
        self._resume: tuple[StateCategory, int] | None = None
        self._scrap_left = 0
        self._power_w = 0
        self._next_tick = (start // self._meter_period + 1) * self._meter_period
        self._phase = _Phase.PRODUCTIVE
        if self._calendar is not None:
            self._phase, self._next_calendar = self._calendar.phase(start)
        initial = {_Phase.PRODUCTIVE: _RUNNING, _Phase.BREAK: _PLANNED, _Phase.OFF: _OFF}[self._phase]
        self._category = initial
        self._cycle_left = self._cycle_us()
        if initial is _RUNNING:
            self._enter_running(start)
        if self._product_signal is not None:
            self._emit(start, self._product_signal, self._products[self._product_index])
        if self._reason_signal is not None:
            self._emit(start, self._reason_signal, self._code)
        if self._state_signal is not None:
            self._emit(start, self._state_signal, self._state_values[initial])
        for counter in self._counters:
            self._emit(start, counter.signal, counter.raw())
        self._power_w = self._draw_power()
        if self._power_signal is not None:
            self._emit(start, self._power_signal, self._power_value())
        self._sample_registers(start)

    def _value_type(self, signal: Signal) -> ValueType:
        if isinstance(signal, StateSignal):
            numeric = signal.codes and all(isinstance(v, int) for v in self._state_values.values())
            return "int32" if numeric else "string"
        if isinstance(signal, CounterSignal):
            return "uint64" if signal.modulus is not None and signal.modulus > 2**32 else "uint32"
        if isinstance(signal, EnergySignal):
            return "uint32" if self._energy.integer else "double"
        if isinstance(signal, ProductSignal):
            return "string"
        if isinstance(signal, ReasonSignal):
            return "int32"
        return "double"

    # -- helpers ----------------------------------------------------------------------------------

    def _ideal_cycle(self) -> float:
        if self._product_signal is not None or not self._ideal:
            by_product = self._ideal_by_product.get(self._products[self._product_index])
            if by_product is not None:
                return by_product
        if self._ideal is not None:
            return self._ideal
        return next(iter(self._ideal_by_product.values()), 0.0)

    def _cycle_us(self) -> int:
        ideal = self._ideal_cycle()
        if not ideal:
            return _NEVER
        jitter = self._rng_piece.uniform(0.98, 1.02)
        return max(round(ideal * US), round(ideal * self._speed_factor * jitter * US))

    def _batch_size(self) -> int:
        ideal = self._ideal_cycle() or 1.0
        return max(1, round(self._rng_state.uniform(*_BATCH_S) / ideal))

    def _reported(self) -> str:
        return self._state_meaning[self._category]

    def _emit(self, t: int, signal: str, value: TagValue) -> None:
        self._values[signal] = value
        self._stamps[signal] = t
        self._out.append((t, signal, value))

    def _power_value(self) -> float:
        if self._power_divisor.denominator == 1:  # kW or W: one correctly rounded division
            return self._power_w / self._power_divisor.numerator
        return float(self._power_w / self._power_divisor)

    def _draw_power(self) -> int:
        level = self._run_w * self._shares[self._category]
        spread = 0.02 if self._category is _RUNNING else 0.04
        watts = max(1, round(level * (1.0 + self._rng_power.gauss(0.0, spread))))
        if watts == self._power_w:  # every sample is a change, so report-on-change loses none
            watts += 1
        return watts

    def _sample_power(self, t: int) -> None:
        """Take a power sample at ``t``: integrate up to it exactly, then report it."""
        if t == self._power_t:
            return
        new = self._draw_power()
        dt = t - self._power_t
        if self._hold:
            self._energy.acc += 2 * self._power_w * dt
        else:
            self._energy.acc += (self._power_w + new) * dt
        self._power_w, self._power_t = new, t
        if self._power_signal is not None:
            self._emit(t, self._power_signal, self._power_value())

    def _accrue_fuel(self, t: int) -> None:
        share = _FUEL_SHARE[self._category]
        dt = t - self._fuel_t
        if dt > 0 and share:
            for fuel in self._fuels:
                fuel.register.acc += round(fuel.rate * share) * dt
        self._fuel_t = t

    def _sample_registers(self, t: int) -> None:
        if self._energy.signal is not None:
            value = self._energy.raw()
            if value != self._energy.last:
                self._energy.last = value
                self._emit(t, self._energy.signal, value)
        for fuel in self._fuels:
            value = fuel.register.raw()
            if value != fuel.register.last and fuel.register.signal is not None:
                fuel.register.last = value
                self._emit(t, fuel.register.signal, value)
        if self.record_meters:
            self.meter_samples.append((t, self._power_w, self._energy.unrolled() * 1000))

    # -- state changes ----------------------------------------------------------------------------

    def _set_state(self, t: int, category: StateCategory) -> None:
        if category is self._category:
            return
        self._accrue_fuel(t)
        if self._category is _RUNNING and self._next_piece != _NEVER:
            self._cycle_left = max(1, self._next_piece - t)
            self._next_piece = _NEVER
        self._category = category
        if category is _RUNNING and self._code:
            self._set_code(t, 0)
        if self._state_signal is not None:
            value = self._state_values[category]
            if value != self._values.get(self._state_signal):
                self._emit(t, self._state_signal, value)
        self._sample_power(t)
        if category is _RUNNING:
            self._enter_running(t)

    def _set_code(self, t: int, code: int) -> None:
        self._code = code
        if self._reason_signal is not None:
            self._emit(t, self._reason_signal, code)

    def _reason(self, t: int, kind: str) -> None:
        """A stop of ``kind`` begins at ``t``: the PLC writes its code (machines with a reason tag)."""
        if self._reason_signal is None:
            return
        codes = REASON_CODES[kind]
        code = self._rng_reason.choices([c for c, _ in codes], [w for _, w in codes])[0]
        self._set_code(t, code)

    def _enter_running(self, t: int) -> None:
        if self._makes_pieces:
            self._next_piece = t + self._cycle_left
        rate = (
            1 / _MICRO_STOP_MEAN_GAP_S + 1 / _STARVED_MEAN_GAP_S + 1 / _BREAKDOWN_MEAN_GAP_S
        ) * self._stop_factor
        self._next_state = t + max(1, round(self._rng_state.expovariate(rate) * US))

    def _stop(self, t: int) -> None:
        """A random stop, chosen in proportion to how often each kind happens."""
        weights = (1 / _MICRO_STOP_MEAN_GAP_S, 1 / _STARVED_MEAN_GAP_S, 1 / _BREAKDOWN_MEAN_GAP_S)
        kind = self._rng_state.choices(("micro", "starved", "breakdown"), weights)[0]
        if kind == "micro":
            category = _IDLE if self._rng_state.random() < 0.6 else _DOWN
            seconds = self._rng_state.uniform(*self._micro_stop_s)
        elif kind == "starved":
            category, seconds = _IDLE, self._rng_state.uniform(*_STARVED_S)
        else:
            category, seconds = _DOWN, self._rng_state.uniform(*_BREAKDOWN_S)
        self._next_state = t + max(1, round(seconds * US))
        self._after_stop = _RUNNING
        self._reason(t, kind)
        self._set_state(t, category)

    def _changeover(self, t: int) -> None:
        self._product_index = (self._product_index + 1) % len(self._products)
        assert self._product_signal is not None
        self._emit(t, self._product_signal, self._products[self._product_index])
        self._batch_left = self._batch_size()
        self._cycle_left = self._cycle_us()
        self._next_state = t + round(self._rng_state.uniform(*_SETUP_S) * US)
        self._after_stop = _RUNNING
        self._scrap_left = _STARTUP_SCRAP_PIECES
        self._reason(t, "setup")
        self._set_state(t, _SETUP)

    def _on_state_timer(self, t: int) -> None:
        if self._category is _RUNNING:
            self._stop(t)
        else:
            self._next_state = _NEVER
            self._set_state(t, self._after_stop)

    def _on_calendar(self, t: int) -> None:
        assert self._calendar is not None
        phase, self._next_calendar = self._calendar.phase(t)
        if phase is self._phase:
            return
        previous, self._phase = self._phase, phase
        if phase is not _Phase.PRODUCTIVE:
            if (
                previous is _Phase.PRODUCTIVE
                and self._category is not _RUNNING
                and self._next_state != _NEVER
            ):
                # A setup or a repair goes on after the break.
                self._resume = (self._category, self._next_state - t)
            if phase is _Phase.OFF:
                self._resume = None
            self._next_state = _NEVER
            self._set_state(t, _PLANNED if phase is _Phase.BREAK else _OFF)
        elif previous is _Phase.OFF:  # a shift begins: a short start-up first
            self._next_state = t + round(self._rng_state.uniform(*_START_UP_S) * US)
            self._after_stop = _RUNNING
            self._scrap_left = _STARTUP_SCRAP_PIECES
            self._reason(t, "start_up")
            self._set_state(t, _IDLE)
        elif self._resume is not None:  # back from a break to an unfinished setup or repair
            category, remaining = self._resume
            self._resume = None
            self._next_state = t + remaining
            self._after_stop = _RUNNING
            self._set_state(t, category)
        else:  # back from a break
            self._set_state(t, _RUNNING)

    def _on_piece(self, t: int) -> None:
        product = self._products[self._product_index]
        p_reject = _STARTUP_REJECT_P if self._scrap_left > 0 else self._reject_p
        self._scrap_left = max(0, self._scrap_left - 1)
        rejected = self._rng_piece.random() < p_reject
        tally = self.produced.setdefault(product, {"total": 0, "good": 0, "reject": 0})
        tally["total"] += 1
        tally["reject" if rejected else "good"] += 1
        for counter in self._counters:
            if (
                counter.role is Role.TOTAL_COUNT
                or (counter.role is Role.REJECT_COUNT and rejected)
                or (counter.role is Role.GOOD_COUNT and not rejected)
            ):
                counter.produced += 1
                self._emit(t, counter.signal, counter.raw())
        if self._changeovers:
            self._batch_left -= 1
            if self._batch_left <= 0:
                self._next_piece = _NEVER
                self._changeover(t)
                return
        self._cycle_left = self._cycle_us()
        self._next_piece = t + self._cycle_left

    def _on_tick(self, t: int) -> None:
        self._accrue_fuel(t)
        self._sample_power(t)
        self._sample_registers(t)
        self._next_tick = t + self._meter_period

    # -- the timeline -----------------------------------------------------------------------------

    def advance(self, now: int) -> list[tuple[int, str, TagValue]]:
        """Process every event up to and including ``now``; return (µs, signal, value) updates."""
        while True:
            t = min(self._next_piece, self._next_calendar, self._next_state, self._next_tick)
            if t > now:
                break
            self._state_us[self._reported()] += t - self._t
            self._book_reason(t)
            self._t = t
            # At one instant: a piece finishing belongs before the stop, the tick samples after it.
            if self._next_piece == t:
                self._on_piece(t)
            elif self._next_calendar == t:
                self._on_calendar(t)
            elif self._next_state == t:
                self._on_state_timer(t)
            else:
                self._on_tick(t)
        out, self._out = self._out, []
        return out

    def _stopped_in_busy_time(self) -> bool:
        return (
            self._reason_signal is not None
            and self._phase is _Phase.PRODUCTIVE
            and self._reported() in _STOP_REPORTED
        )

    def _book_reason(self, t: int) -> None:
        """Stop time in planned busy time since the last event, under the code active."""
        if t > self._t and self._stopped_in_busy_time():
            self._reason_us[self._code] = self._reason_us.get(self._code, 0) + t - self._t

    def truth(self, now: int) -> dict[str, Any]:
        """Exact totals since the start (state time up to ``now``, energy up to the last sample)."""
        state_s = dict(self._state_us)
        state_s[self._reported()] += max(0, now - self._t)
        by_code = dict(self._reason_us)
        if now > self._t and self._stopped_in_busy_time():
            by_code[self._code] = by_code.get(self._code, 0) + now - self._t
        extra = {"stop_s_by_code": {str(c): v / US for c, v in sorted(by_code.items())}}
        totals = {"total": 0, "good": 0, "reject": 0}
        for tally in self.produced.values():
            for key in totals:
                totals[key] += tally[key]
        return {
            "site": self.site,
            "line": self.line,
            **totals,
            "by_product": {p: dict(t) for p, t in sorted(self.produced.items())},
            "energy_kwh": self._energy.consumed(),
            "fuel": {f.register.signal: f.register.consumed() for f in self._fuels},
            "state_s": {k: v / US for k, v in state_s.items()},
            "state": self._reported(),
            "product": self._products[self._product_index] if self._product_signal else None,
            **(extra if self._reason_signal is not None else {}),
        }

    def values(self) -> list[tuple[int, str, TagValue]]:
        """The current value of every tag, with the instant it took it."""
        return [(self._stamps[name], name, value) for name, value in self._values.items()]


# -- the plant ----------------------------------------------------------------------------------------


class PlantSimulation:
    """Every machine of a plant model, simulated deterministically in simulated time.

    Args:
        plant: A validated plant model (``load_plant(path).model`` or :func:`generic_plant`).
        seed: The seed; the same seed and start give the same updates and the same truth.
        start: The simulated start instant (timezone-aware). Without it, the simulation starts
            at the instant of the first :meth:`step`.
        meter_period_s: Seconds between two meter samples (power, energy, fuel).
        near_rollover: Start registers and counters that have a modulus close to it, so they roll
            over within the first hour.
        record_meters: Keep meter samples for :meth:`take_meter_samples` (for an MQTT publisher);
            off by default, so nothing accumulates when nobody takes them.
        resume: Per machine, raw values of its counters and registers (by signal name) to
            continue from instead of the seeded start values, as a PLC keeps them across a
            restart of the pipeline (the demo continues an earlier run's state this way).

    Raises:
        ValueError: When ``start`` is naive or ``meter_period_s`` is not positive.
    """

    def __init__(
        self,
        plant: PlantModel,
        seed: int = 0,
        *,
        start: datetime | None = None,
        meter_period_s: float = 1.0,
        near_rollover: bool = True,
        record_meters: bool = False,
        resume: Mapping[str, Mapping[str, float]] | None = None,
    ) -> None:
        if not meter_period_s > 0:
            raise ValueError(f"meter_period_s must be > 0, got {meter_period_s}")
        self.plant = plant
        self.seed = seed
        self._meter_period = max(1, round(meter_period_s * US))
        self._near_rollover = near_rollover
        self._record_meters = record_meters
        self._resume = resume or {}
        self._machines: list[_MachineSim] = []
        self._now = 0
        self._started = False
        if start is not None:
            self._start(_to_us(start))

    def _start(self, start: int) -> None:
        clocks: dict[tuple[str, str], _CalendarClock] = {}
        for site, line, machine in self.plant.machines():
            calendar_id = machine.calendar or line.calendar or site.calendar
            clock = None
            if calendar_id is not None and calendar_id in self.plant.calendars:
                key = (calendar_id, site.timezone)
                if key not in clocks:
                    clocks[key] = _CalendarClock(self.plant.calendars[calendar_id], site.timezone)
                clock = clocks[key]
            micro = machine.micro_stop_max_s
            if micro is None:
                micro = self.plant.production.micro_stop_max_s
            sim = _MachineSim(
                site,
                line,
                machine,
                clock,
                micro,
                self.seed,
                start,
                self._meter_period,
                self._near_rollover,
                self._record_meters,
                self._resume.get(machine.id),
            )
            self._machines.append(sim)
        self._now = start
        self._started = True

    @property
    def started(self) -> bool:
        """True once the start instant is known."""
        return self._started

    @property
    def now(self) -> datetime:
        """The simulated instant the simulation has been advanced to.

        Raises:
            RuntimeError: Before the start instant is known.
        """
        if not self._started:
            raise RuntimeError("the simulation has not started: give start= or call step()")
        return _to_datetime(self._now)

    def tags(self) -> list[TagSpec]:
        """Every tag the simulation writes, machine by machine in plant-file order.

        Raises:
            RuntimeError: Before the start instant is known.
        """
        if not self._started:
            raise RuntimeError("the simulation has not started: give start= or call step()")
        return [spec for machine in self._machines for spec in machine.tags]

    def step(self, now: datetime) -> list[TagUpdate]:
        """Advance every machine to ``now`` and return the tag values that changed.

        The first call also returns the initial value of every tag, stamped with the start
        instant. Updates are in order of their source timestamps (machines in plant-file order
        at equal instants); a tag that changed several times appears several times. An instant
        at or before the current one changes nothing.

        Args:
            now: The simulated instant to advance to (timezone-aware).

        Returns:
            The updates, each stamped with the simulated instant of the change.
        """
        target = _to_us(now)
        if not self._started:
            self._start(target)
        collected: list[tuple[int, int, str, str, TagValue]] = []
        order = 0
        for machine in self._machines:
            updates = machine.advance(max(target, self._now))
            for t, signal, value in updates:
                collected.append((t, order, machine.id, signal, value))
                order += 1
        self._now = max(self._now, target)
        collected.sort(key=lambda u: (u[0], u[1]))
        return [TagUpdate(m, s, v, _to_datetime(t)) for t, _, m, s, v in collected]

    def snapshot(self) -> list[TagUpdate]:
        """The current value of every tag, stamped with the instant it took that value.

        Raises:
            RuntimeError: Before the start instant is known.
        """
        if not self._started:
            raise RuntimeError("the simulation has not started: give start= or call step()")
        return [
            TagUpdate(machine.id, signal, value, _to_datetime(t))
            for machine in self._machines
            for t, signal, value in machine.values()
        ]

    def take_meter_samples(self) -> list[MeterSample]:
        """The meter samples taken since the last call, in time order (needs ``record_meters``)."""
        samples: list[MeterSample] = []
        for machine in self._machines:
            for t, power_w, energy_wh in machine.meter_samples:
                samples.append(MeterSample(machine.line, machine.id, _to_datetime(t), power_w, energy_wh))
            machine.meter_samples.clear()
        samples.sort(key=lambda s: s.ts)
        return samples

    def truth(self) -> dict[str, Any]:
        """The ground truth: exactly what the simulation produced and consumed since the start.

        Returns:
            ``{"at": ISO 8601 simulated instant, "start": ..., "seed": ..., "machines": {id: {...}}}``
            where each machine has ``site``, ``line``, ``total``, ``good``, ``reject`` (pieces
            made, whether or not the machine has that counter), ``by_product`` (the same per
            product), ``energy_kwh`` (consumed up to the last meter sample), ``fuel`` (per fuel
            signal, in its unit, up to the last meter sample), ``state_s`` (seconds per category
            as the state tag reported it, up to ``at``), and the current ``state`` and ``product``.

        Raises:
            RuntimeError: Before the start instant is known.
        """
        if not self._started:
            raise RuntimeError("the simulation has not started: give start= or call step()")
        return {
            "at": _iso(self._now),
            "seed": self.seed,
            "machines": {m.id: m.truth(self._now) for m in self._machines},
        }


def _iso(instant: int) -> str:
    return _to_datetime(instant).isoformat().replace("+00:00", "Z")
