"""The ``plantstream`` command line. Errors are one clear line each; exit codes are documented.

Exit codes: 0 success; 1 the data was bad and ``--strict`` was given; 2 the plant file or the
command line is invalid; ``replay`` stopped by Ctrl-C 130, by SIGTERM 143 (128 + the signal).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import stat
import sys
import time
from collections.abc import Awaitable, Callable, Iterable
from contextlib import ExitStack, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, NoReturn, TextIO

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from plantstream import __version__
from plantstream.plant import LoadedPlant, PlantError
from plantstream.plant.schema import Kafka, MqttSource, OpcUaSecurity, PlantModel
from plantstream.records import EPOCH, FieldValue, Point
from runtimes.plant import load_and_resolve
from runtimes.replay import OverlongLine, ReplayAborted, ReplaySummary, read_lines, replay
from streams.calendar import Schedule
from streams.config import EngineSpec
from streams.engine import Engine

if TYPE_CHECKING:
    from runtimes.cbam import CbamLedger
    from runtimes.http import PortUnavailable
    from runtimes.progress import TerminalProgress
    from runtimes.statedir import StateDirLock

__all__ = ["main"]

_err = Console(stderr=True, highlight=False, soft_wrap=True)

PLANT_OPTION = click.option(
    "-c",
    "--config",
    "plant_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The plant file (YAML).",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="plantstream")
def main() -> None:
    """plantstream: OPC UA / MQTT to OEE, energy, CO2e and CBAM, for smart factories."""


_held_state_dirs: list[StateDirLock] = []
"""The state directories this process writes, locked until it exits."""


def _hold_state_dir(state_dir: Path) -> None:
    """Lock ``state_dir`` for the rest of the process: one pipeline per state directory (else exit 2)."""
    from runtimes.statedir import StateDirBusy, StateDirLock

    try:
        _held_state_dirs.append(StateDirLock(state_dir))
    except StateDirBusy as exc:
        _err.print(
            f"[red]error[/red] {escape(str(exc))}; one pipeline per state directory: "
            "stop that one or choose another --state-dir; nothing was started",
            soft_wrap=True,
        )
        sys.exit(2)
    except OSError as exc:
        _err.print(f"[red]error[/red] --state-dir {state_dir}: {exc.strerror or exc}; nothing was started")
        sys.exit(2)


def _port_unavailable(exc: PortUnavailable, *, plant_setting: bool) -> NoReturn:
    """One line naming the port and how to choose another; exit 2."""
    choose = "--http-port N" + (" or http: {port: N} in the plant file" if plant_setting else "")
    _err.print(
        f"[red]error[/red] port {exc.port} for /healthz, /metrics and /stream: {exc.reason}; "
        f"choose another with {choose}; nothing was started",
        soft_wrap=True,
    )
    sys.exit(2)


def _load(plant_path: Path) -> tuple[LoadedPlant, EngineSpec]:
    try:
        return load_and_resolve(plant_path)
    except PlantError as exc:
        for issue in exc.issues:
            _err.print(f"[red]error[/red] {issue}", soft_wrap=True)
        listed = f" ({len(exc.issues)} listed)" if exc.omitted else ""
        _err.print(f"{plant_path}: {len(exc.issues) + exc.omitted} problem(s){listed}; nothing was started")
        sys.exit(2)


@main.command()
@PLANT_OPTION
def check(plant_path: Path) -> None:
    """Validate a plant file and print a one-screen summary (exit 0 valid, 2 invalid).

    Every problem found is listed, not only the first; warnings (no transport security off this
    machine, secrets written literally, signals no source delivers) do not change the exit code.
    """
    from plantstream.plant.warnings import plant_warnings

    plant, spec = _load(plant_path)
    for warning in plant_warnings(plant):
        _err.print(f"[yellow]warning[/yellow] {warning}", soft_wrap=True)
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


@main.command(name="replay")
@PLANT_OPTION
@click.option("--readings", "readings_path", required=True, help="Readings as JSON lines; - for stdin.")
@click.option(
    "--out",
    "out_path",
    default=None,
    help="Where the points go; - for stdout (the default without --to-sinks).",
)
@click.option("--strict", is_flag=True, help="Stop at the first bad line (exit 1) instead of skipping it.")
@click.option(
    "--dead-letter", "dead_letter_path", default=None, help="Write refused lines here, with reasons."
)
@click.option("--quiet", "-q", is_flag=True, help="No summary and no progress bar on stderr.")
@click.option(
    "--to-sinks",
    is_flag=True,
    help="Send the points to the plant file's sinks via the outbox in --state-dir; exit once delivered.",
)
@click.option(
    "--state-dir",
    default=None,
    type=click.Path(file_okay=False, path_type=Path),
    help="The outboxes of --to-sinks (default plantstream-data); a plant file with a cbam section "
    "also feeds the CBAM ledger kept here.",
)
@click.option(
    "--timeout",
    "timeout_s",
    default=600.0,
    show_default=True,
    help="With --to-sinks: seconds to wait for delivery before giving up (exit 1).",
)
def replay_command(
    plant_path: Path,
    readings_path: str,
    out_path: str | None,
    strict: bool,
    dead_letter_path: str | None,
    quiet: bool,
    to_sinks: bool,
    state_dir: Path | None,
    timeout_s: float,
) -> None:
    """Feed recorded readings through the calculators and write every point as JSON lines."""
    plant, spec = _load(plant_path)
    if to_sinks and not plant.model.sinks:
        _err.print(f"[red]error[/red] {plant_path}: --to-sinks, but the plant file has no sinks: section")
        sys.exit(2)
    if out_path is None and not to_sinks:
        out_path = "-"
    if to_sinks or state_dir is not None:
        _hold_state_dir(state_dir or Path("plantstream-data"))
    engine = Engine(spec, reorder=False)
    ledger = _cbam_ledger(plant, plant_path, state_dir, required=not to_sinks)
    name = "stdin" if readings_path == "-" else readings_path
    _sigterm_interrupts()
    try:
        summary, code = _replay_files(
            plant,
            engine,
            spec,
            ledger,
            name,
            readings_path,
            out_path,
            dead_letter_path,
            strict=strict,
            quiet=quiet,
            to_sinks=to_sinks,
            state_dir=state_dir,
            timeout_s=timeout_s,
        )
    except KeyboardInterrupt as exc:
        written = [p for p in (out_path, dead_letter_path) if p not in (None, "-")]
        _err.print(
            "[red]interrupted[/red]"
            + (f"; nothing written to {' or '.join(map(str, written))}" if written else "")
            + ("; the points already handed to the sinks stay in their outbox" if to_sinks else "")
        )
        sys.exit(128 + (exc.signum if isinstance(exc, _Terminated) else signal.SIGINT))
    if not quiet and not to_sinks:
        _print_summary(summary, name, f"written to {'stdout' if out_path == '-' else out_path}")
    if not quiet and ledger is not None:
        _err.print(f"CBAM ledger updated in {state_dir}")
    if ledger is not None and ledger.years_before_definitive:
        years = ", ".join(map(str, sorted(ledger.years_before_definitive)))
        _err.print(
            f"[yellow]warning[/yellow] CBAM ledger: the windows of {years} are kept but have no cbam "
            "figures: the definitive-period methodology (IR 2025/2547) applies from 2026, and the "
            "transitional period's quarterly reports (IR 2023/1773) are not supported",
            soft_wrap=True,
        )
    if code:
        sys.exit(code)


def _replay_files(
    plant: LoadedPlant,
    engine: Engine,
    spec: EngineSpec,
    ledger: CbamLedger | None,
    name: str,
    readings_path: str,
    out_path: str | None,
    dead_letter_path: str | None,
    *,
    strict: bool,
    quiet: bool,
    to_sinks: bool,
    state_dir: Path | None,
    timeout_s: float,
) -> tuple[ReplaySummary, int]:
    """``replay`` with its files open, and its exit code.

    The output files appear only if it ends without an exception: a sink that could not take
    every point in time (exit 1) does not make the points file partial, so that one stays.
    """
    from runtimes.atomic_file import written_at_end
    from runtimes.progress import TerminalProgress

    with ExitStack() as stack:
        if ledger is not None:
            stack.callback(ledger.close)
        try:
            # Bytes, not text: the replay decodes each line itself, so a line that is not UTF-8 is
            # one bad line, reported with its number, from a file or from stdin alike.
            source: BinaryIO = sys.stdin.buffer
            if readings_path != "-":
                source = stack.enter_context(Path(readings_path).open("rb"))
            out: TextIO | None = (
                None
                if out_path is None
                else sys.stdout
                if out_path == "-"
                else stack.enter_context(written_at_end(Path(out_path)))
            )
            dead = stack.enter_context(written_at_end(Path(dead_letter_path))) if dead_letter_path else None
        except OSError as exc:
            _err.print(f"[red]error[/red] {exc.filename}: {exc.strerror}")
            sys.exit(2)
        size = _file_size(source)
        progress = stack.enter_context(
            TerminalProgress(_err, f"replay {name}", size, enabled=None if not quiet else False)
        )
        lines = progress.bytes_read(read_lines(source))

        def report(text: str) -> None:
            _err.print(f"[yellow]skipped[/yellow] {text}", soft_wrap=True)

        try:
            if to_sinks:
                return _replay_to_sinks(
                    plant,
                    engine,
                    lines,
                    out,
                    name,
                    spec,
                    strict,
                    report,
                    dead,
                    state_dir or Path("plantstream-data"),
                    timeout_s,
                    quiet,
                    ledger,
                    out_path,
                    progress,
                )
            summary = replay(
                engine,
                lines,
                out,
                source=name,
                lateness_us=spec.allowed_lateness_us,
                strict=strict,
                report=report,
                dead_letter=dead,
                on_points=None if ledger is None else ledger.write,
            )
            if ledger is not None and out is not None:
                # The daily `cbam` points join the others in the output.
                for point in ledger.commit():
                    out.write(point.to_json() + "\n")
            return summary, 0
        except ReplayAborted as exc:
            _err.print(f"[red]error[/red] {exc}", soft_wrap=True)
            sys.exit(1)


def _file_size(stream: BinaryIO) -> int | None:
    """The size of a regular file, for a bar with a share done; ``None`` for a pipe or a terminal."""
    try:
        info = os.fstat(stream.fileno())
    except (OSError, ValueError):
        return None
    return info.st_size if stat.S_ISREG(info.st_mode) else None


class _Terminated(KeyboardInterrupt):
    """SIGTERM, handled as Ctrl-C is: the command stops and leaves no partial output."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _sigterm_interrupts() -> None:
    """Make SIGTERM stop the command as Ctrl-C does (in the main thread, as an exception)."""

    def interrupt(signum: int, _frame: object) -> None:
        raise _Terminated(signum)

    signal.signal(signal.SIGTERM, interrupt)


def _cbam_ledger(
    plant: LoadedPlant, plant_path: Path, state_dir: Path | None, *, required: bool
) -> CbamLedger | None:
    if state_dir is None:
        return None
    from runtimes.cbam import open_ledger

    ledger = open_ledger(plant.model, state_dir)
    if ledger is None and required:
        _err.print(
            f"[red]error[/red] {plant_path}: --state-dir feeds the CBAM ledger, but there is no cbam section"
        )
        sys.exit(2)
    return ledger


def _replay_to_sinks(
    plant: LoadedPlant,
    engine: Engine,
    source: Iterable[bytes | OverlongLine],
    out: TextIO | None,
    name: str,
    spec: EngineSpec,
    strict: bool,
    report: Callable[[str], None],
    dead: TextIO | None,
    state_dir: Path,
    timeout_s: float,
    quiet: bool,
    ledger: CbamLedger | None,
    out_path: str | None,
    progress: TerminalProgress,
) -> tuple[ReplaySummary, int]:
    """``replay --to-sinks``, and its exit code: 0 once every point is delivered, 1 if not or if refused."""
    from runtimes.sinks import build_sinks, replay_to_sinks
    from sinks.files import JsonLinesSink
    from sinks.influx import SinkConfigError

    letters = JsonLinesSink(state_dir)
    try:
        sinks = build_sinks(plant, state_dir, letters.dead_letter)
    except SinkConfigError as exc:
        _err.print(f"[red]error[/red] {exc}")
        sys.exit(2)
    try:
        result = asyncio.run(
            replay_to_sinks(
                engine,
                source,
                sinks,
                timeout_s=timeout_s,
                source=name,
                lateness_us=spec.allowed_lateness_us,
                strict=strict,
                report=report,
                dead_letter=dead,
                out=out,
                ledger=ledger,
                on_waiting=lambda left: progress.update(
                    description=f"replay {name}: delivering, {left:,} line(s) waiting in the outbox"
                ),
            )
        )
    finally:
        letters.close()
    if not quiet:
        where = "put in the outbox of sink(s) " + ", ".join(sink.id for sink in sinks)
        if out_path is not None:
            where = f"written to {'stdout' if out_path == '-' else out_path} and {where}"
        _print_summary(result.summary, name, where)
    failed = False
    for sink in sinks:
        left = result.undelivered.get(sink.id, 0)
        if left:
            failed = True
            _err.print(
                f"[red]error[/red] sink {sink.id}: {sink.health.written} line(s) delivered to "
                f"{sink.settings.url}, {left} not delivered within {timeout_s:g} s (last error: "
                f"{sink.health.last_error or 'none'}); they stay in {sink.outbox.path} and go out "
                f"with the next `run` or `replay --to-sinks` with --state-dir {state_dir}"
            )
        rejected = result.dead_letters.get(sink.id, 0)
        if rejected:
            failed = True
            _err.print(
                f"[red]error[/red] sink {sink.id}: {rejected} point(s) refused (by the server or as "
                f"unencodable); they are in {state_dir / 'deadletter'} with the reasons"
            )
        if not left and not quiet:
            _err.print(f"sink {sink.id}: {sink.health.written} line(s) delivered to {sink.settings.url}")
    return result.summary, 1 if failed else 0


def _print_summary(summary: ReplaySummary, source: str, destination: str) -> None:
    """The shifts' OEE as a table, then one line: what was read, used, refused and written where."""
    table = Table(title="OEE by shift", show_edge=False, pad_edge=False)
    for column in ("time", "machine", "shift", "A", "P", "Q", "OEE", "run", "unknown"):
        table.add_column(column, justify="right" if column in "APQOEErununknown" else "left")
    for point in summary.shift_points:
        f = point.fields

        def pct(key: str, fields: dict[str, FieldValue] = f) -> str:
            value = fields.get(key)
            return f"{value:.2%}" if isinstance(value, float) else "-"

        def minutes(key: str, fields: dict[str, FieldValue] = f) -> str:
            value = fields.get(key)
            return f"{value / 60:.0f} min" if isinstance(value, int | float) else "-"

        where = point.tags.get("machine") or point.tags.get("line") or point.tags["site"]
        table.add_row(
            point.time.strftime("%Y-%m-%d %H:%M"),
            where,
            point.tags.get("shift", ""),
            pct("availability"),
            pct("performance"),
            pct("quality"),
            pct("oee"),
            minutes("run_s"),
            minutes("unknown_s"),
        )
    if summary.shift_points:
        _table_console(stderr=True).print(table)
    reasons = ", ".join(f"{k} {v}" for k, v in sorted(summary.rejected.items()))
    rejected = f"rejected {summary.rejected_total}: {reasons}" if reasons else "rejected none"
    blank = f", {summary.blank} blank" if summary.blank else ""
    engine = summary.engine
    _err.print(
        f"{source}: {summary.readings} readings from {summary.lines} lines{blank}; {rejected}; "
        f"late readings corrected {engine.get('late_readings', 0)}, windows re-emitted "
        f"{engine.get('windows_corrected', 0)}; {summary.points} points {destination}"
    )


_UNWRAPPED_WIDTH = 10_000
"""Off a terminal, a table is as wide as its rows: a log or a file keeps whole dates, no wrapping."""


def _table_console(*, stderr: bool) -> Console:
    """A console for tables: the terminal's width on a terminal, the rows' own width elsewhere."""
    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr, highlight=False, width=None if stream.isatty() else _UNWRAPPED_WIDTH)


@main.command(name="browse")
@click.argument("endpoint")
@click.option("--depth", default=4, show_default=True, help="Levels below Objects.")
@click.option(
    "--security",
    "mode",
    type=click.Choice(["None", "Sign", "SignAndEncrypt"]),
    default="None",
    show_default=True,
    help="Message security mode.",
)
@click.option(
    "--policy",
    type=click.Choice(["Basic256Sha256", "Aes128_Sha256_RsaOaep", "Aes256_Sha256_RsaPss"]),
    default="Basic256Sha256",
    show_default=True,
)
@click.option("--pin", default=None, help="SHA-256 of the server certificate to trust.")
@click.option("--trusted", "trusted_dir", default=None, help="A folder of trusted server certificates.")
@click.option(
    "--config", "as_config", is_flag=True, help="Print a ready-to-edit sources: block instead of the tree."
)
@click.option("--id", "source_id", default="plc", show_default=True, help="The source id in --config output.")
@click.option(
    "--plant",
    "plant_path",
    default=None,
    type=click.Path(dir_okay=False, path_type=Path),
    help="With --config: keep the tags that map to this plant file's machines and signals; "
    "comment out the others with the reason.",
)
@click.option(
    "--state-dir",
    default="plantstream-data",
    show_default=True,
    type=click.Path(path_type=Path),
    help="Where the application certificate is kept (pki/browse).",
)
@click.option("--include-server", is_flag=True, help="Also walk the standard Server object.")
def browse_command(
    endpoint: str,
    depth: int,
    mode: str,
    policy: str,
    pin: str | None,
    trusted_dir: str | None,
    as_config: bool,
    source_id: str,
    plant_path: Path | None,
    state_dir: Path,
    include_server: bool,
) -> None:
    """Walk an OPC UA server's address space (node ids in nsu= form, data types, access)."""
    import logging

    from pydantic import ValidationError

    from collectors.opcua_security import UntrustedServer
    from runtimes.browse import browse, draft_tags, source_block
    from runtimes.logs import setup_logging

    if plant_path is not None and not as_config:
        raise click.UsageError("--plant goes with --config (it decides which drafted tags are kept)")
    plant = _plant_to_map_onto(plant_path) if plant_path is not None else None

    setup_logging(logging.WARNING)
    try:
        security = OpcUaSecurity.model_validate(
            {
                "mode": mode,
                "policy": policy,
                "allow_insecure": mode == "None",
                "server_certificate_sha256": pin,
                "trusted_certificates_dir": trusted_dir,
            }
        )
    except ValidationError as exc:
        _err.print(f"[red]error[/red] {exc.errors()[0]['msg']}")
        sys.exit(2)
    try:
        nodes = asyncio.run(
            browse(
                endpoint,
                depth=depth,
                security=security,
                pki=state_dir / "pki" / "browse",
                include_server=include_server,
            )
        )
    except (OSError, TimeoutError, UntrustedServer) as exc:
        _err.print(f"[red]error[/red] {endpoint}: {exc}")
        sys.exit(1)
    except Exception as exc:  # asyncua's own errors: one clear line, not a traceback
        _err.print(f"[red]error[/red] {endpoint}: {type(exc).__name__}: {exc}")
        sys.exit(1)
    if as_config:
        click.echo(source_block(nodes, endpoint, source_id, security, plant), nl=False)
        if plant is None:
            _err.print("machine and signal are the browse names; --plant FILE keeps only tags that map")
        else:
            unmapped = sum(tag.reason is not None for tag in draft_tags(nodes, plant))
            _err.print(f"{unmapped} tag(s) commented out: they map to no machine and signal of {plant_path}")
        return
    console = Console(highlight=False)
    for node in nodes:
        detail = f" [dim]{node.data_type} {node.access or ''}[/dim]" if node.node_class == "Variable" else ""
        console.print(
            f"{'  ' * (node.depth - 1)}{node.path[-1]}  [cyan]{node.node_id}[/cyan]{detail}", soft_wrap=True
        )
    _err.print(f"{len(nodes)} node(s) below Objects, {depth} level(s) deep")


def _plant_to_map_onto(plant_path: Path) -> PlantModel:
    """The plant model of ``browse --plant``; its own source mapping may still be wrong."""
    from plantstream.plant import load_plant

    try:
        return load_plant(plant_path).model
    except PlantError as exc:
        if exc.plant is not None:
            return exc.plant.model
        for issue in exc.issues:
            _err.print(f"[red]error[/red] {issue}", soft_wrap=True)
        _err.print(f"{plant_path}: {len(exc.issues)} problem(s); nothing was browsed")
        sys.exit(2)


@main.command(name="simulate")
@click.option(
    "-c",
    "--config",
    "plant_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Simulate the machines of this plant file (default: examples/demo-line.yaml).",
)
@click.option("--machines", type=int, default=None, help="Simulate N generic machines instead.")
@click.option("--host", default="127.0.0.1", show_default=True, help="0.0.0.0 in a container.")
@click.option("--port", default=4840, show_default=True)
@click.option("--seed", default=1, show_default=True)
@click.option("--speed", default=1.0, show_default=True, help="Simulated seconds per second.")
@click.option("--start", default=None, help="Simulated start, ISO 8601 with a zone (default: now).")
@click.option("--tags", default=0, show_default=True, help="Extra analog load tags.")
@click.option("--rate", default=1.0, show_default=True, help="Updates per second of the load tags.")
@click.option("--mqtt", default=None, help="Also publish the meters to this broker (mqtt://host:port).")
@click.option("--duration", type=float, default=None, help="Stop after this many seconds.")
@click.option(
    "--history",
    default=3_600,
    show_default=True,
    help="Values each machine tag keeps in the server's history (HistoryRead); 0: none.",
)
@click.option(
    "--truth",
    "truth_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the ground truth (what was produced) here as JSON at the end: after --duration, "
    "Ctrl-C or SIGTERM.",
)
def simulate_command(
    plant_path: Path | None,
    machines: int | None,
    host: str,
    port: int,
    seed: int,
    speed: float,
    start: str | None,
    tags: int,
    rate: float,
    mqtt: str | None,
    duration: float | None,
    history: int,
    truth_path: Path | None,
) -> None:
    """Run the demonstration line as an OPC UA server (and an MQTT meter publisher)."""
    import logging

    from runtimes.logs import setup_logging
    from runtimes.simulator import SimulatorOptions, run

    setup_logging(logging.WARNING)
    try:
        moment = datetime.fromisoformat(start) if start else None
        if moment is not None and moment.tzinfo is None:
            raise ValueError("--start needs a time zone, e.g. 2026-03-02T08:00:00+07:00")
        options = SimulatorOptions(
            plant=plant_path,
            machines=machines,
            host=host,
            port=port,
            seed=seed,
            speed=speed,
            start=moment,
            tags=tags,
            rate=rate,
            mqtt=mqtt,
            duration=duration,
            history=history,
        )
    except ValueError as exc:
        _err.print(f"[red]error[/red] {exc}")
        sys.exit(2)
    if truth_path is not None and not truth_path.parent.is_dir():
        _err.print(f"[red]error[/red] --truth {truth_path}: the folder {truth_path.parent} does not exist")
        sys.exit(2)
    _err.print(
        f"simulating on opc.tcp://{host}:{port}/ (namespace urn:plantstream:simulator), speed {speed:g}x"
    )

    async def until_stopped() -> dict[str, Any]:
        # Ctrl-C and SIGTERM end the run as its duration does, so the truth is written either way.
        return await run(options, stop=_stop_on_signals())

    try:
        truth = asyncio.run(until_stopped())
    except PlantError as exc:
        for issue in exc.issues:
            _err.print(f"[red]error[/red] {issue}", soft_wrap=True)
        sys.exit(2)
    except OSError as exc:
        _err.print(f"[red]error[/red] cannot serve on {host}:{port}: {exc.strerror or exc}")
        sys.exit(1)
    if truth_path is not None:
        from runtimes.atomic_file import written_at_end

        try:
            with written_at_end(truth_path) as handle:
                handle.write(json.dumps(truth, indent=2, default=str) + "\n")
        except OSError as exc:
            _err.print(f"[red]error[/red] {exc.filename}: {exc.strerror}")
            sys.exit(1)
        _err.print(f"ground truth written to {truth_path}")


def _stop_on_signals() -> asyncio.Event:
    """An event that SIGINT or SIGTERM sets (call inside the running loop)."""
    import signal

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def _until_signalled(run: Callable[[asyncio.Event], Awaitable[object]]) -> None:
    """Run ``run(stop)`` until it returns; SIGINT or SIGTERM set ``stop``."""
    await run(_stop_on_signals())


STATUS_OPTION = click.option(
    "--status-every",
    default=10.0,
    show_default=True,
    metavar="SECONDS",
    help="Without a live table: log a one-line status this often (readings, windows closed, "
    "late readings, dead letters, each line's OEE this shift); 0: never.",
)


@main.command(name="run")
@PLANT_OPTION
@click.option(
    "--state-dir",
    default="plantstream-data",
    show_default=True,
    type=click.Path(path_type=Path),
    help="Checkpoints, points and dead letters.",
)
@click.option("--stdout", "to_stdout", is_flag=True, help="Also print every point as a JSON line.")
@click.option(
    "--http-port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Loopback port of /healthz, /metrics, /stream [default: the plant file's http.port, else 8765].",
)
@click.option(
    "--dead-letter-max-mb",
    type=click.IntRange(min=1),
    default=256,
    show_default=True,
    help="Bound of <state-dir>/deadletter/ in MiB; the oldest letters make room (drop_oldest).",
)
@STATUS_OPTION
def run_command(
    plant_path: Path,
    state_dir: Path,
    to_stdout: bool,
    http_port: int | None,
    dead_letter_max_mb: int,
    status_every: float,
) -> None:
    """Run the embedded pipeline (collectors, calculators, file sink) until SIGINT or SIGTERM."""
    import logging

    from runtimes.embedded import EmbeddedPipeline
    from runtimes.http import PortUnavailable, check_port
    from runtimes.logs import setup_logging

    plant, spec = _load(plant_path)
    _hold_state_dir(state_dir)
    port = plant.model.http.port if http_port is None else http_port
    try:
        check_port(port)
    except PortUnavailable as exc:
        _port_unavailable(exc, plant_setting=True)
    setup_logging(logging.INFO, timestamps=True)
    from plantstream.plant.warnings import plant_warnings

    for warning in plant_warnings(plant):
        logging.getLogger("plantstream.plant").warning("%s", warning)

    def echo(points: list[Point]) -> None:
        for point in points:
            sys.stdout.write(point.to_json() + "\n")
        sys.stdout.flush()

    from sinks.influx import SinkConfigError

    try:
        pipeline = EmbeddedPipeline(
            plant,
            spec,
            state_dir,
            on_points=echo if to_stdout else None,
            http_port=port,
            dead_letter_max_bytes=dead_letter_max_mb * 1024 * 1024,
            status_every_s=status_every or None,
        )
    except SinkConfigError as exc:
        _err.print(f"[red]error[/red] {exc}; nothing was started")
        sys.exit(2)

    try:
        asyncio.run(_until_signalled(pipeline.run))
    except PortUnavailable as exc:
        _port_unavailable(exc, plant_setting=True)
    stats = pipeline.stats
    _err.print(
        f"stopped: {stats.readings} readings, {stats.points} points in {state_dir / 'points'}, "
        f"{stats.dead_letters} dead letters, {stats.checkpoints} checkpoints"
    )
    for sink in pipeline.sinks:
        waiting = sink.outbox.lines
        _err.print(
            f"sink {sink.id}: {sink.health.written} line(s) delivered"
            + (f"; {waiting} wait in {sink.outbox.path} for the next start" if waiting else "")
        )


@main.command(name="demo")
@click.option("--duration", type=float, default=None, help="Stop by itself after this many seconds.")
@click.option("--no-ui", "no_ui", is_flag=True, help="Logs only, no live table.")
@click.option("--speed", default=60.0, show_default=True, help="Simulated seconds per second.")
@click.option(
    "--state-dir", default="plantstream-data/demo", show_default=True, type=click.Path(path_type=Path)
)
@click.option("--seed", default=1, show_default=True)
@click.option(
    "--http-port",
    type=click.IntRange(0, 65535),
    default=8765,
    show_default=True,
    help="Loopback port of /healthz, /metrics, /stream.",
)
@STATUS_OPTION
def demo_command(
    duration: float | None,
    no_ui: bool,
    speed: float,
    state_dir: Path,
    seed: int,
    http_port: int,
    status_every: float,
) -> None:
    """The simulator, the embedded pipeline on examples/demo-line.yaml, and a live view."""
    import logging
    from contextlib import nullcontext

    from plantstream.plant import load_plant
    from runtimes.embedded import EmbeddedPipeline
    from runtimes.http import PortUnavailable, check_port
    from runtimes.live import LiveView, shown_live
    from runtimes.logs import setup_logging
    from runtimes.simulator import DEMO_PLANT, SimulatorOptions, SimulatorServer
    from streams.config import build_spec

    console = Console()
    # Off a terminal the table is printed once at the end: meanwhile, the log says how it goes.
    live_table = not no_ui and console.is_terminal
    setup_logging(logging.ERROR if live_table else logging.INFO)

    async def main_task() -> LiveView:
        stop = _stop_on_signals()
        start, resume = _demo_start(state_dir, (DEMO_WATCH_S if duration is None else duration) * speed)
        _err.print(f"simulated time starts at {start.isoformat()} (x{speed:g})")
        options = SimulatorOptions(
            plant=DEMO_PLANT, port=0, speed=speed, seed=seed, start=start, resume=resume
        )
        async with SimulatorServer(options) as sim:
            plant = load_plant(DEMO_PLANT, environ={**os.environ, "OPCUA_ENDPOINT": sim.endpoint})
            spec = build_spec(plant.model)
            view = LiveView(spec, title="plantstream demo: the demonstration line")
            pipeline = EmbeddedPipeline(
                plant,
                spec,
                state_dir,
                on_points=view.on_points,
                on_reading=view.on_reading,
                http_port=http_port,
                on_shift=view.on_shift,
                # The live table shows the same; without it, a line now and then says how it goes.
                status_every_s=None if live_table else (status_every or None),
                # Simulated event times run `speed` times as fast as the wall clock: a reading is
                # ahead of its receipt only if ahead of the simulated clock when it was received.
                source_clock=lambda received_us: _simulated_us(
                    sim.simulated_now(), speed, received_us, time.time_ns() // 1000
                ),
            )
            view.health = pipeline.health_line
            if duration is not None:
                asyncio.get_running_loop().call_later(duration, stop.set)
            async with nullcontext() if no_ui else shown_live(view, console):
                await pipeline.run(stop)
            _err.print(
                f"points written to {state_dir / 'points'}; {pipeline.stats.readings} readings processed"
            )
            return view

    _hold_state_dir(state_dir)
    try:
        check_port(http_port)  # before the simulator starts; the endpoint's own bind still decides
        view = asyncio.run(main_task())
    except PortUnavailable as exc:
        _port_unavailable(exc, plant_setting=False)
    for line in view.shift_summary():
        _err.print(line)


def _simulated_us(simulated_now: datetime, speed: float, wall_us: int, wall_now_us: int) -> int:
    """The simulated instant (µs) of the wall-clock instant ``wall_us``.

    ``simulated_now`` is the simulated instant of the wall-clock instant ``wall_now_us``; the
    simulated clock runs ``speed`` times as fast.
    """
    return (simulated_now - EPOCH) // timedelta(microseconds=1) - round(speed * (wall_now_us - wall_us))


DEMO_WATCH_S = 60.0
"""Wall-clock seconds of production a demo without ``--duration`` is meant to show at least."""


def _demo_start(state_dir: Path, watch_s: float = 0.0) -> tuple[datetime, dict[str, dict[str, float]]]:
    """Where the demo line's simulated clock starts, and the counter values its PLCs continue from.

    The clock must show a running shift, whenever the demo runs. A demo run after an earlier one
    continues from the newest time in the state directory's checkpoint (earlier times would be
    refused as too late), and its simulated PLCs continue their counters and meters from the
    values the checkpoint holds, as real PLCs keep theirs while the pipeline is stopped (a fresh
    seeded value would read as a reset and be counted whole). The first run starts now. When the
    start is outside the demo line's shifts (nights, Sundays, holidays), or in a shift that ends
    before ``watch_s`` simulated seconds have passed, the clock jumps to the next shift's start, so
    the demo always has production to show.
    """
    from plantstream.plant import load_plant
    from runtimes.embedded import CHECKPOINT
    from runtimes.simulator import DEMO_PLANT
    from streams.calendar import US
    from streams.config import build_spec

    plant = load_plant(DEMO_PLANT, environ={"OPCUA_ENDPOINT": "opc.tcp://127.0.0.1:4840/"})
    spec = build_spec(plant.model)
    start = datetime.now(tz=UTC).replace(microsecond=0)
    resume: dict[str, dict[str, float]] = {}
    checkpoint = state_dir / CHECKPOINT
    if checkpoint.exists():
        # A damaged checkpoint: the pipeline says what is wrong with it when it restores.
        try:
            saved = json.loads(checkpoint.read_text(encoding="utf-8"))
            newest = Engine.newest_event(saved)
        except (OSError, ValueError, AttributeError):
            saved, newest = None, None
        with suppress(KeyError, TypeError, ValueError, IndexError, AttributeError):
            resume = Engine(spec).cumulative_values(saved) if saved is not None else {}
        if newest is not None:
            start = max(start, datetime.fromtimestamp(newest // US + 1, tz=UTC))
    schedule = next(iter(spec.machines.values())).schedule
    shift_time = _start_in_production(schedule, int(start.timestamp()) * US, round(watch_s * US))
    return (start if shift_time is None else datetime.fromtimestamp(shift_time // US, tz=UTC)), resume


def _start_in_production(schedule: Schedule, at: int, watch_us: int) -> int | None:
    """The first instant at or after ``at`` (µs) in a shift with ``watch_us`` of it left.

    A shift shorter than ``watch_us`` needs to be left whole. ``None`` when no shift starts
    within two weeks. (Started ten minutes before the end of shift B at 60x, the demo would
    show the night after ten seconds.)
    """
    begin = schedule.next_shift_time(at)
    while begin is not None:
        shift = schedule.shift_at(begin)
        if shift is None or shift.end - begin >= min(watch_us, shift.end - shift.start):
            return begin
        begin = schedule.next_shift_time(shift.end)
    return None


def _kafka_settings(plant: LoadedPlant, plant_path: Path) -> Kafka:
    settings = plant.model.kafka
    if settings is None:
        _err.print(
            f"[red]error[/red] {plant_path}: no kafka: section; the kafka roles need one (docs/kafka.md)"
        )
        sys.exit(2)
    return settings


def _role_logging() -> None:
    import logging

    from runtimes.logs import setup_logging

    setup_logging(logging.INFO, timestamps=True)
    logging.getLogger("aiokafka").setLevel(logging.WARNING)


def _kafka_unreachable(settings: Kafka, exc: Exception) -> None:
    _err.print(f"[red]error[/red] Kafka at {settings.bootstrap}: {exc}")
    sys.exit(1)


@main.command(name="collect")
@PLANT_OPTION
@click.option(
    "--state-dir",
    default="plantstream-data",
    show_default=True,
    type=click.Path(path_type=Path),
    help="Where collectors keep their own state (OPC UA certificates).",
)
@click.option(
    "--from-file",
    "from_file",
    default=None,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Produce the readings of this JSON-lines file instead of running the collectors, then exit.",
)
def collect_command(plant_path: Path, state_dir: Path, from_file: Path | None) -> None:
    """Kafka role: the plant's collectors produce readings to the readings topic, keyed by machine."""
    from aiokafka.errors import KafkaError

    from runtimes.kafka.collect import Collector, file_readings

    plant, spec = _load(plant_path)
    settings = _kafka_settings(plant, plant_path)
    _role_logging()
    collector = Collector(plant, spec, settings, state_dir)

    async def main_task() -> None:
        stop = _stop_on_signals()
        if from_file is None:
            await collector.run(stop)
            return
        with from_file.open(encoding="utf-8") as lines:
            await collector.run(stop, file_readings(collector, from_file, lines))

    try:
        asyncio.run(main_task())
    except (KafkaError, OSError) as exc:
        _kafka_unreachable(settings, exc)
    stats = collector.stats
    _err.print(
        f"stopped: {stats.readings} readings to {settings.topics.readings}, {stats.dead_letters} dead letters"
    )


@main.command(name="process")
@PLANT_OPTION
@click.option(
    "--save-every",
    "save_every_s",
    type=click.FloatRange(min=0.1),
    default=5.0,
    show_default=True,
    help="seconds between save points (machine states written, offsets committed): "
    "at most what a restarted worker repeats",
)
def process_command(plant_path: Path, save_every_s: float) -> None:
    """Kafka role: the calculators in a consumer group, readings topic in, points topic out."""
    from aiokafka.errors import KafkaError

    from runtimes.kafka.process import ProcessRole

    plant, spec = _load(plant_path)
    settings = _kafka_settings(plant, plant_path)
    _role_logging()
    role = ProcessRole(settings, spec, save_interval_s=save_every_s)

    try:
        asyncio.run(_until_signalled(role.run))
    except (KafkaError, OSError) as exc:
        _kafka_unreachable(settings, exc)
    stats = role.stats
    _err.print(
        f"stopped: {stats.records} readings, {stats.points} points, {stats.dead_letters} dead letters, "
        f"{stats.skipped} redelivered readings skipped; roll-ups: {stats.windows} machine window "
        f"records, {stats.rollup_points} points, {stats.windows_skipped} redelivered records skipped, "
        f"{stats.stale_windows} results for forgotten windows dropped"
    )


@main.command(name="sink")
@PLANT_OPTION
@click.option(
    "--state-dir",
    default="plantstream-data",
    show_default=True,
    type=click.Path(path_type=Path),
    help="The file sink writes points/ and deadletter/ here.",
)
def sink_command(plant_path: Path, state_dir: Path) -> None:
    """Kafka role: points to the sinks; offsets are committed only after every sink's write."""
    from aiokafka.errors import KafkaError

    from runtimes.kafka.sink import FileSink, OutboxSink, PointSink, SinkRole
    from runtimes.sinks import build_sinks
    from sinks.influx import SinkConfigError

    plant, spec = _load(plant_path)
    settings = _kafka_settings(plant, plant_path)
    _hold_state_dir(state_dir)
    _role_logging()
    files = FileSink(state_dir)

    async def main_task() -> None:
        stop = _stop_on_signals()
        # The plant file's sinks (InfluxDB) through their outboxes, beside the file sink.
        sinks: list[PointSink] = [files]
        sinks += [OutboxSink(s) for s in build_sinks(plant, state_dir, files.files.dead_letter)]
        role = SinkRole(settings, sinks, spec=spec)
        roles.append(role)
        await role.run(stop)

    roles: list[SinkRole] = []
    try:
        asyncio.run(main_task())
    except SinkConfigError as exc:
        _err.print(f"[red]error[/red] {exc}")
        sys.exit(2)
    except (KafkaError, OSError) as exc:
        _kafka_unreachable(settings, exc)
    for role in roles:
        _err.print(
            f"stopped: {role.stats.points} points in {state_dir / 'points'} "
            f"({role.stats.raw_points} of them raw readings), {role.stats.dead_letters} dead letters"
        )


@main.command(name="reason")
@click.argument("machine")
@click.argument("at")
@click.argument("reason")
@click.option(
    "--url",
    default="http://127.0.0.1:8765/reason",
    show_default=True,
    help="The pipeline's /reason (`run` and `demo` serve it on their --http-port).",
)
@click.option(
    "--kafka",
    "to_kafka",
    is_flag=True,
    help="Send it to the kafka runtime's readings topic instead (needs -c with a kafka section); "
    "checked against the plant file only.",
)
@click.option(
    "-c",
    "--config",
    "plant_path",
    default=None,
    type=click.Path(dir_okay=False, path_type=Path),
    help="With --kafka: the plant file the kafka roles run.",
)
def reason_command(
    machine: str, at: str, reason: str, url: str, to_kafka: bool, plant_path: Path | None
) -> None:
    """Give MACHINE's stop at AT the REASON, in the running pipeline.

    AT is an ISO 8601 time with Z or an offset, any time inside the stop; REASON a code or a
    reason's name from the plant's reason tree. The running pipeline writes the stop again with
    the reason and revision + 1. Exit codes: 0 applied; 2 refused (the pipeline says why); 1 no
    pipeline at --url (or, with --kafka, no broker).
    """
    from runtimes.operator import post_reason
    from runtimes.tail import NotAPipeline

    if to_kafka:
        _reason_to_kafka(machine, at, reason, plant_path)
        return

    try:
        status, answer = post_reason(url, machine, at, reason)
    except NotAPipeline as exc:
        _err.print(f"[red]error[/red] {escape(url)} is not a plantstream pipeline: {escape(str(exc))}")
        sys.exit(1)
    except OSError as exc:
        _err.print(
            f"[red]error[/red] no pipeline at {escape(url)}: {escape(str(exc))}; "
            "is `plantstream run` or `demo` running, and is --url its port?"
        )
        sys.exit(1)
    if status != 202:
        _err.print(
            f"[red]refused[/red] ({escape(str(answer.get('error')))}) {escape(str(answer.get('message')))}"
        )
        sys.exit(2)
    click.echo(
        f"{answer['machine']}: the stop at {answer['stop_start']} gets {answer['reason']} "
        f"({answer['reason_group']}, code {answer['code']}); the pipeline writes it again with revision + 1"
    )


def _reason_to_kafka(machine: str, at: str, reason: str, plant_path: Path | None) -> None:
    import logging

    from aiokafka.errors import KafkaError

    from runtimes.operator import operator_reading, send_to_kafka
    from streams.operator_reason import ReasonRefused

    if plant_path is None:
        raise click.UsageError("--kafka needs -c PLANT: the reason tree and the kafka section are in it")
    plant, spec = _load(plant_path)
    settings = _kafka_settings(plant, plant_path)
    try:
        reading = operator_reading(spec, machine, at, reason)
    except ReasonRefused as exc:
        _err.print(f"[red]refused[/red] ({exc.reason}) {escape(str(exc))}")
        sys.exit(2)
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # the one line below says it
    try:
        asyncio.run(send_to_kafka(settings, reading))
    except (KafkaError, OSError) as exc:
        _kafka_unreachable(settings, exc)
    click.echo(
        f"{machine}: {reading.value} sent for the stop at {at} to {settings.topics.readings}; `process` "
        "writes the stop again with revision + 1 if the machine was stopped then (nothing checked that)"
    )


@main.command(name="tail")
@click.option(
    "--url", default="http://127.0.0.1:8765/stream", show_default=True, help="The pipeline's /stream."
)
@click.option("--site", default=None)
@click.option("--line", default=None)
@click.option("--machine", default=None)
@click.option("--signal", default=None)
@click.option(
    "--measurement",
    default=None,
    help="Points of this measurement only (oee, energy, carbon, cbam, reading, health, "
    "shift_so_far: each machine's current shift, every second).",
)
@click.option("--json", "as_json", is_flag=True, help="JSON lines, for pipes.")
@click.option(
    "--table", "as_table", is_flag=True, help="A live table, one row per machine, updated in place."
)
@click.option(
    "-c",
    "--config",
    "plant_path",
    default=None,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The plant file the pipeline runs: --table then shows every machine, its state and kW, "
    "and --site / --line select readings too.",
)
@click.option(
    "--count", type=int, default=None, help="Stop after this many records (lines, or events in --table)."
)
@click.option(
    "--kafka",
    "kafka_bootstrap",
    default=None,
    metavar="HOST:PORT",
    help="Follow the kafka runtime's topics on this broker instead of --url.",
)
@click.option(
    "--topics",
    default="plantstream.readings.v1,plantstream.points.v1",
    show_default=True,
    help="With --kafka: the topics to follow, comma-separated.",
)
@click.option("--from-beginning", is_flag=True, help="With --kafka: from the topics' start, not their end.")
def tail_command(
    url: str,
    site: str | None,
    line: str | None,
    machine: str | None,
    signal: str | None,
    measurement: str | None,
    as_json: bool,
    as_table: bool,
    plant_path: Path | None,
    count: int | None,
    kafka_bootstrap: str | None,
    topics: str,
    from_beginning: bool,
) -> None:
    """Follow the running pipeline's readings and points, filtered."""
    from contextlib import nullcontext

    from runtimes.live import LiveView, only_machines, shown_live
    from runtimes.tail import Filters, NotAPipeline, follow, printer

    if as_table and as_json:
        raise click.UsageError("--table and --json exclude each other: a table for people, JSON for pipes")
    spec = _load(plant_path)[1] if plant_path is not None else None
    places = {mid: (m.site, m.line) for mid, m in spec.machines.items()} if spec is not None else {}
    filters = Filters(
        site=site,
        line=line,
        machine=machine,
        signal=signal,
        measurement=measurement,
        places=places,
        shift_so_far=as_table,  # the table's shift columns are these records
    )
    console = Console(highlight=False)
    show = printer(as_json=as_json, console=console)
    view: LiveView | None = None
    if as_table:
        if spec is not None:
            spec = only_machines(spec, site=site, line=line, machine=machine)
        view = table = LiveView(spec, title=f"plantstream tail: {kafka_bootstrap or url}")

        def fold(record: dict[str, Any], text: str) -> None:
            table.on_record(record)

        show = fold

    async def shown(source: Awaitable[None]) -> None:
        async with shown_live(view, console) if view is not None else nullcontext():
            await source

    if kafka_bootstrap is not None:
        import logging

        from runtimes.kafka.tail import follow_topics

        # The one-line error below says it; the client's own connection log would repeat it.
        logging.getLogger("aiokafka").setLevel(logging.CRITICAL)

        try:
            asyncio.run(
                shown(
                    follow_topics(
                        kafka_bootstrap,
                        [t.strip() for t in topics.split(",") if t.strip()],
                        filters,
                        count=count,
                        show=show,
                        from_beginning=from_beginning,
                    )
                )
            )
        except ConnectionError as exc:
            _err.print(
                f"[red]error[/red] nothing to follow: {exc}; is `plantstream collect` or `process` running?"
            )
            sys.exit(1)
        except KeyboardInterrupt:
            return
        return
    try:
        # The table appears only once the answer is known to be a pipeline's.
        display = (lambda: shown_live(table, console)) if as_table else None
        asyncio.run(follow(url, filters, count=count, show=show, around=display))
    except NotAPipeline as exc:
        _err.print(
            f"[red]error[/red] {escape(url)} is not a plantstream pipeline: {escape(str(exc))}; "
            "is --url right? (`run` serves on port 8765 unless --http-port or the plant file's "
            "http.port says otherwise)",
            soft_wrap=True,
        )
        sys.exit(2)
    except (OSError, ConnectionError) as exc:
        _err.print(
            f"[red]error[/red] nothing to follow at {url}: {exc}; is `plantstream run` or `demo` running?"
        )
        sys.exit(1)
    except KeyboardInterrupt:
        return


@main.group(name="report")
def report_group() -> None:
    """Reports built from the ledgers in a state directory."""


@report_group.command(name="cbam")
@PLANT_OPTION
@click.option("--year", type=int, required=True, help="The reporting year (a calendar year, 2026 or later).")
@click.option(
    "--state-dir",
    default="plantstream-data",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the CBAM ledger and the operator's signing key are kept.",
)
@click.option(
    "--out",
    "out_dir",
    default=None,
    type=click.Path(file_okay=False, path_type=Path),
    help="The report folder (default: <state-dir>/reports/cbam-<installation>-<year>).",
)
@click.option(
    "--min-completeness",
    type=click.FloatRange(0, 1),
    default=None,
    help="Share of each process's operating hours that must have data (default: the plant file's "
    "cbam.min_data_completeness, 0.95 unless set).",
)
@click.option(
    "--allow-partial",
    is_flag=True,
    help="Sign a summary from data under the completeness threshold; the summary says it is partial.",
)
def report_cbam_command(
    plant_path: Path,
    year: int,
    state_dir: Path,
    out_dir: Path | None,
    min_completeness: float | None,
    allow_partial: bool,
) -> None:
    """The CBAM summary (json, xlsx), operator report, manifest and signature of one year.

    Refused when a process's data covers less of its operating hours than the threshold, unless
    --allow-partial (docs/cbam.md).
    """
    from zoneinfo import ZoneInfo

    from runtimes.cbam import IncompleteData, describe_completeness, write_report
    from runtimes.progress import TerminalProgress
    from sinks.cbam_store import LEDGER_FILE
    from streams.cbam import require_definitive_year
    from streams.cbam_ledger import build_cbam_spec

    plant, _ = _load(plant_path)
    cbam_spec = build_cbam_spec(plant.model)
    if cbam_spec is None:
        _err.print(f"[red]error[/red] {plant_path}: no cbam section; nothing to report")
        sys.exit(2)
    try:
        require_definitive_year(year)
    except ValueError as exc:
        _err.print(f"[red]error[/red] report cbam: {exc}", soft_wrap=True)
        sys.exit(2)
    if not (state_dir / LEDGER_FILE).exists():
        _err.print(
            f"[red]error[/red] no CBAM ledger in {state_dir} ({LEDGER_FILE}); run or replay with it first"
        )
        sys.exit(2)
    folder = out_dir or state_dir / "reports" / f"cbam-{cbam_spec.installation.id}-{year}"
    try:
        with TerminalProgress(_err, f"report cbam {year}") as progress:

            def step(doing: str) -> None:
                progress.update(description=f"report cbam {year}: {doing}")

            result = write_report(
                plant.model,
                cbam_spec,
                state_dir,
                year,
                folder,
                on_step=step,
                min_completeness=min_completeness,
                allow_partial=allow_partial,
            )
    except IncompleteData as exc:
        _err.print(f"[red]error[/red] report cbam {exc}", soft_wrap=True)
        sys.exit(1)
    except (OSError, ValueError) as exc:
        # An unreadable key or ledger, a folder that cannot be written: one line, nothing half-signed.
        _err.print(f"[red]error[/red] report cbam: {exc}")
        sys.exit(1)
    console = _table_console(stderr=False)
    table = Table(title=f"CBAM {year}: {cbam_spec.installation.name}", show_edge=False, pad_edge=False)
    for column in ("good", "CN", "SEE direct", "SEE indirect", "SEE total", "SEE counted", "defaults"):
        table.add_column(column)
    for good in result.summary.goods:
        share = good.default_share_cbam
        table.add_row(
            good.name,
            good.cn_code,
            *("-" if v is None else f"{v:.3f}" for v in (good.see_direct, good.see_indirect, good.see_total)),
            ("-" if good.see_cbam is None else f"{good.see_cbam:.3f}")
            + (" (direct only)" if good.direct_emissions_only else ""),
            "-" if share is None else f"{share:.1%}",
        )
    console.print(table)
    for good in result.summary.goods:
        by_reason: dict[str, list[str]] = {}
        for name, why in good.null_reasons.items():
            by_reason.setdefault(why, []).append(name)
        for why, names in by_reason.items():
            _err.print(
                f"[yellow]warning[/yellow] {good.name} ({good.cn_code}): {', '.join(names)} empty: {why}",
                soft_wrap=True,
            )
    for figures in result.periods[0].goods.values():
        if figures.transfer_excess:
            _err.print(
                f"[yellow]warning[/yellow] internal transfer: {figures.transfer_excess}", soft_wrap=True
            )
    zone = ZoneInfo(cbam_spec.timezone)
    for process in result.completeness.values():
        _err.print(f"data: {describe_completeness(process, zone)}", soft_wrap=True)
    statement = result.summary.data_completeness
    if statement.partial:
        _err.print(f"[yellow]warning[/yellow] {statement.statement}", soft_wrap=True)
    _err.print(
        f"report written to {folder}: summary.json, summary.xlsx and manifest.json, summary.sig, "
        "operator-public-key.pem go to importers; operator-report.json and evidence/ to the verifier only"
    )


@main.command(name="verify")
@click.argument("folder", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option(
    "--public-key",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="The operator's public key obtained independently (default: the one in the folder).",
)
@click.option(
    "--require-evidence", is_flag=True, help="A verifier's check: every evidence set must be present."
)
def verify_command(folder: Path, public_key: Path | None, require_evidence: bool) -> None:
    """Check a CBAM report folder: signature, summary and manifest, evidence digests (exit 0 / 1)."""
    from runtimes.cbam import verify_report

    result = verify_report(folder, public_key, require_evidence)
    for name in result.checked:
        click.echo(f"ok       {name}")
    for note in result.notes:
        click.echo(f"note     {note}")
    for figure in result.figures:
        click.echo(f"figure   {figure}")
    for warning in result.warnings:
        click.echo(f"WARNING  {warning}")
    for problem in result.problems:
        _err.print(f"[red]mismatch[/red] {problem}", soft_wrap=True)
    if not result.ok:
        _err.print(f"{folder}: {len(result.problems)} problem(s); do not rely on this report")
        sys.exit(1)
    click.echo(f"{folder}: signature and digests verified")
