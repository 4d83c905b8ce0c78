"""The current shift so far, per machine and per line, as the running pipeline knows it.

One ``shift_so_far`` record per machine: the sums of the shift's closed windows (kept in the
engine's state, so restored from the checkpoint after a restart) plus its open windows up to the
released event time. The demo's table, ``tail --table`` and ``/stream`` all show these records, so
they agree. They are not written to the sinks: the closed ``shift`` window points are the lasting
figures (docs/points.md); these are a view of a shift still running (docs/live.md).

A record is a :class:`~plantstream.records.Point` of measurement ``shift_so_far``: tags ``site``,
``line``, ``machine``, ``shift``; time the shift's start; fields the OEE ratios and time elements
as in an ``oee`` point (for machines with a state or counts), ``kwh`` (with power or an energy
register), ``co2e_kg`` (Scope 1 plus location-based Scope 2, where the site has a carbon block)
``through``, the event time the figures go up to, and ``unobserved_s``, the shift's time before
the machine's first reading (in no window, so not in the figures; the shift's closing point
counts it as unknown). While the machine is stopped: ``stop_since``, ``stop_category``,
``stop_reason``, ``stop_reason_group`` and ``stop_cause``, the open stop as its ``stop`` point
would say if it ended now (docs/points.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import timedelta

from plantstream.plant.schema import OeeMethod
from plantstream.records import EPOCH, FieldValue, Point
from streams.config import EngineSpec
from streams.engine import Engine
from streams.oee import OeeElements, element_fields, oee_kpis

__all__ = ["MEASUREMENT", "elements_of", "line_figures", "shift_points", "status_of_lines"]

MEASUREMENT = "shift_so_far"
_US = 1_000_000


def shift_points(engine: Engine, machines: Iterable[str] | None = None) -> list[Point]:
    """One ``shift_so_far`` record per machine that has a current shift (all machines by default)."""
    spec = engine.spec
    out = []
    for mid in spec.machines if machines is None else machines:
        now = engine.shift_so_far(mid)
        if now is None:
            continue
        result, through = now
        m = spec.machines[mid]
        e = result.elements
        fields: dict[str, FieldValue] = {}
        if m.has_oee:
            kpis = oee_kpis(e, m.method)
            if not m.counters:
                # Without piece counts only availability means anything (as in the oee points).
                kpis = {k: v for k, v in kpis.items() if k == "availability"}
            fields |= kpis
        fields |= element_fields(e)
        if m.has_energy:
            fields["kwh"] = result.kwh
        if m.carbon is not None and (m.has_energy or m.fuels):
            fields["co2e_kg"] = result.scope1_kg + result.scope2_location_kg
        stop = engine.open_stop(mid)
        if stop is not None:
            # The stop open now and the reason it would be written with (tail --table shows it).
            start, category, reason, cause = stop
            fields |= {
                "stop_since": _iso(start),
                "stop_category": category,
                "stop_reason": reason.name,
                "stop_reason_group": reason.group,
                "stop_cause": cause,
            }
        fields["through"] = _iso(through)
        # Every window after the machine's first reading exists (closed or open), so the shift's
        # time not in them lies before it: planned time the pipeline did not see, which the
        # shift's closing point counts as unknown.
        fields["unobserved_s"] = max(through - result.start - e.scheduled, 0) / _US
        tags = {"site": m.site, "line": m.line, "machine": mid, "shift": result.shift or ""}
        time = EPOCH + timedelta(microseconds=result.start)
        out.append(Point.trusted(measurement=MEASUREMENT, tags=tags, fields=fields, time=time))
    return out


def elements_of(fields: Mapping[str, FieldValue]) -> OeeElements:
    """The OEE elements of a ``shift_so_far`` (or ``oee``) record's fields, durations back in µs."""

    def number(key: str) -> float:
        value = fields.get(key, 0.0)
        return float(value) if isinstance(value, int | float) else 0.0

    def us(key: str) -> int:
        return round(number(key) * _US)

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


def line_figures(spec: EngineSpec, points: Iterable[Point]) -> dict[str, dict[str, float]]:
    """Per line (``site/line``), the OEE ratios of its machines' shift records summed.

    Elements are summed, never ratios averaged, as the line roll-ups do (every machine of the
    line, the method of its first machine; ratios of a line without piece counts: availability).
    """
    sums: dict[str, tuple[OeeElements, bool]] = {}
    methods: dict[str, OeeMethod] = {}
    for point in points:
        m = spec.machines.get(point.tags.get("machine", ""))
        if m is None or not m.has_oee:
            continue
        key = f"{m.site}/{m.line}"
        total, counted = sums.get(key, (OeeElements(counted_run=0), False))
        total.add_member(elements_of(point.fields), bool(m.counters))
        sums[key] = (total, counted or bool(m.counters))
        methods.setdefault(key, m.method)
    out = {}
    for key, (total, counted) in sums.items():
        kpis = oee_kpis(total, methods[key])
        out[key] = kpis if counted else {k: v for k, v in kpis.items() if k == "availability"}
    return out


def status_of_lines(spec: EngineSpec, points: Iterable[Point]) -> str:
    """The lines' shift figures in a few words: ``hcm/line1 OEE 71.2 % (A 88.0 %, P 83.1 %, Q 97.4 %)``."""
    parts = []
    for key, kpis in sorted(line_figures(spec, points).items()):

        def pct(name: str, kpis: dict[str, float] = kpis) -> str:
            return f"{kpis[name]:.1%}" if name in kpis else "-"

        if "oee" in kpis:
            parts.append(
                f"{key} OEE {pct('oee')} (A {pct('availability')}, P {pct('performance')}, "
                f"Q {pct('quality')})"
            )
        else:
            parts.append(f"{key} A {pct('availability')}")
    return "; ".join(parts) if parts else "no shift running"


def _iso(us: int) -> str:
    moment = EPOCH + timedelta(microseconds=us)
    return moment.isoformat().replace("+00:00", "Z")
