"""The live per-machine table of ``plantstream demo`` and ``plantstream tail --table``.

One model (:class:`LiveView`) folds what the pipeline produces, whether handed over in process
(the demo) or read back as JSON from ``/stream`` or the kafka topics (``tail``), and one renderer
draws it: per machine the state, the shift's OEE with A / P / Q, kW, kWh, kg CO2e and the time of
its latest event. :func:`shown_live` keeps that table on screen, redrawn in place.

The shift columns show the pipeline's own figures of the current shift so far: the
``shift_so_far`` records (:mod:`runtimes.shift_so_far`) of the embedded runtime, restored from its
checkpoint after a restart, which the demo gets in process and ``tail`` over ``/stream``, so both
show the same numbers. A source without them (the kafka topics) leaves the view to sum the shift's
window points it has seen itself (elements, never ratios; a corrected window replaces its first
version); such a row says since when (``A since 08:41``), and a machine whose windows lie in no
shift (a plant without a calendar) shows everything since that time.

With the plant's :class:`EngineSpec` the view knows every machine from the start, names PLC state
codes by their categories and scales power readings; without one (``tail`` given no plant file)
rows appear as machines are heard of, the state column stays empty (nothing says which signal is
the state) and kW is the average of the machine's latest energy window.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError
from rich.console import Console
from rich.live import Live
from rich.table import Table

from plantstream.plant.schema import OeeMethod
from plantstream.records import FieldValue, Point, Reading
from runtimes.shift_so_far import MEASUREMENT as SHIFT_SO_FAR
from runtimes.shift_so_far import elements_of
from streams.config import CATEGORY_INDEX, EngineSpec
from streams.oee import OeeElements, oee_kpis
from streams.stops import STOP_STATES

__all__ = ["LiveView", "only_machines", "shown_live"]

_WINDOW_MEASUREMENTS = frozenset({"oee", "energy", "carbon"})
_PIECE_KPIS = frozenset({"oee", "performance", "quality"})
"""Fields only a machine with a piece counter gets (docs/points.md)."""
_KPIS = frozenset({"availability", "performance", "performance_uncapped", "quality", "oee", "nee"})


@dataclass(frozen=True)
class _ShiftFigures:
    """The pipeline's figures of a machine's current shift so far (a ``shift_so_far`` record)."""

    shift: str
    seen_from: datetime | None
    """The machine's first reading in the shift, when after the shift's start (the figures
    begin there; the shift's closing point counts the time before as unknown)."""
    elements: OeeElements
    kpis: dict[str, float]
    """The ratios as the pipeline computed them (with the plant's OEE method); undefined ones absent."""
    kwh: float | None
    co2e: float | None
    stop: str | None = None
    """The open stop's reason as the pipeline would write it now (``None``: not stopped)."""


@dataclass
class _Machine:
    site: str | None = None
    line: str | None = None
    state: str = "-"
    kw: float | None = None
    window_kw: tuple[datetime, float] | None = None
    """The latest energy window's start and average kW: the kW shown without a power reading."""
    pieces: bool = False
    shift: str | None = None
    figures: _ShiftFigures | None = None
    """The pipeline's shift figures; without them the sums below, of the windows seen here."""
    since: datetime | None = None
    """The earliest window seen here of the shift shown (without the pipeline's figures)."""
    windows: dict[str, OeeElements] = field(default_factory=dict)
    kwh: dict[str, float] = field(default_factory=dict)
    co2e: dict[str, float] = field(default_factory=dict)
    last: datetime | None = None
    code: str | None = None
    """The latest reason code read (the reason shown without the pipeline's figures)."""

    def seen(self, ts: datetime) -> None:
        if self.last is None or ts > self.last:
            self.last = ts

    def shown_kw(self) -> float | None:
        if self.kw is not None:
            return self.kw
        return self.window_kw[1] if self.window_kw is not None else None

    def total(self) -> OeeElements:
        if self.figures is not None:
            return self.figures.elements
        total = OeeElements()
        for elements in self.windows.values():
            total.add(elements)
        return total

    def shown_shift(self) -> str:
        figures = self.figures
        if figures is not None:
            # A shift the pipeline saw only from some time on says so.
            if figures.seen_from is None:
                return figures.shift
            return f"{figures.shift} from {figures.seen_from.strftime('%H:%M')}"
        if self.since is None:
            return self.shift or "-"
        return f"{self.shift or 'all'} since {self.since.strftime('%H:%M')}"

    def shown_stop(self, spec: EngineSpec | None, machine: str) -> str:
        """The current stop's reason, ``-`` while the machine is not stopped.

        The pipeline's (by the rule, or the operator's) where its shift figures come; else (the
        kafka topics) the latest reason code read, through the plant's reason tree.
        """
        if self.figures is not None:
            return self.figures.stop or "-"
        if spec is None or self.state not in STOP_STATES:
            return "-"
        m = spec.machines.get(machine)
        reason = spec.reasons.resolve(self.code, m.machine_type if m is not None else None)
        return _reason_text(reason.name, reason.group, None)

    def shown_kwh(self) -> float | None:
        if self.figures is not None:
            return self.figures.kwh
        return sum(self.kwh.values())

    def shown_co2e(self) -> float | None:
        if self.figures is not None:
            return self.figures.co2e
        return sum(self.co2e.values())


class LiveView:
    """Folds readings and points into one row per machine and renders them as a table."""

    def __init__(self, spec: EngineSpec | None = None, *, title: str = "plantstream") -> None:
        """Start an empty view.

        Args:
            spec: the resolved plant, when known: its machines are the rows (and only they), its
                state codes and power scales are applied. Without it rows come as machines appear.
            title: the table's title.
        """
        self.spec = spec
        self.title = title
        self.machines: dict[str, _Machine] = {}
        self.readings = 0
        self.points = 0
        self.unreadable = 0
        self.health: Callable[[], str] | None = None
        """Called at every render for the pipeline's own health (the demo: lag and drops)."""
        self._started = time.monotonic()
        self._state_names: dict[str, dict[str, str]] = {}
        if spec is not None:
            names = {index: name for name, index in CATEGORY_INDEX.items()}
            for mid, m in spec.machines.items():
                self.machines[mid] = _Machine(site=m.site, line=m.line, pieces=bool(m.counters))
                self._state_names[mid] = {code: names[index] for code, index in m.state_codes.items()}

    def _row(self, machine: str) -> _Machine | None:
        row = self.machines.get(machine)
        if row is None and self.spec is None:
            row = self.machines[machine] = _Machine()
        return row

    def on_reading(self, reading: Reading) -> None:
        """Note a machine's latest state and power (the state and power need the plant's spec)."""
        self.readings += 1
        row = self._row(reading.machine)
        if row is None:
            return
        row.seen(reading.ts)
        spec = self.spec.machines.get(reading.machine) if self.spec is not None else None
        if spec is None:
            return
        if reading.signal == spec.state_signal:
            row.state = self._state_names[reading.machine].get(str(reading.value), str(reading.value))
        elif reading.signal == spec.reason_signal:
            row.code = None if reading.value is None else str(reading.value)
        elif reading.signal == spec.power_signal and isinstance(reading.value, int | float):
            row.kw = float(reading.value) * (spec.power.scale if spec.power else 1.0)

    def on_points(self, points: list[Point]) -> None:
        """Take machine window points and ``shift_so_far`` records; roll-ups are not rows."""
        for point in points:
            tags = point.tags
            machine = tags.get("machine")
            if point.measurement == SHIFT_SO_FAR:
                if machine is not None:
                    self._shift_so_far(machine, point)
                continue
            self.points += 1
            if machine is None or tags.get("window") == "shift":
                continue
            row = self._row(machine)
            if row is None:
                continue
            row.site = row.site or tags.get("site")
            row.line = row.line or tags.get("line")
            row.seen(point.time)
            if point.measurement in _WINDOW_MEASUREMENTS:
                self._fold(row, point)

    def on_shift(self, points: list[Point]) -> None:
        """Take the pipeline's ``shift_so_far`` records (the embedded runtime's ``on_shift``)."""
        self.on_points(points)

    def _shift_so_far(self, machine: str, point: Point) -> None:
        row = self._row(machine)
        if row is None:
            return
        tags, f = point.tags, point.fields
        row.site = row.site or tags.get("site")
        row.line = row.line or tags.get("line")
        kwh, co2e, unobserved = f.get("kwh"), f.get("co2e_kg"), f.get("unobserved_s")
        seen_from = None
        if isinstance(unobserved, int | float) and unobserved > 0:
            seen_from = point.time + timedelta(seconds=unobserved)
        stop = None
        if isinstance(f.get("stop_reason"), str):
            stop = _reason_text(
                str(f["stop_reason"]), str(f.get("stop_reason_group", "")), f.get("stop_cause")
            )
        row.figures = _ShiftFigures(
            shift=tags.get("shift") or "-",
            seen_from=seen_from,
            elements=elements_of(f),
            kpis={k: float(v) for k, v in f.items() if k in _KPIS and isinstance(v, int | float)},
            kwh=float(kwh) if isinstance(kwh, int | float) else None,
            co2e=float(co2e) if isinstance(co2e, int | float) else None,
            stop=stop,
        )
        row.pieces = row.pieces or bool(_PIECE_KPIS & f.keys())

    def on_record(self, record: Mapping[str, Any]) -> None:
        """A reading or a point as decoded from JSON (``/stream``, the kafka topics).

        A record that is neither is counted in ``unreadable`` (shown under the table) and skipped.
        """
        try:
            if "measurement" in record:
                self.on_points([Point.model_validate(record)])
            else:
                self.on_reading(Reading.model_validate(record))
        except ValidationError:
            self.unreadable += 1

    def _fold(self, row: _Machine, point: Point) -> None:
        shift = point.tags.get("shift")
        if shift is not None and shift != row.shift:
            row.shift = shift
            row.windows.clear()
            row.kwh.clear()
            row.co2e.clear()
            row.since = None
        if row.since is None or point.time < row.since:
            row.since = point.time
        key = point.time.isoformat()
        f = point.fields
        if point.measurement == "oee":
            # Counts outside a shift do not belong to the shift shown; a machine without any
            # shift shows all its windows.
            if shift is not None or row.shift is None:
                row.windows[key] = elements_of(f)
            row.pieces = row.pieces or bool(_PIECE_KPIS & f.keys())
        elif point.measurement == "energy":
            row.kwh[key] = _number(f, "kwh")
            if "avg_kw" in f and (row.window_kw is None or point.time >= row.window_kw[0]):
                row.window_kw = (point.time, _number(f, "avg_kw"))
        else:
            row.co2e[key] = _number(f, "co2e_kg")

    def kpis(self, machine: str) -> dict[str, float]:
        """The ratios of ``machine``'s current shift (or its windows so far); undefined ones absent."""
        row = self.machines[machine]
        if row.figures is not None:
            return dict(row.figures.kpis)  # the same numbers as the record on /stream
        if not row.windows:
            return {}
        spec = self.spec.machines.get(machine) if self.spec is not None else None
        kpis = oee_kpis(row.total(), spec.method if spec is not None else OeeMethod.ISO22400)
        if not row.pieces:
            kpis = {k: v for k, v in kpis.items() if k == "availability"}  # no pieces: no P, Q, OEE
        return kpis

    def render(self) -> Table:
        """The table as it stands."""
        elapsed = max(time.monotonic() - self._started, 1e-9)
        caption = f"{self.readings / elapsed:,.0f} readings/s, {self.points:,} points"
        if self.health is not None:
            caption += f", {self.health()}"
        if self.unreadable:
            caption += f", {self.unreadable:,} unreadable records skipped"
        table = Table(title=self.title, caption=caption)
        columns = (
            "machine",
            "state",
            "stop reason",
            "shift",
            "OEE",
            "A",
            "P",
            "Q",
            "kW",
            "kWh",
            "kg CO2e",
            "last (UTC)",
        )
        for column in columns:
            left = column in ("machine", "state", "stop reason", "shift")
            table.add_column(column, justify="left" if left else "right")
        for mid, m in self.machines.items():
            kpis = self.kpis(mid)

            def pct(key: str, kpis: dict[str, float] = kpis) -> str:
                return f"{kpis[key]:.1%}" if key in kpis else "-"

            kw = m.shown_kw()
            kwh, co2e = m.shown_kwh(), m.shown_co2e()
            table.add_row(
                "/".join(part for part in (m.site, m.line, mid) if part),
                m.state,
                m.shown_stop(self.spec, mid),
                m.shown_shift(),
                pct("oee"),
                pct("availability"),
                pct("performance"),
                pct("quality"),
                f"{kw:.1f}" if kw is not None else "-",
                f"{kwh:.2f}" if kwh is not None else "-",
                f"{co2e:.2f}" if co2e is not None else "-",
                m.last.strftime("%H:%M:%S") if m.last is not None else "-",
            )
        return table

    def shift_summary(self) -> list[str]:
        """One line per machine for the end of the demo."""
        lines = []
        for mid, m in self.machines.items():
            total = m.total()
            kpis = self.kpis(mid)
            oee = f"{kpis['oee']:.1%}" if "oee" in kpis else "-"
            made = f"{total.good:.0f} good of {total.total:.0f}"
            kwh, co2e = m.shown_kwh(), m.shown_co2e()
            energy = f"{kwh or 0:.2f} kWh, {co2e or 0:.2f} kg CO2e"
            lines.append(f"{mid}: shift {m.shown_shift()} so far: OEE {oee}, {made}, {energy}")
        return lines


def only_machines(
    spec: EngineSpec, *, site: str | None = None, line: str | None = None, machine: str | None = None
) -> EngineSpec:
    """``spec`` with only the machines on ``site``, on ``line`` and named ``machine`` (None: any)."""
    kept = {
        mid: m
        for mid, m in spec.machines.items()
        if site in (None, m.site) and line in (None, m.line) and machine in (None, mid)
    }
    return dataclasses.replace(spec, machines=kept)


@contextlib.asynccontextmanager
async def shown_live(view: LiveView, console: Console, *, every_s: float = 0.5) -> AsyncIterator[None]:
    """Keep ``view``'s table on a terminal, redrawn in place, while the body runs.

    The table is drawn from the event loop (the model is never read by another thread while it
    changes). Without a terminal (a pipe, a file, a test) nothing is redrawn: the table is printed
    once when the body ends, however it ends.
    """
    if not console.is_terminal:
        try:
            yield
        finally:
            table = view.render()
            # A pipe has no width to respect: the whole table, never columns cut to 80 characters.
            natural = console.measure(table, options=console.options.update_width(10_000)).maximum
            width = console.width
            console.width = max(width, natural)  # print(width=) cannot exceed the console's width
            try:
                console.print(table)
            finally:
                console.width = width
        return
    with Live(view.render(), console=console, auto_refresh=False) as live:

        async def redraw() -> None:
            while True:
                await asyncio.sleep(every_s)
                live.update(view.render(), refresh=True)

        task = asyncio.create_task(redraw(), name="live-table")
        try:
            yield
        finally:
            task.cancel()
            live.update(view.render(), refresh=True)


def _reason_text(name: str, group: str, cause: object) -> str:
    """``film break (material)``, and ``, operator`` for an operator's reason.

    A group that says nothing more than the name (``unassigned``) is left out.
    """
    text = name if group in ("", name) else f"{name} ({group})"
    return f"{text}, operator" if cause == "operator" else text


def _number(f: Mapping[str, FieldValue], key: str) -> float:
    value = f.get(key, 0.0)
    return float(value) if isinstance(value, int | float) else 0.0
