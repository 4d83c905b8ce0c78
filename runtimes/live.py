"""The live terminal view of ``plantstream demo``: per machine state, shift OEE, kW, kWh, CO2e.

The shift's OEE is computed from the elements of the shift's one-minute windows summed so far,
never by averaging their ratios; a corrected window replaces its first version.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from rich.table import Table

from plantstream.plant.schema import OeeMethod
from plantstream.records import FieldValue, Point, Reading
from streams.config import CATEGORY_INDEX, EngineSpec
from streams.oee import OeeElements, oee_kpis

__all__ = ["LiveView"]

_US = 1_000_000


@dataclass
class _Machine:
    state: str = "-"
    kw: float | None = None
    shift: str | None = None
    windows: dict[str, OeeElements] = field(default_factory=dict)
    kwh: dict[str, float] = field(default_factory=dict)
    co2e: dict[str, float] = field(default_factory=dict)


class LiveView:
    """Collects what the pipeline produces and renders it as a table."""

    def __init__(self, spec: EngineSpec) -> None:
        self.spec = spec
        self.machines = {mid: _Machine() for mid in spec.machines}
        self.readings = 0
        self.points = 0
        self._started = time.monotonic()
        names = {index: name for name, index in CATEGORY_INDEX.items()}
        self._state_names = {
            mid: {code: names[index] for code, index in m.state_codes.items()}
            for mid, m in spec.machines.items()
        }

    def on_reading(self, reading: Reading) -> None:
        """Note the latest state and power of a machine."""
        self.readings += 1
        machine = self.machines.get(reading.machine)
        spec = self.spec.machines.get(reading.machine)
        if machine is None or spec is None:
            return
        if reading.signal == spec.state_signal:
            machine.state = self._state_names[reading.machine].get(str(reading.value), str(reading.value))
        elif reading.signal == spec.power_signal and isinstance(reading.value, int | float):
            machine.kw = float(reading.value) * (spec.power.scale if spec.power else 1.0)

    def on_points(self, points: list[Point]) -> None:
        """Fold one-minute window points into the current shift's sums."""
        for point in points:
            self.points += 1
            machine = self.machines.get(point.tags.get("machine", ""))
            if machine is None or point.tags.get("window") == "shift":
                continue
            shift = point.tags.get("shift")
            if shift is not None and shift != machine.shift:
                machine.shift = shift
                machine.windows.clear()
                machine.kwh.clear()
                machine.co2e.clear()
            key = point.time.isoformat()
            f = point.fields
            if point.measurement == "oee" and shift is not None:
                machine.windows[key] = _elements(f)
            elif point.measurement == "energy":
                machine.kwh[key] = _number(f, "kwh")
            elif point.measurement == "carbon":
                machine.co2e[key] = _number(f, "co2e_kg")

    def render(self) -> Table:
        """The table as it stands."""
        elapsed = max(time.monotonic() - self._started, 1e-9)
        table = Table(
            title="plantstream demo: the demonstration line",
            caption=f"{self.readings / elapsed:,.0f} readings/s, {self.points:,} points written",
        )
        for column in ("machine", "state", "shift", "OEE", "A", "P", "Q", "kW", "kWh", "kg CO2e"):
            table.add_column(column, justify="left" if column in ("machine", "state", "shift") else "right")
        for mid, m in self.machines.items():
            total = OeeElements()
            for elements in m.windows.values():
                total.add(elements)
            kpis = oee_kpis(total, OeeMethod.ISO22400) if m.windows else {}
            if not self.spec.machines[mid].counters:
                kpis = {k: v for k, v in kpis.items() if k == "availability"}  # no pieces: no P, Q, OEE

            def pct(key: str, kpis: dict[str, float] = kpis) -> str:
                return f"{kpis[key]:.1%}" if key in kpis else "-"

            table.add_row(
                mid,
                m.state,
                m.shift or "-",
                pct("oee"),
                pct("availability"),
                pct("performance"),
                pct("quality"),
                f"{m.kw:.1f}" if m.kw is not None else "-",
                f"{sum(m.kwh.values()):.2f}",
                f"{sum(m.co2e.values()):.2f}",
            )
        return table

    def shift_summary(self) -> list[str]:
        """One line per machine for the end of the demo."""
        lines = []
        for mid, m in self.machines.items():
            total = OeeElements()
            for elements in m.windows.values():
                total.add(elements)
            kpis = oee_kpis(total, OeeMethod.ISO22400)
            if not self.spec.machines[mid].counters:
                kpis = {k: v for k, v in kpis.items() if k == "availability"}
            oee = f"{kpis['oee']:.1%}" if "oee" in kpis else "-"
            made = f"{total.good:.0f} good of {total.total:.0f}"
            energy = f"{sum(m.kwh.values()):.2f} kWh, {sum(m.co2e.values()):.2f} kg CO2e"
            lines.append(f"{mid}: shift {m.shift or '-'} so far: OEE {oee}, {made}, {energy}")
        return lines


def _elements(f: Mapping[str, FieldValue]) -> OeeElements:
    def us(key: str) -> int:
        return round(_number(f, key) * _US)

    def number(key: str) -> float:
        return _number(f, key)

    return OeeElements(
        scheduled=us("scheduled_s"),
        planned_stop=us("planned_stop_s"),
        run=us("run_s"),
        micro=us("micro_stop_s"),
        down=us("down_s"),
        idle=us("idle_s"),
        setup=us("setup_s"),
        off=us("off_s"),
        unknown=us("unknown_s"),
        total=number("total_count"),
        good=number("good_count"),
        reject=number("reject_count"),
        ideal=number("ideal_run_s") * _US,
    )


def _number(f: Mapping[str, FieldValue], key: str) -> float:
    value = f.get(key, 0.0)
    return float(value) if isinstance(value, int | float) else 0.0
