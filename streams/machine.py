"""The per-machine calculator: readings in event-time order in, closed window results out.

A sans-I/O state machine (no clock, no I/O): readings in event-time order go in through
:meth:`MachineCalc.advance` (move event time, returning the tumbling and shift windows that
closed, as :class:`WindowResult`) and :meth:`MachineCalc.feed` (apply the value). All mutable
state lives in :class:`MachineState`, which is plain data, so it can be copied for late-data
corrections and serialised for checkpoints.

Attribution rules (docs/references.md [ISO22400-2], [OPC-40001], [FLUX-INC]):
- A state reading at ``t`` holds from ``t`` until the next one (latest-state value); a reading
  of bad quality makes the state unknown from ``t``. Time before the first state is unknown.
- A cumulative counter sample at ``t`` reports what was made in ``(t_prev, t]``: the increase is
  booked in the window containing that interval's end, so a sample at exactly 16:00 belongs to
  the shift that ends at 16:00.
- An energy or fuel register increase is spread evenly over ``(t_prev, t]`` across window edges;
  after a gap longer than ``max_gap_s`` it is booked whole at ``t`` (the total stays exact).
- Power is integrated by the trapezoid (or hold) rule, interpolated at window edges, never across
  a gap longer than ``max_gap_s``.
- A stop (idle or down) of at most ``micro_stop_max_s`` is a micro-stop and stays in run time
  (a performance loss); longer, it is an availability loss. A window overlapping a stop whose
  length is not yet known waits, at most ``micro_stop_max_s``, before it closes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from functools import partial
from typing import Any

from streams import carbon
from streams.calendar import Schedule, ShiftInstance, WindowProfile
from streams.config import DOWN, IDLE, MICRO, OFF, PLANNED_STOP, RUNNING, SETUP, MachineSpec
from streams.counters import CounterEvent
from streams.energy import US_PER_HOUR, hold_kwh, trapezoid_kwh
from streams.oee import OeeElements
from streams.plausibility import (
    DEFAULT_MAX_FUEL_PER_S,
    MAX_EXACT,
    Bound,
    Increase,
    confirms_new_baseline,
    count_bound,
    energy_bound,
    judge,
    max_kw,
)
from streams.stops import OPERATOR_REASON, StopEvent, StopTracker

__all__ = [
    "STATE_VERSION",
    "BadValue",
    "Implausible",
    "MachineCalc",
    "MachineState",
    "Stats",
    "WindowResult",
]

_STOPS = (IDLE, DOWN)
_CATEGORY_NAMES = {IDLE: "idle", DOWN: "down", SETUP: "setup", OFF: "off", RUNNING: "running"}
_CATEGORY_NAMES[PLANNED_STOP] = "planned_stop"
STATE_VERSION = 1
"""Version of the checkpoint form of :class:`MachineState`; bump it when the form changes."""
COUNTER_COVER_GAP_US = 900 * 1_000_000
"""Counter readings further apart than this (or than the window, the longer) leave the time between
them uncovered: the energy register's default ``max_gap_s``, for counters that have none."""
_NEVER = 2**62
_SNAPSHOT_EMPTY: dict[Any, Any] = {}
"""The empty dict of every snapshot (:meth:`MachineState.snapshot`): snapshots are never written."""
_SNAPSHOT_NO_EVENTS: list[Any] = []
"""The empty list of ended stops of every snapshot, likewise."""
DEFAULT_GAP_FILL_US = 8 * 86_400 * 1_000_000
"""Eight days: a week's silence (a plant holiday) still yields that week's windows."""


class BadValue(ValueError):
    """A reading's value cannot mean anything for its signal (e.g. text on a counter)."""

    reason = "bad_value"
    """The short key the engine counts and dead-letters it under."""


class Implausible(BadValue):
    """A number the machine cannot have made: more than it can produce, or a fall that is no reset.

    The machine's baseline stays where it was (see :mod:`streams.plausibility`).
    """

    reason = "implausible"


@dataclass(slots=True)
class Stats:
    """Events worth counting and reporting, per machine."""

    counter_resets: int = 0
    counter_rollovers: int = 0
    register_resets: int = 0
    register_rollovers: int = 0
    register_spikes: int = 0
    """No longer counted (``implausible`` counts refused values); kept so older checkpoints load."""
    bad_quality: int = 0
    unknown_product: int = 0
    implausible: int = 0
    rebased: int = 0


@dataclass(slots=True)
class WindowResult:
    """A closed window of one machine: OEE elements, energy and emissions.

    ``kind`` is ``window`` (tumbling) or ``shift``. Emissions are in kg CO2e; ``scope2_market_kg``
    is ``None`` where no market-based instruments are configured. ``scope1_co2_kg`` is the CO2
    alone of the same fuels (``AD x EF_CO2 x OF``): CBAM counts CO2, not the CH4 and N2O of
    combustion that ``scope1_kg`` adds by the GWP set (IR 2025/2547 Annex II B, Annex I of
    Reg. 2023/956).
    """

    kind: str
    start: int
    end: int
    shift: str | None
    elements: OeeElements
    kwh: float = 0.0
    energy_covered_us: int = 0
    fuel_tj: float = 0.0
    scope1_kg: float = 0.0
    scope2_location_kg: float = 0.0
    scope2_market_kg: float | None = None
    scope1_co2_kg: float = 0.0
    count_covered_us: int = 0
    """The time of the window the counters covered (the best covered of the machine's counters):
    between two accepted readings of a signal not further apart than the gap-fill bound. A weigh
    scale or a piece counter that falls silent covers nothing, so its silence is seen as a gap
    (docs/cbam.md, data completeness)."""
    fuel_covered_us: int = 0
    """The same for the machine's fuel meters (the least of them)."""

    def copy(self) -> WindowResult:
        """An independent copy."""
        return WindowResult(
            self.kind,
            self.start,
            self.end,
            self.shift,
            self.elements.copy(),
            self.kwh,
            self.energy_covered_us,
            self.fuel_tj,
            self.scope1_kg,
            self.scope2_location_kg,
            self.scope2_market_kg,
            self.scope1_co2_kg,
            self.count_covered_us,
            self.fuel_covered_us,
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form: what ``dataclasses.asdict`` gives, several times faster.

        Checkpoints of thousands of machines are built while the event loop waits.
        """
        data = {name: getattr(self, name) for name in _RESULT_FIELDS}
        data["elements"] = self.elements.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WindowResult:
        """Rebuild a result from :meth:`to_dict` (or ``dataclasses.asdict``) output."""
        return cls(**{**data, "elements": OeeElements(**data["elements"])})

    def add(self, other: WindowResult, *, counts_pieces: bool | None = None) -> None:
        """Sum ``other`` into this result.

        A window into its shift; or, with ``counts_pieces``, a member's window into a roll-up
        (:meth:`OeeElements.add_member`).
        """
        if counts_pieces is None:
            self.elements.add(other.elements)
        else:
            self.elements.add_member(other.elements, counts_pieces)
        self.kwh += other.kwh
        self.energy_covered_us += other.energy_covered_us
        self.fuel_tj += other.fuel_tj
        self.scope1_kg += other.scope1_kg
        self.scope2_location_kg += other.scope2_location_kg
        if other.scope2_market_kg is not None:
            self.scope2_market_kg = (self.scope2_market_kg or 0.0) + other.scope2_market_kg
        self.scope1_co2_kg += other.scope1_co2_kg
        self.count_covered_us += other.count_covered_us
        self.fuel_covered_us += other.fuel_covered_us


_RESULT_FIELDS = tuple(f.name for f in fields(WindowResult) if f.name != "elements")
_STATS_FIELDS = tuple(f.name for f in fields(Stats))


class _Window:
    """Accumulator of one open tumbling window."""

    __slots__ = (
        "counts",
        "cover_meter",
        "cover_power",
        "cover_register",
        "durations",
        "fuel",
        "ideal",
        "kwh_power",
        "kwh_register",
        "profile",
        "start",
        "startup",
        "stops",
    )

    def __init__(self, start: int, profile: WindowProfile) -> None:
        self.start = start
        self.profile = profile
        self.durations = [0] * 7
        self.counts: list[float] = [0, 0, 0, 0]
        """Pieces counted in the window: total, good, reject, rework (COUNTER_INDEX)."""
        self.ideal = 0.0
        self.kwh_power = 0.0
        self.cover_power = 0
        self.kwh_register = 0.0
        self.cover_register = 0
        self.fuel: dict[str, float] = {}
        self.cover_meter: dict[str, int] = {}
        """Counter or fuel signal -> the time of the window its readings covered (µs)."""
        self.stops = [0, 0, 0]
        """Stops that ended in the window: micro-stops not included, micro-stops, failures (down)."""
        self.startup = 0.0
        """Rejects counted while starting up after a setup (part of ``counts[2]``)."""

    def copy(self) -> _Window:
        """An independent copy (the profile is immutable and shared)."""
        twin = _Window(self.start, self.profile)
        twin.durations = self.durations[:]
        twin.counts = self.counts[:]
        twin.ideal = self.ideal
        twin.kwh_power, twin.cover_power = self.kwh_power, self.cover_power
        twin.kwh_register, twin.cover_register = self.kwh_register, self.cover_register
        twin.fuel = dict(self.fuel)
        twin.cover_meter = dict(self.cover_meter)
        twin.stops = self.stops[:]
        twin.startup = self.startup
        return twin

    def snapshot(self) -> _Window:
        """A copy to keep in a snapshot (:meth:`MachineState.snapshot`): its empty dicts shared."""
        twin = self.copy()
        if not twin.fuel:
            twin.fuel = _SNAPSHOT_EMPTY
        if not twin.cover_meter:
            twin.cover_meter = _SNAPSHOT_EMPTY
        return twin


@dataclass(slots=True)
class _ShiftTotal:
    """Sum of the closed tumbling windows of one shift instance."""

    shift: ShiftInstance
    result: WindowResult
    covered_scheduled: int = 0
    covered_break: int = 0

    def copy(self) -> _ShiftTotal:
        """An independent copy."""
        return _ShiftTotal(self.shift, self.result.copy(), self.covered_scheduled, self.covered_break)


@dataclass(slots=True)
class MachineState:
    """All mutable state of one machine's calculator: plain data, copyable and serialisable."""

    released_until: int | None = None
    accounted_until: int | None = None
    category: int | None = None
    pending_stop: int | None = None
    product: str | None = None
    counter_last: dict[str, float] = field(default_factory=dict)
    counter_at: dict[str, int] = field(default_factory=dict)
    """When each counter's baseline (``counter_last``) was read, for its plausibility bound."""
    suspects: dict[str, list[list[float]]] = field(default_factory=dict)
    """Per cumulative signal, the refused readings since its last accepted one (a replaced meter)."""
    register_last: tuple[int, float] | None = None
    power_last: tuple[int, float] | None = None
    fuel_last: dict[str, tuple[int, float]] = field(default_factory=dict)
    windows: dict[int, _Window] = field(default_factory=dict)
    shifts: dict[int, _ShiftTotal] = field(default_factory=dict)
    closed_until: int = -_NEVER
    next_check: int = -_NEVER
    blocked: bool = False
    stats: Stats = field(default_factory=Stats)
    stop: StopTracker = field(default_factory=StopTracker)
    """The open stop and the reason code now active (streams.stops)."""
    ended: list[StopEvent] = field(default_factory=list)
    """Stops ended since the engine last took them (:meth:`MachineCalc.take_stops`)."""
    startup_until: int | None = None
    """Until when rejects are start-up rejects (the last setup's end + ``startup_reject_s``)."""

    def copy(self) -> MachineState:
        """A deep copy, for snapshots taken before late data is re-applied.

        Written out rather than ``copy.deepcopy``: snapshots are taken at every window close, and
        the calendar objects a window refers to are immutable and can be shared.
        """
        return self._copied(snapshot=False)

    def snapshot(self) -> MachineState:
        """A deep copy to keep as a snapshot, which is never written, only copied from (:meth:`copy`).

        Its empty dicts and lists are one shared object each instead of its own: a meter's state
        is mostly empty containers (five dicts, the list of ended stops, two dicts an open window),
        about 500 B of each snapshot. :meth:`copy` of a snapshot gives containers of its own.
        """
        return self._copied(snapshot=True)

    def _copied(self, *, snapshot: bool) -> MachineState:
        own = not snapshot  # a copy owns even its empty containers; a snapshot shares them
        return MachineState(
            released_until=self.released_until,
            accounted_until=self.accounted_until,
            category=self.category,
            pending_stop=self.pending_stop,
            product=self.product,
            counter_last=dict(self.counter_last) if own or self.counter_last else _SNAPSHOT_EMPTY,
            counter_at=dict(self.counter_at) if own or self.counter_at else _SNAPSHOT_EMPTY,
            suspects={k: [p[:] for p in v] for k, v in self.suspects.items()}
            if own or self.suspects
            else _SNAPSHOT_EMPTY,
            register_last=self.register_last,
            power_last=self.power_last,
            fuel_last=dict(self.fuel_last) if own or self.fuel_last else _SNAPSHOT_EMPTY,
            windows={start: w.copy() if own else w.snapshot() for start, w in self.windows.items()},
            shifts={start: t.copy() for start, t in self.shifts.items()}
            if own or self.shifts
            else _SNAPSHOT_EMPTY,
            closed_until=self.closed_until,
            next_check=self.next_check,
            blocked=self.blocked,
            stats=replace(self.stats),
            stop=self.stop.copy(),
            ended=self.ended[:] if own or self.ended else _SNAPSHOT_NO_EVENTS,
            startup_until=self.startup_until,
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form of the state, for checkpoints (see :meth:`from_dict`)."""
        return {
            "version": STATE_VERSION,
            "released_until": self.released_until,
            "accounted_until": self.accounted_until,
            "category": self.category,
            "pending_stop": self.pending_stop,
            "product": self.product,
            "counter_last": self.counter_last,
            "counter_at": self.counter_at,
            "suspects": self.suspects,
            "register_last": self.register_last,
            "power_last": self.power_last,
            "fuel_last": self.fuel_last,
            "windows": [
                [
                    w.start,
                    w.durations,
                    w.counts,
                    w.ideal,
                    w.kwh_power,
                    w.cover_power,
                    w.kwh_register,
                    w.cover_register,
                    w.fuel,
                    w.stops,
                    w.startup,
                    w.cover_meter,
                ]
                for w in self.windows.values()
            ],
            "shifts": [
                {
                    "shift": {
                        "name": t.shift.name,
                        "start": t.shift.start,
                        "end": t.shift.end,
                        "breaks": t.shift.breaks,
                    },
                    "result": t.result.to_dict(),
                    "covered_scheduled": t.covered_scheduled,
                    "covered_break": t.covered_break,
                }
                for t in self.shifts.values()
            ],
            "closed_until": self.closed_until,
            "next_check": self.next_check,
            "blocked": self.blocked,
            "stats": {name: getattr(self.stats, name) for name in _STATS_FIELDS},
            "stop": self.stop.to_list(),
            "ended": [event.to_list() for event in self.ended],
            "startup_until": self.startup_until,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], schedule: Schedule) -> MachineState:
        """Rebuild a state written by :meth:`to_dict`; window profiles come from ``schedule``.

        Raises:
            ValueError: the data is from another state version.
        """
        if data.get("version") != STATE_VERSION:
            raise ValueError(f"machine state version {data.get('version')!r}, expected {STATE_VERSION}")
        windows = {}
        for start, durations, counts, ideal, kwh_p, cover_p, kwh_r, cover_r, fuel, *rest in data["windows"]:
            w = _Window(start, schedule.profile(start))
            if rest:  # absent from checkpoints written before stop events
                w.stops, w.startup = list(rest[0]), rest[1]
            if len(rest) > 2:  # absent before meter coverage: such a window shows none
                w.cover_meter = dict(rest[2])
            # A checkpoint written before rework counters has three counts.
            w.durations, w.counts, w.ideal = list(durations), [*counts, 0, 0, 0, 0][:4], ideal
            w.kwh_power, w.cover_power, w.kwh_register, w.cover_register = kwh_p, cover_p, kwh_r, cover_r
            w.fuel = dict(fuel)
            windows[start] = w
        shifts = {}
        for item in data["shifts"]:
            raw = item["shift"]
            shift = ShiftInstance(
                raw["name"], raw["start"], raw["end"], tuple(tuple(b) for b in raw["breaks"])
            )
            shifts[shift.start] = _ShiftTotal(
                shift,
                WindowResult.from_dict(item["result"]),
                item["covered_scheduled"],
                item["covered_break"],
            )

        def pair(value: list[Any] | None) -> tuple[int, float] | None:
            return None if value is None else (value[0], value[1])

        return cls(
            released_until=data["released_until"],
            accounted_until=data["accounted_until"],
            category=data["category"],
            pending_stop=data["pending_stop"],
            product=data["product"],
            counter_last=dict(data["counter_last"]),
            # Absent from checkpoints written before the plausibility rules: no bound for one sample.
            counter_at=dict(data.get("counter_at", {})),
            suspects={k: [list(p) for p in v] for k, v in data.get("suspects", {}).items()},
            register_last=pair(data["register_last"]),
            power_last=pair(data["power_last"]),
            fuel_last={k: (v[0], v[1]) for k, v in data["fuel_last"].items()},
            windows=windows,
            shifts=shifts,
            closed_until=data["closed_until"],
            next_check=data["next_check"],
            blocked=data["blocked"],
            stats=Stats(**data["stats"]),
            stop=StopTracker.from_list(data["stop"]) if "stop" in data else StopTracker(),
            ended=[StopEvent.from_list(event) for event in data.get("ended", [])],
            startup_until=data.get("startup_until"),
        )


class MachineCalc:
    """Runs one machine's readings through the time model and the energy and carbon calculators."""

    # One calculator a machine: without an instance dict each costs about 300 B less.
    __slots__ = (
        "_count_bound",
        "_count_cover_us",
        "_energy_bound",
        "_energy_name",
        "_fuel_bound",
        "_has_good",
        "_has_reject",
        "_has_total",
        "_kinds",
        "_max_kw",
        "_power_gap_us",
        "_power_hold",
        "_power_scale",
        "_window_us",
        "feeders",
        "max_gap_fill_us",
        "spec",
        "state",
    )

    def __init__(
        self,
        spec: MachineSpec,
        state: MachineState | None = None,
        *,
        max_gap_fill_us: int = DEFAULT_GAP_FILL_US,
    ) -> None:
        self.spec = spec
        self.max_gap_fill_us = max_gap_fill_us
        """A silence longer than this is not filled with empty windows (see :meth:`advance`)."""
        self.state = state or MachineState()
        self._window_us = spec.window_us
        roles = set(spec.counters.values())
        self._has_total, self._has_good, self._has_reject = (0 in roles), (1 in roles), (2 in roles)
        # Which counts carry ideal time: total when reported, else good and reject together.
        ideal_roles = {0} if self._has_total else {1, 2}
        # One bound feeder per signal: the hot path is a dict lookup and a call, no dispatch on kind.
        self.feeders: dict[str, Callable[[int, Any], None]] = {}
        self._power_scale, self._power_gap_us, self._power_hold = 1.0, 0.0, False
        """Signal name -> ``feeder(ts, value)`` for good and uncertain samples (see :meth:`feed`)."""
        self._kinds: dict[str, str] = {}
        cycles = [c for c in (spec.ideal_cycle_us, *spec.ideal_cycle_us_by_product.values()) if c]
        # The fastest product sets the bound: a counter may run at its pace whatever is announced.
        self._count_bound = count_bound(min(cycles, default=None))
        self._max_kw = max_kw(spec.rated_kw)
        self._energy_bound = energy_bound(spec.rated_kw, spec.energy.scale if spec.energy else 1.0)
        self._fuel_bound = Bound(DEFAULT_MAX_FUEL_PER_S)
        self._count_cover_us = min(max(COUNTER_COVER_GAP_US, self._window_us), max_gap_fill_us)
        """Counter readings further apart leave the time between them uncovered (see :meth:`_cover`)."""
        self._energy_name = spec.energy_signal or ""
        for name, role in spec.counters.items():
            self._add(name, "counter", partial(self._counter, name, role, role in ideal_roles))
        if spec.state_signal:
            self._add(spec.state_signal, "state", self._state_value)
        if spec.power_signal and spec.power is not None:
            self._add(spec.power_signal, "power", self._power)
            self._power_scale = spec.power.scale
            # Never across more than max_gap_fill: the windows of a longer silence are not there.
            self._power_gap_us = min(spec.power.max_gap_s * 1_000_000, max_gap_fill_us)
            self._power_hold = spec.power.integration == "hold"
        if spec.energy_signal:
            self._add(spec.energy_signal, "register", self._register)
        for name in spec.fuels:
            self._add(name, "fuel", partial(self._fuel, name))
        if spec.product_signal:
            self._add(spec.product_signal, "product", self._product)
        if spec.reason_signal:
            self._add(spec.reason_signal, "reason", self._reason)
        if spec.state_signal:
            # Every machine with stops takes an operator's reason for one (streams.operator_reason).
            self._add(OPERATOR_REASON, "reason", self._operator_reason)
        if state is None:
            self.state.stop = StopTracker(spec.reason_rule)

    def _add(self, name: str, kind: str, feeder: Callable[[int, Any], None]) -> None:
        self._kinds[name] = kind
        self.feeders[name] = feeder

    # -- the hot path ---------------------------------------------------------------------------

    def takes_numbers(self, signal: str) -> bool:
        """Whether :meth:`check` accepts exactly the finite numbers (no bool) for ``signal``."""
        return self._kinds[signal] not in ("state", "product", "reason")

    def check(self, signal: str, value: Any, quality: str) -> None:
        """Raise :class:`BadValue` if ``value`` cannot mean anything for ``signal``; change nothing."""
        if quality == "bad":
            return
        kind = self._kinds[signal]
        if kind == "state":
            if _code(value) not in self.spec.state_codes:
                raise BadValue(f"state value {value!r} is not a category or a configured code")
        elif kind not in ("product", "reason"):
            _number(value)

    def advance(self, ts: int) -> list[WindowResult]:
        """Move event time to ``ts`` (not before the last reading); return the windows that closed.

        After a silence longer than ``max_gap_fill_us`` the machine resumes at ``ts``: the
        windows it had open close as they are (the rest of their time unknown), and the windows
        wholly inside the silence are never emitted, so the work of one reading stays bounded.
        """
        st = self.state
        if st.released_until is None:
            st.accounted_until = ts
            st.next_check = ts - ts % self._window_us + self._window_us
            return []
        if ts - st.released_until > self.max_gap_fill_us:
            return self._resume(ts)
        if ts > st.next_check:
            if not st.blocked and self._held(st.next_check, ts):
                return []
            return self._close_ready(ts, final=False)
        return []

    def _resume(self, ts: int) -> list[WindowResult]:
        """Close everything open as of the last reading and start the timeline again at ``ts``."""
        st = self.state
        closed = self._close_ready(st.released_until or ts, final=True)
        size = self._window_us
        # A stop does not last through a silence this long: it ended when the machine was last heard.
        if st.stop.start is not None:
            self._end_stop(st.released_until or ts, False)
            st.stop.begin(ts, _CATEGORY_NAMES.get(st.category or RUNNING))
        st.accounted_until = ts
        st.pending_stop = None
        st.blocked = False
        st.closed_until = max(st.closed_until, ts - ts % size)
        st.next_check = ts - ts % size + size
        return closed

    def _held(self, end: int, now: int) -> bool:
        """True when an integrated signal has not yet passed ``end`` and is not overdue.

        The oldest window (ending at ``end``) cannot close then; mark the machine blocked so that
        the signal's next sample, or its deadline, triggers the next attempt.
        """
        st = self.state
        deadline = _NEVER
        spec = self.spec
        if (
            st.power_last is not None
            and st.power_last[0] < end
            and now - st.power_last[0] <= self._power_gap_us
        ):
            deadline = st.power_last[0] + int(self._power_gap_us)
        if st.register_last is not None and spec.energy is not None and st.register_last[0] < end:
            gap = int(spec.energy.max_gap_s * 1_000_000)
            if now - st.register_last[0] <= gap:
                deadline = min(deadline, st.register_last[0] + gap)
        if deadline == _NEVER:
            return False
        st.blocked = True
        st.next_check = deadline
        return True

    def feed(self, ts: int, signal: str, value: Any, quality: str) -> None:
        """Apply a reading at ``ts`` once :meth:`advance` has moved there.

        Raises:
            BadValue: as :meth:`check`; the state is unchanged then.
        """
        if quality == "bad":
            st = self.state
            st.released_until = ts
            st.stats.bad_quality += 1
            if self._kinds[signal] == "state":
                self._set_state(ts, None)
                if st.blocked:
                    self._unblock(ts)
            return
        self.feeders[signal](ts, value)

    def _counter(self, signal: str, role: int, carries_ideal: bool, ts: int, value: Any) -> None:
        if value.__class__ is not int:
            value = _number(value)
        st = self.state
        st.released_until = ts
        last = st.counter_last
        previous = last.get(signal)
        if previous is None:
            _first_value(value)
            last[signal] = value
            st.counter_at[signal] = ts
            return
        at = st.counter_at.get(signal)
        bound = self._count_bound
        # Elapsed time unknown only right after a checkpoint of an older version: no bound then.
        elapsed = ts - at if at is not None else _NEVER
        if previous <= value <= previous + bound.per_s * elapsed / 1_000_000 + bound.slack:
            delta = value - previous  # a plain rise within the bound: the common case
        else:
            verdict = judge(previous, value, elapsed, bound, self.spec.counter_modulus[signal])
            if not isinstance(verdict, Increase):
                self._refuse(signal, ts, value, verdict, bound)
                last[signal] = value
                st.counter_at[signal] = ts
                return
            delta, event = verdict
            if event is CounterEvent.RESET:
                st.stats.counter_resets += 1
            elif event is CounterEvent.ROLLOVER:
                st.stats.counter_rollovers += 1
        last[signal] = value
        st.counter_at[signal] = ts
        if at is not None and 0 < ts - at <= self._count_cover_us:
            # Inline for the common case (both readings in one open window): the counters' hot path.
            size = self._window_us
            start = at - at % size
            window = st.windows.get(start)
            if window is not None and ts - start <= size and at >= st.closed_until:
                cover = window.cover_meter
                cover[signal] = cover.get(signal, 0) + ts - at
            else:
                self._cover(signal, at, ts)
        if st.suspects:
            st.suspects.pop(signal, None)
        if not delta:
            return
        end = ts - 1
        start = end - end % self._window_us
        window = st.windows.get(start) or self._open(start)
        window.counts[role] += delta
        if role == 2 and st.startup_until is not None and ts <= st.startup_until:
            window.startup += delta
        if carries_ideal:
            window.ideal += delta * self._cycle

    def _refuse(self, signal: str, ts: int, value: float, why: str, bound: Bound) -> None:
        """Refuse an implausible cumulative value, unless it confirms a replaced meter.

        Returns (the caller then takes ``value`` as the new baseline, crediting nothing) when it
        is the last of :data:`~streams.plausibility.REBASE_AFTER` refused readings that agree
        with each other.

        Raises:
            Implausible: the value is refused; the baseline is unchanged.
        """
        st = self.state
        suspects = st.suspects.setdefault(signal, [])
        if confirms_new_baseline(suspects, ts, value, bound):
            del st.suspects[signal]
            st.stats.rebased += 1
            return
        st.stats.implausible += 1
        raise Implausible(why)

    def _state_value(self, ts: int, value: Any) -> None:
        category = self.spec.state_codes.get(value if value.__class__ is str else _code(value))
        if category is None:
            raise BadValue(f"state value {value!r} is not a category or a configured code")
        self.state.released_until = ts
        self._set_state(ts, category)
        if self.state.blocked:
            self._unblock(ts)

    def _reason(self, ts: int, value: Any) -> None:
        self.state.released_until = ts
        self.state.stop.reason(ts, value)

    def _operator_reason(self, ts: int, value: Any) -> None:
        self.state.released_until = ts
        self.state.stop.assign(ts, value)

    def take_stops(self) -> list[StopEvent]:
        """Return and forget the stops that ended since the last call (:mod:`streams.stops`)."""
        ended = self.state.ended
        if not ended:
            return ended
        self.state.ended = []
        return ended

    def _end_stop(self, ts: int, micro: bool) -> None:
        """The open stop (if any) ended at ``ts``: keep its event, count it in the window of ``ts``."""
        event = self.state.stop.end(ts, micro)
        if event is None:
            return
        self.state.ended.append(event)
        start = ts - ts % self._window_us
        counts = (self.state.windows.get(start) or self._open(start)).stops
        if event.micro:
            counts[1] += 1
        else:
            counts[0] += 1
            if event.category == "down":
                counts[2] += 1

    def _product(self, ts: int, value: Any) -> None:
        st = self.state
        st.released_until = ts
        st.product = str(value)
        if st.product not in self.spec.ideal_cycle_us_by_product and self.spec.ideal_cycle_us is None:
            st.stats.unknown_product += 1

    @property
    def _cycle(self) -> float:
        """The ideal cycle time (µs) of the product being made; 0 when none is known."""
        spec = self.spec
        product = self.state.product
        if product is not None:
            cycle = spec.ideal_cycle_us_by_product.get(product)
            if cycle is not None:
                return cycle
        return spec.ideal_cycle_us or 0.0

    def _power(self, ts: int, value: Any) -> None:
        cls = value.__class__
        # Finite int or float: x - x is 0 for those only (inf - inf and nan - nan are nan).
        kw = (
            value if (cls is float or cls is int) and value - value == 0 else _number(value)
        ) * self._power_scale
        st = self.state
        st.released_until = ts
        if not -self._max_kw <= kw <= self._max_kw:
            st.stats.implausible += 1
            raise Implausible(
                f"power {kw:g} kW is beyond ±{self._max_kw:g} kW "
                "(rated_power_kw x 1.2, or 20000 kW when it is not set)"
            )
        last = st.power_last
        st.power_last = (ts, kw)
        if st.blocked:
            self._unblock(ts)
        if last is None:
            return
        t0, p0 = last
        if ts <= t0 or ts - t0 > self._power_gap_us:
            return
        size = self._window_us
        start = t0 - t0 % size
        if ts - start <= size:
            # Both samples in one window: the common case, without splitting.
            window = st.windows.get(start) or self._open(start)
            span = ts - t0
            if self._power_hold:
                window.kwh_power += span * p0 / US_PER_HOUR
            else:
                window.kwh_power += span * (p0 + kw) / 2 / US_PER_HOUR
            window.cover_power += span
            return
        for window, a, b in self._pieces(t0, ts):
            window.kwh_power += (
                hold_kwh(p0, a, b) if self._power_hold else trapezoid_kwh(t0, p0, ts, kw, a, b)
            )
            window.cover_power += b - a

    def _register(self, ts: int, value: Any) -> None:
        spec = self.spec
        assert spec.energy is not None
        raw = _number(value)
        st = self.state
        st.released_until = ts
        last = st.register_last
        if last is None or ts <= last[0]:
            # A first value, or a second at the same time: a new baseline, nothing to credit.
            _first_value(raw)
            st.register_last = (ts, raw)
            if st.blocked:
                self._unblock(ts)
            return
        t0, previous = last
        # Bound: rated_power_kw x 1.2 x Δt (or the default power), in register units.
        verdict = judge(previous, raw, ts - t0, self._energy_bound, spec.energy.modulus)
        if not isinstance(verdict, Increase):
            self._refuse(self._energy_name, ts, raw, verdict, self._energy_bound)
            st.register_last = (ts, raw)
            if st.blocked:
                self._unblock(ts)
            return
        st.register_last = (ts, raw)
        if st.suspects:
            st.suspects.pop(self._energy_name, None)
        if st.blocked:
            self._unblock(ts)
        delta, event = verdict
        if event is CounterEvent.RESET:
            st.stats.register_resets += 1
        elif event is CounterEvent.ROLLOVER:
            st.stats.register_rollovers += 1
        self._spread(t0, ts, delta * spec.energy.scale, spec.energy.max_gap_s, "register")

    def _fuel(self, signal: str, ts: int, value: Any) -> None:
        fuel = self.spec.fuels[signal]
        raw = _number(value)
        st = self.state
        st.released_until = ts
        last = st.fuel_last.get(signal)
        if last is None or ts <= last[0]:
            _first_value(raw)
            st.fuel_last[signal] = (ts, raw)
            if st.blocked:
                self._unblock(ts)
            return
        verdict = judge(last[1], raw, ts - last[0], self._fuel_bound, fuel.modulus)
        if not isinstance(verdict, Increase):
            self._refuse(signal, ts, raw, verdict, self._fuel_bound)
            st.fuel_last[signal] = (ts, raw)
            if st.blocked:
                self._unblock(ts)
            return
        st.fuel_last[signal] = (ts, raw)
        self._cover(signal, last[0], ts, fuel.max_gap_us)
        if st.suspects:
            st.suspects.pop(signal, None)
        if st.blocked:
            self._unblock(ts)
        self._spread(last[0], ts, verdict.delta, fuel.max_gap_us / 1_000_000, signal)

    def _cover(self, signal: str, t0: int, t1: int, max_gap_us: float | None = None) -> None:
        """Book (t0, t1] as covered by ``signal``'s readings, unless they are too far apart.

        Too far: more than ``max_gap_us`` (a fuel meter's ``max_gap_s``; for a counter, which has
        none, the energy register's default of 900 s or the window, the longer) or the gap-fill
        bound: a longer silence is not data.
        """
        bound = self._count_cover_us if max_gap_us is None else min(max_gap_us, self.max_gap_fill_us)
        if t1 - t0 > bound:
            return
        # Closed windows are not opened again for coverage (a late reading): their points are out.
        t0 = max(t0, self.state.closed_until)
        if t1 <= t0:
            return
        size = self._window_us
        start = t0 - t0 % size
        if t1 - start <= size:
            # Both readings in one window: the common case, without splitting.
            window = self.state.windows.get(start) or self._open(start)
            window.cover_meter[signal] = window.cover_meter.get(signal, 0) + t1 - t0
            return
        for window, a, b in self._pieces(t0, t1):
            window.cover_meter[signal] = window.cover_meter.get(signal, 0) + b - a

    def _spread(self, t0: int, t1: int, amount: float, max_gap_s: float, into: str) -> None:
        """Spread ``amount`` evenly over (t0, t1], or book it whole at t1 after a long gap.

        A gap longer than ``max_gap_fill_us`` is long whatever ``max_gap_s`` says: spreading
        would open the windows a resumed machine skips (:meth:`advance`).
        """
        if t1 - t0 > min(max_gap_s * 1_000_000, self.max_gap_fill_us):
            start = (t1 - 1) - (t1 - 1) % self._window_us
            pieces = [(self.state.windows.get(start) or self._open(start), t1, t1)]
            span = 0
        else:
            pieces = self._pieces(t0, t1)
            span = t1 - t0
        for window, a, b in pieces:
            share = amount * (b - a) / span if span else amount
            if into == "register":
                window.kwh_register += share
                window.cover_register += b - a
            else:
                window.fuel[into] = window.fuel.get(into, 0.0) + share

    def _pieces(self, a: int, b: int) -> list[tuple[_Window, int, int]]:
        """Split the interval [a, b] at window edges: (window, piece start, piece end)."""
        size = self._window_us
        windows = self.state.windows
        start = a - a % size
        out = []
        while start < b:
            end = start + size
            window = windows.get(start) or self._open(start)
            out.append((window, max(a, start), min(b, end)))
            start = end
        return out

    def _open(self, start: int) -> _Window:
        window = _Window(start, self.spec.schedule.profile(start))
        self.state.windows[start] = window
        return window

    # -- state timeline -------------------------------------------------------------------------

    def _set_state(self, ts: int, category: int | None) -> None:
        st = self.state
        if st.pending_stop is not None and category == st.category and category is not None:
            # The same stop goes on (a PLC repeating its state): whether it is a micro-stop is
            # known only when it ends, so it is not cut here.
            return
        micro = False
        if st.pending_stop is not None:
            started = st.pending_stop
            st.pending_stop = None
            micro = ts - started <= self.spec.micro_stop_max_us
            self._attribute(started, ts, RUNNING if micro else st.category, micro=micro)
        else:
            self._attribute(st.accounted_until or ts, ts, st.category)
        st.accounted_until = ts
        if category != st.category or category is None:
            if st.category == SETUP and self.spec.startup_reject_us:
                st.startup_until = ts + self.spec.startup_reject_us
            self._end_stop(ts, micro)
            st.stop.begin(ts, None if category is None else _CATEGORY_NAMES[category])
            st.category = category
            if category in _STOPS and self.spec.micro_stop_max_us > 0:
                st.pending_stop = ts

    def _advance_state(self, now: int, final: bool) -> None:
        """Book the current state up to ``now``, unless a possible micro-stop is still open."""
        st = self.state
        if st.pending_stop is not None:
            if not final and now - st.pending_stop <= self.spec.micro_stop_max_us:
                return
            # Longer than the threshold (or the input ended while stopped): a real stop.
            st.pending_stop = None
        start = st.accounted_until
        if start is not None and now > start:
            self._attribute(start, now, st.category)
            st.accounted_until = now

    def _attribute(self, a: int, b: int, category: int | None, micro: bool = False) -> None:
        size = self._window_us
        windows = self.state.windows
        stop = self.state.stop
        start = a - a % size
        while start < b:
            end = start + size
            window = windows.get(start) or self._open(start)
            if category is not None and window.profile.productive:
                piece = min(b, end) - max(a, start)
                window.durations[category] += piece
                if micro:
                    window.durations[MICRO] += piece
                # Only stop time reaches here while a stop is open: its planned busy time.
                stop.book(piece)
            start = end

    # -- closing --------------------------------------------------------------------------------

    def _close_ready(self, now: int, final: bool) -> list[WindowResult]:
        """Close every window whose inputs are complete as of ``now``."""
        st = self.state
        spec = self.spec
        self._advance_state(now, final)
        bound = _NEVER if final else now - 1
        # When time alone would lift the tightest wait (a stop outgrowing the micro-stop limit, a
        # silent signal becoming overdue); a new sample or state lifts it earlier (``_unblock``).
        deadline = _NEVER
        if not final:
            if st.pending_stop is not None:
                bound = min(bound, st.pending_stop)
                deadline = st.pending_stop + spec.micro_stop_max_us
            # A window waits for the next sample of each integrated signal, unless it is overdue.
            waits = []
            if st.power_last is not None and spec.power is not None:
                waits.append((st.power_last[0], int(spec.power.max_gap_s * 1_000_000)))
            if st.register_last is not None and spec.energy is not None:
                waits.append((st.register_last[0], int(spec.energy.max_gap_s * 1_000_000)))
            for name, (t_last, _) in st.fuel_last.items():
                waits.append((t_last, spec.fuels[name].max_gap_us))
            for t_last, max_gap in waits:
                if now - t_last <= max_gap:
                    bound = min(bound, t_last)
                    deadline = min(deadline, t_last + max_gap)
        size = self._window_us
        results = []
        for start in sorted(st.windows):
            if start + size > bound:
                break
            results.append(self._close_window(st.windows.pop(start)))
        if final:
            st.closed_until = max(st.closed_until, now)
        else:
            st.closed_until = max(st.closed_until, bound - bound % size if bound < _NEVER else now)
        for key in sorted(st.shifts):
            total = st.shifts[key]
            if final or total.shift.end <= st.closed_until:
                results.append(self._close_shift(st.shifts.pop(key)))
        first_end = min(st.windows) + size if st.windows else now - now % size + size
        st.blocked = first_end < now
        st.next_check = deadline if st.blocked else first_end
        return results

    def _unblock(self, ts: int) -> None:
        """After a sample or a state change: if nothing holds the oldest window any more, check after ``ts``.

        Windows wait for every integrated signal to pass their end; until the last of them has,
        there is no point in trying to close (the deadline covers signals that went silent).
        """
        st = self.state
        end = min(st.windows) + self._window_us if st.windows else ts
        if ts < end or st.pending_stop is not None:
            return
        if st.power_last is not None and st.power_last[0] < end:
            return
        if st.register_last is not None and st.register_last[0] < end:
            return
        for t_last, _ in st.fuel_last.values():
            if t_last < end:
                return
        st.next_check = min(st.next_check, ts)

    def close_all(self) -> list[WindowResult]:
        """The input has ended: close every open window, booking unobserved planned time as unknown."""
        if self.state.released_until is None:
            return []
        return self._close_ready(self.state.released_until, final=True)

    def _close_window(self, w: _Window) -> WindowResult:
        size = self._window_us
        profile = w.profile
        e = OeeElements()
        if profile.shift is not None or profile.always:
            e.scheduled = size
            if profile.in_break:
                e.planned_stop = size
            else:
                d = w.durations
                e.run, e.micro, e.down, e.idle, e.setup, e.off = (
                    d[RUNNING],
                    d[MICRO],
                    d[DOWN],
                    d[IDLE],
                    d[SETUP],
                    d[OFF],
                )
                e.planned_stop = d[PLANNED_STOP]
                e.unknown = size - (d[RUNNING] + d[DOWN] + d[IDLE] + d[SETUP] + d[OFF] + d[PLANNED_STOP])
        e.stops, e.micro_stops, e.failures = w.stops
        result = self._result(w, e)
        if profile.shift is not None:
            key = profile.shift.start
            total_acc = self.state.shifts.get(key)
            if total_acc is None:
                empty = WindowResult("shift", key, profile.shift.end, profile.shift.name, OeeElements())
                total_acc = self.state.shifts[key] = _ShiftTotal(profile.shift, empty)
            total_acc.result.add(result)
            total_acc.covered_scheduled += size
            if profile.in_break:
                total_acc.covered_break += size
        return result

    def _result(self, w: _Window, e: OeeElements) -> WindowResult:
        """The result of window ``w`` with its time elements ``e``: counts, energy and carbon added."""
        total, good, reject, rework = w.counts
        if not self._has_total:
            total = good + reject
        if not self._has_good:
            good = total - reject
        if not self._has_reject:
            reject = total - good
        e.total, e.good, e.reject, e.ideal, e.rework = total, good, reject, w.ideal, rework
        e.startup_reject = w.startup
        # The register is exact where it has data; power integration fills windows it does not cover.
        if w.cover_register or w.kwh_register:
            kwh, covered = w.kwh_register, w.cover_register
        else:
            kwh, covered = w.kwh_power, w.cover_power
        profile = w.profile
        result = WindowResult(
            kind="window",
            start=w.start,
            end=w.start + self._window_us,
            shift=profile.shift.name if profile.shift else None,
            elements=e,
            kwh=kwh,
            energy_covered_us=covered,
            # Counters: the best covered (a machine's counters are one PLC's registers, and a reject
            # counter may rest for hours); fuel meters: the least covered (each is its own meter, and
            # one silent meter is a gap of the emissions).
            count_covered_us=max((w.cover_meter.get(s, 0) for s in self.spec.counters), default=0),
            fuel_covered_us=min((w.cover_meter.get(s, 0) for s in self.spec.fuels), default=0),
        )
        self._carbon(result, w.fuel)
        return result

    # -- read-only views ------------------------------------------------------------------------

    def shift_so_far(self) -> tuple[WindowResult, int] | None:
        """The current shift as far as event time has been released; the state is not changed.

        The sum of the shift's closed windows (the running total the shift window is made of, part
        of the checkpoint) plus its open windows up to the released time: the machine's current
        state counts until then, except a stop that may still turn out to be a micro-stop, which
        counts once its length is known. The current shift is the latest one the machine has
        windows in or has reached; ``None`` before any reading, and when it has none (no
        calendar, or every shift it saw is closed).

        Returns:
            The figures (a ``shift`` result with the shift's bounds) and the event time (µs) they
            go up to.
        """
        st = self.state
        released = st.released_until
        if released is None:
            return None
        shifts = [w.profile.shift for w in st.windows.values() if w.profile.shift is not None]
        shifts += [t.shift for t in st.shifts.values()]
        reached = self.spec.schedule.shift_at(released)
        if reached is not None:
            shifts.append(reached)
        if not shifts:
            return None
        shift = max(shifts, key=lambda s: s.start)
        upto = released if st.pending_stop is None or st.accounted_until is None else st.accounted_until
        closed = st.shifts.get(shift.start)
        if closed is not None:
            result = closed.result.copy()
        else:
            result = WindowResult("shift", shift.start, shift.end, shift.name, OeeElements())
        for start in sorted(st.windows):
            window = st.windows[start]
            if window.profile.shift is not None and window.profile.shift.start == shift.start:
                result.add(self._open_so_far(window, upto))
        return result, min(max(upto, shift.start), shift.end)

    def _open_so_far(self, w: _Window, upto: int) -> WindowResult:
        """Open window ``w`` as if it closed at ``upto``: the current state booked until then."""
        st = self.state
        size = self._window_us
        end = w.start + size
        elapsed = min(max(upto - w.start, 0), size)
        profile = w.profile
        durations = w.durations[:]
        if st.category is not None and st.accounted_until is not None and profile.productive:
            booked_until = max(st.accounted_until, w.start)
            if min(upto, end) > booked_until:
                durations[st.category] += min(upto, end) - booked_until
        e = OeeElements(scheduled=elapsed)
        e.stops, e.micro_stops, e.failures = w.stops
        if profile.in_break:
            e.planned_stop = elapsed
        else:
            e.run, e.micro, e.down, e.idle, e.setup, e.off = (
                durations[RUNNING],
                durations[MICRO],
                durations[DOWN],
                durations[IDLE],
                durations[SETUP],
                durations[OFF],
            )
            e.planned_stop = durations[PLANNED_STOP]
            observed = sum(durations[c] for c in (RUNNING, DOWN, IDLE, SETUP, OFF, PLANNED_STOP))
            e.unknown = max(elapsed - observed, 0)
        return self._result(w, e)

    def _close_shift(self, total: _ShiftTotal) -> WindowResult:
        shift = total.shift
        length = shift.end - shift.start
        breaks = sum(b - a for a, b in shift.breaks)
        missing = length - total.covered_scheduled
        missing_break = breaks - total.covered_break
        e = total.result.elements
        # Planned time the machine never reported on is unknown, not guessed.
        e.scheduled += missing
        e.planned_stop += missing_break
        e.unknown += missing - missing_break
        return total.result

    def _carbon(self, result: WindowResult, fuel_amounts: dict[str, float]) -> None:
        spec = self.spec.carbon
        if spec is None:
            return
        # A meter may read slightly negative at idle (TV-EN-2 starts at -2 kW); a window that nets
        # below zero bought no electricity, and Scope 2 has no negative emissions.
        bought = max(result.kwh, 0.0)
        result.scope2_location_kg = carbon.scope2_kg(bought, spec.grid.t_per_mwh)
        if spec.market_t_per_mwh is not None:
            result.scope2_market_kg = carbon.scope2_kg(bought, spec.market_t_per_mwh)
        for name, amount in fuel_amounts.items():
            fuel = self.spec.fuels[name]
            tj = carbon.fuel_energy_tj(amount, fuel.unit, fuel.fuel, ncv_mj_per_nm3=fuel.ncv_mj_per_nm3)
            result.fuel_tj += tj
            emissions = carbon.scope1_emissions(tj, fuel.fuel, spec.gwp)
            result.scope1_kg += emissions.co2e_kg
            result.scope1_co2_kg += emissions.co2_kg


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadValue(f"expected a number, got {value!r}")
    if not math.isfinite(value):
        raise BadValue(f"expected a finite number, got {value!r}")
    return value


def _first_value(value: float) -> None:
    """Refuse a first cumulative value no meter shows: it would become the baseline."""
    if not 0 <= value <= MAX_EXACT:
        raise Implausible(f"{value!r} is not a meter reading (it must lie in 0 .. 2**53)")


def _code(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
