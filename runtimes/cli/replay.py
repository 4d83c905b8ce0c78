"""``plantstream replay``: recorded readings through the calculators, to a file or the sinks."""

from __future__ import annotations

import asyncio
import os
import signal
import stat
import sys
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, TextIO

import click
from rich.table import Table

from plantstream.plant import LoadedPlant
from plantstream.records import FieldValue
from runtimes.replay import OverlongLine, ReplayAborted, ReplaySummary, read_lines, replay
from streams.config import EngineSpec
from streams.engine import Engine

if TYPE_CHECKING:
    from runtimes.cbam import CbamLedger
    from runtimes.progress import TerminalProgress

from runtimes.cli.group import (
    PLANT_OPTION,
    err,
    hold_state_dir,
    load_or_exit,
    main,
    table_console,
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
    plant, spec = load_or_exit(plant_path)
    if to_sinks and not plant.model.sinks:
        err.print(f"[red]error[/red] {plant_path}: --to-sinks, but the plant file has no sinks: section")
        sys.exit(2)
    if out_path is None and not to_sinks:
        out_path = "-"
    if to_sinks or state_dir is not None:
        hold_state_dir(state_dir or Path("plantstream-data"))
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
        err.print(
            "[red]interrupted[/red]"
            + (f"; nothing written to {' or '.join(map(str, written))}" if written else "")
            + ("; the points already handed to the sinks stay in their outbox" if to_sinks else "")
        )
        sys.exit(128 + (exc.signum if isinstance(exc, _Terminated) else signal.SIGINT))
    if not quiet and not to_sinks:
        _print_summary(summary, name, f"written to {'stdout' if out_path == '-' else out_path}")
    if not quiet and ledger is not None:
        err.print(f"CBAM ledger updated in {state_dir}")
    if ledger is not None and ledger.years_before_definitive:
        years = ", ".join(map(str, sorted(ledger.years_before_definitive)))
        err.print(
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
            err.print(f"[red]error[/red] {exc.filename}: {exc.strerror}")
            sys.exit(2)
        size = _file_size(source)
        progress = stack.enter_context(
            TerminalProgress(err, f"replay {name}", size, enabled=None if not quiet else False)
        )
        lines = progress.bytes_read(read_lines(source))

        def report(text: str) -> None:
            err.print(f"[yellow]skipped[/yellow] {text}", soft_wrap=True)

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
            err.print(f"[red]error[/red] {exc}", soft_wrap=True)
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
        err.print(
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
        err.print(f"[red]error[/red] {exc}")
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
            err.print(
                f"[red]error[/red] sink {sink.id}: {sink.health.written} line(s) delivered to "
                f"{sink.settings.url}, {left} not delivered within {timeout_s:g} s (last error: "
                f"{sink.health.last_error or 'none'}); they stay in {sink.outbox.path} and go out "
                f"with the next `run` or `replay --to-sinks` with --state-dir {state_dir}"
            )
        rejected = result.dead_letters.get(sink.id, 0)
        if rejected:
            failed = True
            err.print(
                f"[red]error[/red] sink {sink.id}: {rejected} point(s) refused (by the server or as "
                f"unencodable); they are in {state_dir / 'deadletter'} with the reasons"
            )
        if not left and not quiet:
            err.print(f"sink {sink.id}: {sink.health.written} line(s) delivered to {sink.settings.url}")
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
        table_console(stderr=True).print(table)
    reasons = ", ".join(f"{k} {v}" for k, v in sorted(summary.rejected.items()))
    rejected = f"rejected {summary.rejected_total}: {reasons}" if reasons else "rejected none"
    blank = f", {summary.blank} blank" if summary.blank else ""
    engine = summary.engine
    err.print(
        f"{source}: {summary.readings} readings from {summary.lines} lines{blank}; {rejected}; "
        f"late readings corrected {engine.get('late_readings', 0)}, windows re-emitted "
        f"{engine.get('windows_corrected', 0)}; {summary.points} points {destination}"
    )
