"""Write the provisioned Grafana dashboards (docker/grafana/provisioning/dashboards/json/*.json).

The dashboards are generated rather than exported from Grafana so that every Flux query is
readable here, in one place, and checked by tests/unit/test_grafana.py against docs/points.md.
Edit this file, then run:  python docker/grafana/make_dashboards.py
(the test fails when the committed JSON differs from what this writes).

Conventions the queries follow:
- Machine panels filter on ``exists r.machine``; line totals use the line roll-up points (no
  ``machine`` tag), which the pipeline writes for lines of two or more machines.
- Ratios over a time range are computed from the summed time elements and counts, never by
  averaging per-window ratios (docs/points.md: roll-ups sum elements).
- The ``window`` variable picks the tumbling-window points (``1m`` by default); shift tables use
  the ``shift`` windows.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "provisioning" / "dashboards" / "json"
DATASOURCE = {"type": "influxdb", "uid": "plantstream-influxdb"}

RANGE = "from(bucket: v.defaultBucket)\n  |> range(start: v.timeRangeStart, stop: v.timeRangeStop)\n"
LINE = 'r.site == "${site}" and r.line == "${line}"'
MACHINES = LINE + " and r.machine =~ /^${machine:regex}$/"
STATE_FIELDS = ("run_s", "down_s", "idle_s", "setup_s", "off_s", "planned_stop_s", "unknown_s")
LOSS_FIELDS = ("down_s", "setup_s", "idle_s", "off_s", "micro_stop_s", "unknown_s")
# A time element's name without its unit: run_s -> run.
ELEMENT_NAME = 'strings.trimSuffix(v: r._field, suffix: "_s")'
# Seconds from a row's time to now.
AGE_S = "float(v: uint(v: now()) - uint(v: r._time)) / 1000000000.0"


def where(measurement: str, scope: str, window: str | None = None) -> str:
    """A filter step on the measurement, a tag scope and optionally the window tag."""
    window_test = f' and r.window == "{window}"' if window is not None else ""
    return f'  |> filter(fn: (r) => r._measurement == "{measurement}" and {scope}{window_test})\n'


def fields_filter(*fields: str) -> str:
    """A filter step keeping only the given fields."""
    return "  |> filter(fn: (r) => " + " or ".join(f'r._field == "{f}"' for f in fields) + ")\n"


def tag_values(tag: str, predicate: str) -> str:
    """A variable query listing the values of one tag among the points of the dashboard's time range.

    The range, not a fixed look-back: a shift backfilled with ``replay --to-sinks`` months later is
    found when the dashboard shows its day (the variables refresh when the time range changes).
    """
    return (
        'import "influxdata/influxdb/schema"\n'
        f'schema.tagValues(bucket: v.defaultBucket, tag: "{tag}", predicate: (r) => {predicate}, '
        "start: v.timeRangeStart, stop: v.timeRangeStop)"
    )


def variable(
    name: str, label: str, query: str, *, multi: bool = False, default: str | None = None
) -> dict[str, Any]:
    """A dashboard variable filled by a Flux query."""
    var: dict[str, Any] = {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DATASOURCE,
        "query": query,
        "definition": query,
        "refresh": 2,
        "sort": 1,
        "multi": multi,
        "includeAll": multi,
        "hide": 0,
    }
    if default is not None:
        var["current"] = {"selected": True, "text": default, "value": default}
    return var


COMPUTED = 'r._measurement == "oee" or r._measurement == "energy" or r._measurement == "carbon"'
SITE_VAR = variable("site", "Site", tag_values("site", COMPUTED))
LINE_VAR = variable("line", "Line", tag_values("line", f'({COMPUTED}) and r.site == "${{site}}"'))
MACHINE_VAR = variable(
    "machine", "Machine", tag_values("machine", f"({COMPUTED}) and {LINE}"), multi=True, default="$__all"
)
WINDOW_VAR = variable(
    "window",
    "Window",
    tag_values("window", COMPUTED) + '\n  |> filter(fn: (r) => r._value != "shift")',
    default="1m",
)
SOURCE_VAR = variable(
    "source", "Source", tag_values("source", 'r._measurement == "health"'), multi=True, default="$__all"
)


class Layout:
    """Places panels left to right in rows of 24 grid units, and numbers them."""

    def __init__(self) -> None:
        self.x = 0
        self.y = 0
        self.row_h = 0
        self.next_id = 1

    def place(self, w: int, h: int) -> dict[str, int]:
        """The grid position of the next panel of width ``w`` and height ``h``."""
        if self.x + w > 24:
            self.x, self.y, self.row_h = 0, self.y + self.row_h, 0
        pos = {"x": self.x, "y": self.y, "w": w, "h": h}
        self.x += w
        self.row_h = max(self.row_h, h)
        return pos

    def panel(
        self,
        kind: str,
        title: str,
        query: str,
        *,
        w: int = 12,
        h: int = 8,
        unit: str | None = None,
        description: str = "",
        options: dict[str, Any] | None = None,
        custom: dict[str, Any] | None = None,
        decimals: int | None = None,
    ) -> dict[str, Any]:
        """One panel with one Flux query."""
        defaults: dict[str, Any] = {}
        if unit is not None:
            defaults["unit"] = unit
        if decimals is not None:
            defaults["decimals"] = decimals
        if custom is not None:
            defaults["custom"] = custom
        panel: dict[str, Any] = {
            "id": self.next_id,
            "type": kind,
            "title": title,
            "description": description,
            "datasource": DATASOURCE,
            "gridPos": self.place(w, h),
            "targets": [{"refId": "A", "datasource": DATASOURCE, "query": query}],
            "fieldConfig": {"defaults": defaults, "overrides": []},
            "options": options or {},
        }
        self.next_id += 1
        return panel


def dashboard(
    uid: str, title: str, description: str, variables: list[dict[str, Any]], panels: list[dict[str, Any]]
) -> dict[str, Any]:
    """A whole dashboard."""
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["plantstream"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "editable": False,
        "graphTooltip": 1,
        "refresh": "30s",
        "time": {"from": "now-12h", "to": "now"},
        "templating": {"list": variables},
        "annotations": {"list": []},
        "links": [
            {"type": "dashboards", "tags": ["plantstream"], "asDropdown": True, "title": "plantstream"}
        ],
        "panels": panels,
    }


def ratio_totals(scope: str, window: str) -> str:
    """A, P, Q and OEE of roll-up points over the time range, from summed elements (never averaged).

    Performance is over ``counted_run_s``, the run time of the members that count pieces
    (docs/points.md), so an oven's run time does not dilute the line's performance.
    """
    return (
        RANGE
        + f'  |> filter(fn: (r) => r._measurement == "oee" and {scope} and r.window == "{window}")\n'
        + fields_filter(
            "planned_busy_s", "run_s", "counted_run_s", "ideal_run_s", "good_count", "total_count"
        )
        + "  |> map(fn: (r) => ({r with _value: float(v: r._value)}))\n"
        '  |> group(columns: ["_start", "_field"])\n'
        "  |> sum()\n"
        '  |> group(columns: ["_start"])\n'
        '  |> pivot(rowKey: ["_start"], columnKey: ["_field"], valueColumn: "_value")\n'
        "  |> map(fn: (r) => ({\n"
        "      availability: r.run_s / r.planned_busy_s,\n"
        "      performance: r.ideal_run_s / r.counted_run_s,\n"
        "      quality: r.good_count / r.total_count,\n"
        "      oee: r.run_s / r.planned_busy_s * (r.ideal_run_s / r.counted_run_s)\n"
        "        * (r.good_count / r.total_count),\n"
        "  }))\n"
    )


def per_machine(measurement: str, field: str, window: str = "${window}") -> str:
    """One field of one measurement per selected machine, one series per machine."""
    return (
        RANGE
        + f'  |> filter(fn: (r) => r._measurement == "{measurement}" and r._field == "{field}")\n'
        + f'  |> filter(fn: (r) => {MACHINES} and r.window == "{window}")\n'
        '  |> group(columns: ["machine"])\n'
        '  |> keep(columns: ["_time", "_value", "machine"])\n'
    )


def hourly_sum(measurement: str, field: str) -> str:
    """A per-window quantity (kWh, kg CO2e) summed per machine and hour."""
    return (
        per_machine(measurement, field)
        + '  |> aggregateWindow(every: 1h, fn: sum, createEmpty: false, timeSrc: "_start")\n'
    )


def range_total(measurement: str, field: str) -> str:
    """A per-window quantity summed per machine over the time range."""
    return (
        RANGE
        + f'  |> filter(fn: (r) => r._measurement == "{measurement}" and r._field == "{field}")\n'
        + f'  |> filter(fn: (r) => {MACHINES} and r.window == "${{window}}")\n'
        '  |> group(columns: ["machine"])\n'
        "  |> sum()\n"
    )


def per_good_unit_total(measurement: str, field: str, ratio: str) -> str:
    """Field over good pieces per machine over the time range (sums first, then the ratio)."""
    return (
        RANGE + f'  |> filter(fn: (r) => (r._measurement == "{measurement}" and r._field == "{field}")'
        ' or (r._measurement == "oee" and r._field == "good_count"))\n'
        + f'  |> filter(fn: (r) => {MACHINES} and r.window == "${{window}}")\n'
        "  |> map(fn: (r) => ({r with _value: float(v: r._value)}))\n"
        '  |> group(columns: ["machine", "_field"])\n'
        "  |> sum()\n"
        '  |> group(columns: ["machine"])\n'
        '  |> pivot(rowKey: ["machine"], columnKey: ["_field"], valueColumn: "_value")\n'
        "  |> filter(fn: (r) => exists r.good_count and r.good_count > 0.0)\n"
        f"  |> map(fn: (r) => ({{machine: r.machine, {field}: r.{field}, good_count: r.good_count,"
        f" {ratio}: r.{field} / r.good_count}}))\n"
        "  |> group()\n"
    )


def line_overview() -> dict[str, Any]:
    """OEE with A / P / Q per machine and shift, the state timeline and the top losses."""
    lay = Layout()
    stat_opts = {
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        "colorMode": "value",
    }
    panels = [
        lay.panel(
            "stat",
            "Line OEE, A, P, Q (shifts in range)",
            ratio_totals(LINE + " and not exists r.machine", "shift"),
            w=24,
            h=5,
            unit="percentunit",
            decimals=1,
            options=stat_opts,
            description="From the line roll-up's summed time elements and counts of every shift in the "
            "time range (lines of two or more machines).",
        ),
        lay.panel(
            "table",
            "OEE per machine and shift",
            RANGE
            + where("oee", MACHINES, "shift")
            + fields_filter(
                "availability", "performance", "quality", "oee", "good_count", "reject_count", "down_s"
            )
            + '  |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")\n'
            "  |> group()\n"
            '  |> keep(columns: ["_time", "shift", "machine", "availability", "performance", "quality",'
            ' "oee", "good_count", "reject_count", "down_s"])\n'
            '  |> sort(columns: ["_time", "machine"], desc: true)\n',
            w=24,
            h=9,
            description="One row per machine and shift (time is the shift's start). Ovens and other "
            "machines without a piece counter show availability only.",
            custom={"align": "auto"},
        ),
        lay.panel(
            "timeseries",
            "OEE per machine",
            per_machine("oee", "oee"),
            unit="percentunit",
            description="Per tumbling window (the window variable).",
        ),
        lay.panel(
            "state-timeline",
            "Machine state",
            RANGE
            + where("oee", MACHINES, "${window}")
            + fields_filter(*STATE_FIELDS)
            + '  |> group(columns: ["machine", "_time"])\n'
            '  |> sort(columns: ["_value"], desc: true)\n'
            "  |> limit(n: 1)\n"
            f"  |> map(fn: (r) => ({{_time: r._time, machine: r.machine, state: {ELEMENT_NAME}}}))\n"
            '  |> group(columns: ["machine"])\n',
            description="The state that took most of each window, from the window's time elements "
            "(run, down, idle, setup, off, planned_stop, unknown).",
            options={"showValue": "never", "mergeValues": True, "rowHeight": 0.8},
        ),
        lay.panel(
            "bargauge",
            "Top losses (minutes in range)",
            RANGE
            + where("oee", MACHINES, "${window}")
            + fields_filter(*LOSS_FIELDS)
            + "  |> map(fn: (r) => ({r with _value: float(v: r._value) / 60.0}))\n"
            '  |> group(columns: ["machine", "_field"])\n'
            "  |> sum()\n"
            f'  |> map(fn: (r) => ({{loss: r.machine + " " + {ELEMENT_NAME}, minutes: r._value}}))\n'
            "  |> group()\n"
            '  |> sort(columns: ["minutes"], desc: true)\n'
            "  |> limit(n: 10)\n",
            w=12,
            h=9,
            unit="m",
            description="Planned busy time lost by machine and cause: down, setup, idle, off, micro-stops "
            "and time with no state data (unknown).",
            options={
                "orientation": "horizontal",
                "displayMode": "basic",
                "reduceOptions": {"values": True, "calcs": []},
            },
        ),
        lay.panel(
            "timeseries",
            "Availability, performance, quality per shift",
            RANGE
            + where("oee", MACHINES, "shift")
            + fields_filter("availability", "performance", "quality")
            + '  |> group(columns: ["machine", "_field"])\n'
            '  |> keep(columns: ["_time", "_value", "machine", "_field"])\n',
            w=12,
            h=9,
            unit="percentunit",
            custom={"drawStyle": "bars", "fillOpacity": 60},
        ),
    ]
    # The state timeline and the losses name states with the strings package.
    for panel in panels:
        query = panel["targets"][0]["query"]
        if "strings." in query:
            panel["targets"][0]["query"] = 'import "strings"\n' + query
    return dashboard(
        "plantstream-line",
        "plantstream · Line overview",
        "OEE per ISO 22400-2 with availability, performance and quality per machine and shift, "
        "machine states and the largest losses.",
        [SITE_VAR, LINE_VAR, MACHINE_VAR, WINDOW_VAR],
        panels,
    )


def energy() -> dict[str, Any]:
    """kW, kWh and kWh per good unit."""
    lay = Layout()
    panels = [
        lay.panel(
            "timeseries", "Power (average kW per window)", per_machine("energy", "avg_kw"), unit="kwatt", w=24
        ),
        lay.panel(
            "timeseries",
            "Energy per hour",
            hourly_sum("energy", "kwh"),
            unit="kwatth",
            custom={"drawStyle": "bars", "fillOpacity": 70, "stacking": {"mode": "normal"}},
        ),
        lay.panel(
            "bargauge",
            "Energy in range",
            range_total("energy", "kwh"),
            unit="kwatth",
            options={"orientation": "horizontal", "displayMode": "basic"},
        ),
        lay.panel(
            "timeseries",
            "kWh per good unit, per shift",
            per_machine("energy", "kwh_per_good_unit", window="shift"),
            unit="kwatth",
            decimals=3,
            custom={"drawStyle": "bars", "fillOpacity": 60},
            description="Specific energy consumption of each shift (machines with a piece counter).",
        ),
        lay.panel(
            "table",
            "kWh per good unit in range",
            per_good_unit_total("energy", "kwh", "kwh_per_good_unit"),
            description="Energy over good pieces, both summed over the time range.",
        ),
        lay.panel(
            "timeseries",
            "Energy coverage",
            per_machine("energy", "coverage"),
            unit="percentunit",
            w=24,
            h=6,
            description="The fraction of each window the meter data covered: below 100 % at gaps.",
        ),
    ]
    return dashboard(
        "plantstream-energy",
        "plantstream · Energy",
        "Power, energy and specific energy consumption per machine.",
        [SITE_VAR, LINE_VAR, MACHINE_VAR, WINDOW_VAR],
        panels,
    )


def carbon() -> dict[str, Any]:
    """Emissions in kg CO2e per hour and per good unit, Scope 1 against Scope 2."""
    lay = Layout()
    scope_query = (
        RANGE
        + where("carbon", MACHINES, "${window}")
        + fields_filter("scope1_co2e_kg", "scope2_location_kg", "scope2_market_kg")
    )
    panels = [
        lay.panel(
            "timeseries",
            "kg CO2e per hour",
            hourly_sum("carbon", "co2e_kg"),
            unit="masskg",
            custom={"drawStyle": "bars", "fillOpacity": 70, "stacking": {"mode": "normal"}},
            description="Scope 1 (fuels) plus Scope 2 location-based, per machine.",
        ),
        lay.panel(
            "timeseries",
            "Scope 1 and Scope 2 per hour",
            scope_query
            + '  |> group(columns: ["_field"])\n'
            + '  |> aggregateWindow(every: 1h, fn: sum, createEmpty: false, timeSrc: "_start")\n',
            unit="masskg",
            custom={"drawStyle": "bars", "fillOpacity": 70},
            description="Scope 2 market-based appears where the site has market instruments.",
        ),
        lay.panel(
            "piechart",
            "Scope 1 vs Scope 2 (location-based) in range",
            RANGE
            + where("carbon", MACHINES, "${window}")
            + fields_filter("scope1_co2e_kg", "scope2_location_kg")
            + '  |> group(columns: ["_field"])\n'
            "  |> sum()\n",
            unit="masskg",
            options={
                "reduceOptions": {"calcs": ["sum"], "values": False},
                "legend": {"displayMode": "table", "values": ["value", "percent"]},
            },
        ),
        lay.panel(
            "table",
            "kg CO2e per good unit in range",
            per_good_unit_total("carbon", "co2e_kg", "co2e_kg_per_good_unit"),
            description="Emissions over good pieces, both summed over the time range.",
        ),
        lay.panel(
            "timeseries",
            "kg CO2e per good unit, per shift",
            per_machine("carbon", "co2e_kg_per_good_unit", window="shift"),
            unit="masskg",
            decimals=4,
            custom={"drawStyle": "bars", "fillOpacity": 60},
        ),
        lay.panel(
            "stat",
            "Grid factor used (t CO2e / MWh)",
            per_machine("carbon", "grid_factor_t_per_mwh") + "  |> last()\n  |> group()\n  |> max()\n",
            decimals=4,
            options={"reduceOptions": {"calcs": ["lastNotNull"], "values": False}},
            description="The location-based factor from the shipped table (country, basis, year).",
        ),
    ]
    return dashboard(
        "plantstream-carbon",
        "plantstream · Carbon",
        "Scope 1 and 2 emissions per machine, per hour and per good unit.",
        [SITE_VAR, LINE_VAR, MACHINE_VAR, WINDOW_VAR],
        panels,
    )


def pipeline() -> dict[str, Any]:
    """Rates, lag, drops and per-source status of the pipeline itself."""
    lay = Layout()
    health = (
        RANGE + '  |> filter(fn: (r) => r._measurement == "health" and r.source =~ /^${source:regex}$/)\n'
    )
    panels = [
        lay.panel(
            "table",
            "Sources",
            health
            + fields_filter("connected", "readings", "reconnects", "dropped", "bad", "last_error")
            + "  |> last()\n"
            # Fields of one point share its time; strings, because a column has one type.
            "  |> map(fn: (r) => ({r with _value: string(v: r._value)}))\n"
            '  |> group(columns: ["source"])\n'
            '  |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")\n'
            '  |> sort(columns: ["_time"])\n'
            "  |> tail(n: 1)\n"
            "  |> group()\n",
            w=24,
            h=6,
            description="The newest health point of each source: last_error shows only while that point "
            "has one (a connection failing now).",
        ),
        lay.panel(
            "timeseries",
            "Readings per second",
            health + fields_filter("readings") + "  |> derivative(unit: 1s, nonNegative: true)\n"
            '  |> group(columns: ["source"])\n',
            unit="reqps",
            description="From the sources' reading counters (a restart resets them; negative steps are "
            "skipped).",
        ),
        lay.panel(
            "state-timeline",
            "Connected",
            health + fields_filter("connected") + '  |> group(columns: ["source"])\n',
            options={"showValue": "never", "mergeValues": True},
        ),
        lay.panel(
            "timeseries",
            "Dropped, refused and reconnects per interval",
            health + fields_filter("dropped", "bad", "reconnects") + "  |> difference(nonNegative: true)\n"
            '  |> group(columns: ["source", "_field"])\n'
            "  |> aggregateWindow(every: v.windowPeriod, fn: sum, createEmpty: false)\n",
            custom={"drawStyle": "bars", "fillOpacity": 70},
            description="dropped: by the source queue's overflow policy; bad: refused payloads or failing "
            "items.",
        ),
        lay.panel(
            "bargauge",
            "Lag: age of the newest reading per machine",
            RANGE
            + '  |> filter(fn: (r) => r._measurement == "reading" and r._field == "quality")\n'
            + f"  |> filter(fn: (r) => {MACHINES})\n"
            '  |> group(columns: ["machine"])\n'
            "  |> last()\n"
            f"  |> map(fn: (r) => ({{machine: r.machine, _value: {AGE_S}}}))\n",
            unit="s",
            options={"orientation": "horizontal", "displayMode": "basic"},
            description="Now minus the source time of each machine's newest raw reading in InfluxDB: "
            "collection, processing and sink delay together.",
        ),
        lay.panel(
            "timeseries",
            "Raw readings written per minute",
            RANGE
            + '  |> filter(fn: (r) => r._measurement == "reading" and r._field == "quality")\n'
            + f"  |> filter(fn: (r) => {MACHINES})\n"
            '  |> group(columns: ["machine"])\n'
            "  |> aggregateWindow(every: 1m, fn: count, createEmpty: false)\n",
            description="reading points that reached InfluxDB, by source time.",
        ),
        lay.panel(
            "timeseries",
            "Sink outbox: waiting lines and the oldest one's age",
            RANGE
            + '  |> filter(fn: (r) => r._measurement == "health" and exists r.sink)\n'
            + fields_filter("outbox_lines", "outbox_age_s")
            + '  |> group(columns: ["sink", "_field"])\n',
            description="Points written to the outbox and not yet accepted by InfluxDB. A growing line "
            "count or age means the database is unreachable or slower than the pipeline; nothing is lost "
            "while the outbox has room (docs/sinks.md).",
        ),
        lay.panel(
            "timeseries",
            "Sink errors per interval, by class",
            RANGE
            + '  |> filter(fn: (r) => r._measurement == "health" and exists r.sink)\n'
            + fields_filter(
                "errors_connection",
                "errors_server",
                "errors_throttled",
                "errors_config",
                "errors_rejected",
                "errors_other",
            )
            + "  |> difference(nonNegative: true)\n"
            '  |> group(columns: ["sink", "_field"])\n'
            "  |> aggregateWindow(every: v.windowPeriod, fn: sum, createEmpty: false)\n",
            custom={"drawStyle": "bars", "fillOpacity": 70},
            description="Failed write attempts; rejected lines go to the dead letter, the rest are retried.",
        ),
        lay.panel(
            "bargauge",
            "Seconds since the last health point",
            health + fields_filter("readings") + '  |> group(columns: ["source"])\n'
            "  |> last()\n"
            f"  |> map(fn: (r) => ({{source: r.source, _value: {AGE_S}}}))\n",
            unit="s",
            w=12,
            options={"orientation": "horizontal", "displayMode": "basic"},
            description="Health points come at every checkpoint (5 s by default): a growing age means the "
            "pipeline or its sink has stalled.",
        ),
    ]
    return dashboard(
        "plantstream-pipeline",
        "plantstream · Pipeline health",
        "The pipeline's own health: per-source status, rates, drops and lag.",
        [SOURCE_VAR, SITE_VAR, LINE_VAR, MACHINE_VAR],
        panels,
    )


SIX_LOSSES = (
    "breakdown_s",
    "setup_s",
    "small_stop_s",
    "reduced_speed_s",
    "startup_reject_s",
    "production_reject_s",
)
"""The six big losses of the ``losses`` points, in Nakajima's order (docs/points.md)."""


def latest_stops(*fields: str) -> str:
    """The selected machines' stops, one row each at its latest ``revision``, fields pivoted.

    ``duration_s`` and ``revision`` always, and ``fields`` besides.

    A correction that changes a stop's reason writes it under its new ``reason`` tag, and InfluxDB
    keeps the old series beside it (docs/points.md): a stop's identity is its machine and start,
    so of the rows sharing those only the highest revision counts.
    """
    return (
        RANGE
        + where("stop", MACHINES)
        + fields_filter("duration_s", "revision", *fields)
        + '  |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")\n'
        '  |> group(columns: ["machine", "_time"])\n'
        '  |> sort(columns: ["revision"])\n'
        '  |> last(column: "revision")\n'
    )


def stops_by_reason(aggregate: str, column: str, scale: str) -> str:
    """The selected machines' stops grouped by reason, ``aggregate`` of their durations, largest first."""
    return (
        latest_stops()
        + '  |> group(columns: ["reason"])\n'
        + f'  |> {aggregate}(column: "duration_s")\n'
        + f"  |> map(fn: (r) => ({{reason: r.reason, {column}: {scale}}}))\n"
        "  |> group()\n"
        f'  |> sort(columns: ["{column}"], desc: true)\n'
        "  |> limit(n: 15)\n"
    )


def losses() -> dict[str, Any]:
    """Why the line stopped: a Pareto of stop reasons, the six big losses, MTBF / MTTR, the stop log."""
    lay = Layout()
    bars = {
        "orientation": "horizontal",
        "displayMode": "basic",
        "reduceOptions": {"values": True, "calcs": []},
    }
    panels = [
        lay.panel(
            "bargauge",
            "Stop time by reason (minutes in range)",
            stops_by_reason("sum", "minutes", "float(v: r.duration_s) / 60.0"),
            unit="m",
            description="The Pareto of stop reasons by time: planned busy time each reason stood the "
            "selected machines (stop points, first cause; `code N` is a code the reason tree lacks).",
            options=bars,
        ),
        lay.panel(
            "bargauge",
            "Stops by reason (count)",
            stops_by_reason("count", "stops", "r.duration_s"),
            description="The Pareto of stop reasons by number of stops, micro-stops included.",
            options=bars,
        ),
        lay.panel(
            "bargauge",
            "From planned busy time to fully productive time (minutes)",
            'import "strings"\n'
            + RANGE
            + where("losses", MACHINES, "${window}")
            + fields_filter(*SIX_LOSSES, "unobserved_s", "fully_productive_s")
            + '  |> group(columns: ["_field"])\n'
            "  |> sum()\n"
            f"  |> map(fn: (r) => ({{loss: {ELEMENT_NAME}, minutes: r._value / 60.0}}))\n"
            "  |> group()\n",
            unit="m",
            description="The six big losses summed over the selected machines and the range; with the "
            "unobserved time they add up to planned busy time minus fully productive time.",
            options=bars,
        ),
        lay.panel(
            "table",
            "MTBF and MTTR per machine",
            RANGE
            + where("oee", MACHINES, "${window}")
            + fields_filter("run_s", "down_s", "failures")
            + "  |> map(fn: (r) => ({r with _value: float(v: r._value)}))\n"
            '  |> group(columns: ["machine", "_field"])\n'
            "  |> sum()\n"
            '  |> group(columns: ["machine"])\n'
            '  |> pivot(rowKey: ["machine"], columnKey: ["_field"], valueColumn: "_value")\n'
            "  |> filter(fn: (r) => r.failures > 0.0)\n"
            "  |> map(fn: (r) => ({machine: r.machine, failures: r.failures,"
            " mtbf_min: r.run_s / r.failures / 60.0, mttr_min: r.down_s / r.failures / 60.0}))\n"
            "  |> group()\n",
            description="ISO 22400-2 MTBF = run time / failures and MTTR = down time / failures, "
            "from the elements summed over the range (never averaged per window).",
        ),
        lay.panel(
            "table",
            "Stop log",
            latest_stops("cause") + "  |> group()\n"
            '  |> sort(columns: ["_time"], desc: true)\n'
            "  |> limit(n: 200)\n"
            '  |> keep(columns: ["_time", "machine", "category", "reason", "reason_group", "cause", '
            '"duration_s"])\n',
            w=24,
            h=10,
            unit="s",
            description="Every stop of the selected machines at its latest revision, newest first: its "
            "start, state, reason and group, where the reason came from (first or last cause by the "
            "machine's rule, or an operator: plantstream reason), and the planned busy time it stood "
            "(seconds).",
        ),
    ]
    return dashboard(
        "plantstream-losses",
        "Losses and stop reasons",
        "Why the line stopped: stop reasons by time and count, the six big losses, MTBF and MTTR "
        "per machine, and the stop log.",
        [SITE_VAR, LINE_VAR, MACHINE_VAR, WINDOW_VAR],
        panels,
    )


DASHBOARDS = {
    "line-overview.json": line_overview,
    "energy.json": energy,
    "carbon.json": carbon,
    "pipeline-health.json": pipeline,
    "losses.json": losses,
}


def render() -> dict[str, str]:
    """Every dashboard's file name and JSON text."""
    return {
        name: json.dumps(build(), indent=2, ensure_ascii=False) + "\n" for name, build in DASHBOARDS.items()
    }


def main() -> None:
    """Write the dashboards."""
    OUT.mkdir(parents=True, exist_ok=True)
    for name, text in render().items():
        (OUT / name).write_text(text)
        sys.stderr.write(f"wrote {OUT / name}\n")


if __name__ == "__main__":
    main()
