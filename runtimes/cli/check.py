"""``plantstream check``: validate a plant file and summarise it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from plantstream.plant.schema import MqttSource

if TYPE_CHECKING:
    pass

from runtimes.cli.group import (
    PLANT_OPTION,
    err,
    load_or_exit,
    main,
)


@main.command()
@PLANT_OPTION
def check(plant_path: Path) -> None:
    """Validate a plant file and print a one-screen summary (exit 0 valid, 2 invalid).

    Every problem found is listed, not only the first; warnings (no transport security off this
    machine, secrets written literally, signals no source delivers) do not change the exit code.
    """
    from plantstream.plant.warnings import plant_warnings

    plant, spec = load_or_exit(plant_path)
    for warning in plant_warnings(plant):
        err.print(f"[yellow]warning[/yellow] {warning}", soft_wrap=True)
    model = plant.model
    console = Console(highlight=False)
    machines = model.machines()
    console.print(
        f"[green]valid[/green] {plant_path}: {len(model.sites)} site(s), "
        f"{sum(len(s.lines) for s in model.sites)} line(s), {len(machines)} machine(s), "
        f"{sum(len(m.signals) for _, _, m in machines)} signal(s), {len(model.calendars)} calendar(s)"
    )
    table = Table(show_edge=False, pad_edge=False)
    for column in ("site", "line", "machine", "signals (role)", "calendar", "ideal cycle"):
        table.add_column(column)
    for site, line, machine in machines:
        signals = ", ".join(
            name if name == s.role.value else f"{name} ({s.role.value})"
            for name, s in machine.signals.items()
        )
        calendar = machine.calendar or line.calendar or site.calendar or "24/7"
        cycle = f"{machine.ideal_cycle_s:g} s" if machine.ideal_cycle_s else "-"
        if machine.ideal_cycle_s_by_product:
            cycle += f" +{len(machine.ideal_cycle_s_by_product)} products"
        table.add_row(site.id, line.id, machine.id, signals, calendar, cycle)
    console.print(table)
    for calendar_id, cal in model.calendars.items():
        shifts = "; ".join(
            f"{s.name} {s.start:%H:%M}-{s.end:%H:%M}" + (f" ({len(s.breaks)} breaks)" if s.breaks else "")
            for s in cal.shifts
        )
        console.print(f"calendar {calendar_id}: {shifts}; {len(cal.holidays)} holiday(s)")
    for site in model.sites:
        carbon = spec.site_carbon.get(site.id)
        zone = f"site {site.id}: time zone {site.timezone}, country {site.country}"
        if carbon is not None:
            grid = carbon.grid
            zone += f"; grid {grid.t_per_mwh} tCO2e/MWh ({grid.country} {grid.basis} {grid.year})"
        console.print(zone)
    for src in model.sources:
        if isinstance(src, MqttSource):
            subscriptions = ", ".join(f"{sub.topic} ({sub.payload})" for sub in src.subscriptions)
            console.print(f"source {src.id}: mqtt {src.url}; {subscriptions}")
        else:
            tags = sum(len(group.tags) for group in src.groups)
            mode = f"{src.security.mode}/{src.security.policy}" if src.security.mode != "None" else "None"
            console.print(f"source {src.id}: opcua {src.endpoint}; {tags} tag(s); security {mode}")
    if model.cbam is not None:
        from streams.cbam_ledger import build_cbam_spec

        cbam_spec = build_cbam_spec(model)
        assert cbam_spec is not None
        el = cbam_spec.electricity
        console.print(
            f"cbam: installation {cbam_spec.installation.id}, {len(cbam_spec.processes)} process(es), "
            f"{len(cbam_spec.goods)} good(s) ({', '.join(g.cn_code for g in cbam_spec.goods.values())}), "
            f"{len(cbam_spec.precursors)} purchased precursor(s); electricity {el.t_per_mwh} t/MWh "
            f"({el.basis}, {el.country})"
        )
        for stream in cbam_spec.streams.values():
            kind = {"standard": stream.material, "mass_balance": stream.direction}.get(stream.method)
            console.print(
                f"cbam source stream {stream.id}: process {stream.process}, {stream.method}"
                + (f" ({kind})" if kind else "")
                + f", activity from machine {stream.machine}, {len(stream.factors)} factor period(s)"
            )
    p = model.production
    console.print(
        f"production: {p.oee_method.value}, window {p.window_s} s, micro-stops <= {p.micro_stop_max_s:g} s, "
        f"lateness {p.allowed_lateness_s:g} s, corrections up to {p.correction_horizon_s:g} s back"
    )
