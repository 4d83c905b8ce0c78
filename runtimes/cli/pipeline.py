"""``plantstream browse``, ``simulate``, ``run`` and ``demo``: the live embedded pipeline and its helpers."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console

from plantstream.plant import PlantError
from plantstream.plant.schema import OpcUaSecurity, PlantModel
from plantstream.records import EPOCH, Point
from streams.calendar import Schedule
from streams.engine import Engine

if TYPE_CHECKING:
    pass

from runtimes.cli.group import (
    PLANT_OPTION,
    err,
    hold_state_dir,
    load_or_exit,
    main,
    port_unavailable,
    stop_on_signals,
    until_signalled,
)


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
        err.print(f"[red]error[/red] {exc.errors()[0]['msg']}")
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
        err.print(f"[red]error[/red] {endpoint}: {exc}")
        sys.exit(1)
    except Exception as exc:  # asyncua's own errors: one clear line, not a traceback
        err.print(f"[red]error[/red] {endpoint}: {type(exc).__name__}: {exc}")
        sys.exit(1)
    if as_config:
        click.echo(source_block(nodes, endpoint, source_id, security, plant), nl=False)
        if plant is None:
            err.print("machine and signal are the browse names; --plant FILE keeps only tags that map")
        else:
            unmapped = sum(tag.reason is not None for tag in draft_tags(nodes, plant))
            err.print(f"{unmapped} tag(s) commented out: they map to no machine and signal of {plant_path}")
        return
    console = Console(highlight=False)
    for node in nodes:
        detail = f" [dim]{node.data_type} {node.access or ''}[/dim]" if node.node_class == "Variable" else ""
        console.print(
            f"{'  ' * (node.depth - 1)}{node.path[-1]}  [cyan]{node.node_id}[/cyan]{detail}", soft_wrap=True
        )
    err.print(f"{len(nodes)} node(s) below Objects, {depth} level(s) deep")


def _plant_to_map_onto(plant_path: Path) -> PlantModel:
    """The plant model of ``browse --plant``; its own source mapping may still be wrong."""
    from plantstream.plant import load_plant

    try:
        return load_plant(plant_path).model
    except PlantError as exc:
        if exc.plant is not None:
            return exc.plant.model
        for issue in exc.issues:
            err.print(f"[red]error[/red] {issue}", soft_wrap=True)
        err.print(f"{plant_path}: {len(exc.issues)} problem(s); nothing was browsed")
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
    "--alarms",
    is_flag=True,
    default=False,
    help="Also raise an OPC UA alarm condition per stop reason code (A&C events; the tags are unchanged).",
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
    alarms: bool,
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
            alarms=alarms,
        )
    except ValueError as exc:
        err.print(f"[red]error[/red] {exc}")
        sys.exit(2)
    if truth_path is not None and not truth_path.parent.is_dir():
        err.print(f"[red]error[/red] --truth {truth_path}: the folder {truth_path.parent} does not exist")
        sys.exit(2)
    err.print(
        f"simulating on opc.tcp://{host}:{port}/ (namespace urn:plantstream:simulator), speed {speed:g}x"
    )

    async def until_stopped() -> dict[str, Any]:
        # Ctrl-C and SIGTERM end the run as its duration does, so the truth is written either way.
        return await run(options, stop=stop_on_signals())

    try:
        truth = asyncio.run(until_stopped())
    except PlantError as exc:
        for issue in exc.issues:
            err.print(f"[red]error[/red] {issue}", soft_wrap=True)
        sys.exit(2)
    except OSError as exc:
        err.print(f"[red]error[/red] cannot serve on {host}:{port}: {exc.strerror or exc}")
        sys.exit(1)
    if truth_path is not None:
        from runtimes.atomic_file import written_at_end

        try:
            with written_at_end(truth_path) as handle:
                handle.write(json.dumps(truth, indent=2, default=str) + "\n")
        except OSError as exc:
            err.print(f"[red]error[/red] {exc.filename}: {exc.strerror}")
            sys.exit(1)
        err.print(f"ground truth written to {truth_path}")


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

    plant, spec = load_or_exit(plant_path)
    hold_state_dir(state_dir)
    port = plant.model.http.port if http_port is None else http_port
    try:
        check_port(port)
    except PortUnavailable as exc:
        port_unavailable(exc, plant_setting=True)
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
        err.print(f"[red]error[/red] {exc}; nothing was started")
        sys.exit(2)

    try:
        asyncio.run(until_signalled(pipeline.run))
    except PortUnavailable as exc:
        port_unavailable(exc, plant_setting=True)
    stats = pipeline.stats
    err.print(
        f"stopped: {stats.readings} readings, {stats.points} points in {state_dir / 'points'}, "
        f"{stats.dead_letters} dead letters, {stats.checkpoints} checkpoints"
    )
    for sink in pipeline.sinks:
        waiting = sink.outbox.lines
        err.print(
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
        stop = stop_on_signals()
        start, resume = _demo_start(state_dir, (DEMO_WATCH_S if duration is None else duration) * speed)
        err.print(f"simulated time starts at {start.isoformat()} (x{speed:g})")
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
            err.print(
                f"points written to {state_dir / 'points'}; {pipeline.stats.readings} readings processed"
            )
            return view

    hold_state_dir(state_dir)
    try:
        check_port(http_port)  # before the simulator starts; the endpoint's own bind still decides
        view = asyncio.run(main_task())
    except PortUnavailable as exc:
        port_unavailable(exc, plant_setting=False)
    for line in view.shift_summary():
        err.print(line)


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
    before ``watch_s`` simulated seconds have passed, the clock jumps to the next shift's start,
    and from a break to its end, so the demo always has production to show.
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
    """The first instant at or after ``at`` (µs) in a shift, out of its breaks, with ``watch_us`` of it left.

    A shift shorter than ``watch_us`` needs to be left whole. ``None`` when no shift starts
    within two weeks. (Started ten minutes before the end of shift B at 60x, the demo would
    show the night after ten seconds; started in the meal break, a short demo would show no
    production at all.)
    """
    begin = schedule.next_shift_time(at)
    while begin is not None:
        shift = schedule.shift_at(begin)
        if shift is None:
            return begin
        for start, end in sorted(shift.breaks):
            if start <= begin < end:
                begin = end  # a break has no production to show: from its end
        if begin < shift.end and shift.end - begin >= min(watch_us, shift.end - shift.start):
            return begin
        begin = schedule.next_shift_time(shift.end)
    return None
