"""The ``plantstream`` command group and what its commands share: the plant option, errors, signals."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import click
from rich.console import Console
from rich.markup import escape

from plantstream import __version__
from plantstream.plant import LoadedPlant, PlantError
from runtimes.plant import load_and_resolve
from streams.config import EngineSpec

if TYPE_CHECKING:
    from runtimes.http import PortUnavailable
    from runtimes.statedir import StateDirLock

__all__ = [
    "PLANT_OPTION",
    "err",
    "hold_state_dir",
    "load_or_exit",
    "main",
    "port_unavailable",
    "stop_on_signals",
    "table_console",
    "until_signalled",
]

err = Console(stderr=True, highlight=False, soft_wrap=True)

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


def hold_state_dir(state_dir: Path) -> None:
    """Lock ``state_dir`` for the rest of the process: one pipeline per state directory (else exit 2)."""
    from runtimes.statedir import StateDirBusy, StateDirLock

    try:
        _held_state_dirs.append(StateDirLock(state_dir))
    except StateDirBusy as exc:
        err.print(
            f"[red]error[/red] {escape(str(exc))}; one pipeline per state directory: "
            "stop that one or choose another --state-dir; nothing was started",
            soft_wrap=True,
        )
        sys.exit(2)
    except OSError as exc:
        err.print(f"[red]error[/red] --state-dir {state_dir}: {exc.strerror or exc}; nothing was started")
        sys.exit(2)


def port_unavailable(exc: PortUnavailable, *, plant_setting: bool) -> NoReturn:
    """One line naming the port and how to choose another; exit 2."""
    choose = "--http-port N" + (" or http: {port: N} in the plant file" if plant_setting else "")
    err.print(
        f"[red]error[/red] port {exc.port} for /healthz, /metrics and /stream: {exc.reason}; "
        f"choose another with {choose}; nothing was started",
        soft_wrap=True,
    )
    sys.exit(2)


def load_or_exit(plant_path: Path) -> tuple[LoadedPlant, EngineSpec]:
    """The plant file, validated and resolved; else every problem on its own line, and exit 2."""
    try:
        return load_and_resolve(plant_path)
    except PlantError as exc:
        for issue in exc.issues:
            err.print(f"[red]error[/red] {issue}", soft_wrap=True)
        listed = f" ({len(exc.issues)} listed)" if exc.omitted else ""
        err.print(f"{plant_path}: {len(exc.issues) + exc.omitted} problem(s){listed}; nothing was started")
        sys.exit(2)


_UNWRAPPED_WIDTH = 10_000
"""Off a terminal, a table is as wide as its rows: a log or a file keeps whole dates, no wrapping."""


def table_console(*, stderr: bool) -> Console:
    """A console for tables: the terminal's width on a terminal, the rows' own width elsewhere."""
    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr, highlight=False, width=None if stream.isatty() else _UNWRAPPED_WIDTH)


def stop_on_signals() -> asyncio.Event:
    """An event that SIGINT or SIGTERM sets (call inside the running loop)."""
    import signal

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def until_signalled(run: Callable[[asyncio.Event], Awaitable[object]]) -> None:
    """Run ``run(stop)`` until it returns; SIGINT or SIGTERM set ``stop``."""
    await run(stop_on_signals())
