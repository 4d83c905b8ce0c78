"""The ``plantstream`` command line. Errors are one clear line each; exit codes are documented.

Exit codes: 0 success; 1 the data was bad and ``--strict`` was given; 2 the plant file or the
command line is invalid.
"""

from __future__ import annotations

import asyncio
import os
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import TextIO

import click
from rich.console import Console
from rich.table import Table

from plantstream import __version__
from plantstream.plant import LoadedPlant, PlantError
from plantstream.plant.schema import Kafka, MqttSource, OpcUaSecurity
from plantstream.records import FieldValue, Point
from runtimes.plant import load_and_resolve
from runtimes.replay import ReplayAborted, ReplaySummary, replay
from streams.config import EngineSpec
from streams.engine import Engine

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


def _load(plant_path: Path) -> tuple[LoadedPlant, EngineSpec]:
    try:
        return load_and_resolve(plant_path)
    except PlantError as exc:
        for issue in exc.issues:
            _err.print(f"[red]error[/red] {issue}", soft_wrap=True)
        _err.print(f"{plant_path}: {len(exc.issues)} problem(s); nothing was started")
        sys.exit(2)


@main.command()
@PLANT_OPTION
def check(plant_path: Path) -> None:
    """Validate a plant file and print a one-screen summary (exit 0 valid, 2 invalid)."""
    plant, spec = _load(plant_path)
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
    p = model.production
    console.print(
        f"production: {p.oee_method.value}, window {p.window_s} s, micro-stops <= {p.micro_stop_max_s:g} s, "
        f"lateness {p.allowed_lateness_s:g} s, corrections up to {p.correction_horizon_s:g} s back"
    )


@main.command(name="replay")
@PLANT_OPTION
@click.option("--readings", "readings_path", required=True, help="Readings as JSON lines; - for stdin.")
@click.option("--out", "out_path", default="-", show_default=True, help="Where the points go; - for stdout.")
@click.option("--strict", is_flag=True, help="Stop at the first bad line (exit 1) instead of skipping it.")
@click.option(
    "--dead-letter", "dead_letter_path", default=None, help="Write refused lines here, with reasons."
)
@click.option("--quiet", "-q", is_flag=True, help="No summary on stderr.")
def replay_command(
    plant_path: Path,
    readings_path: str,
    out_path: str,
    strict: bool,
    dead_letter_path: str | None,
    quiet: bool,
) -> None:
    """Feed recorded readings through the calculators and write every point as JSON lines."""
    _, spec = _load(plant_path)
    engine = Engine(spec, reorder=False)
    with ExitStack() as stack:
        try:
            source: TextIO = (
                sys.stdin
                if readings_path == "-"
                else stack.enter_context(open(readings_path, encoding="utf-8"))
            )
            out: TextIO = (
                sys.stdout if out_path == "-" else stack.enter_context(open(out_path, "w", encoding="utf-8"))
            )
            dead = (
                stack.enter_context(open(dead_letter_path, "w", encoding="utf-8"))
                if dead_letter_path
                else None
            )
        except OSError as exc:
            _err.print(f"[red]error[/red] {exc.filename}: {exc.strerror}")
            sys.exit(2)
        name = "stdin" if readings_path == "-" else readings_path
        try:
            summary = replay(
                engine,
                source,
                out,
                source=name,
                lateness_us=spec.allowed_lateness_us,
                strict=strict,
                report=lambda text: _err.print(f"[yellow]skipped[/yellow] {text}", soft_wrap=True),
                dead_letter=dead,
            )
        except ReplayAborted as exc:
            _err.print(f"[red]error[/red] {exc}", soft_wrap=True)
            sys.exit(1)
    if not quiet:
        _print_summary(summary, name, out_path)


def _print_summary(summary: ReplaySummary, source: str, out_path: str) -> None:
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
        _err.print(table)
    rejected = ", ".join(f"{k} {v}" for k, v in sorted(summary.rejected.items())) or "none"
    engine = summary.engine
    _err.print(
        f"{source}: {summary.readings} readings from {summary.lines} lines; rejected: {rejected}; "
        f"late readings corrected {engine.get('late_readings', 0)}, windows re-emitted "
        f"{engine.get('windows_corrected', 0)}; {summary.points} points written to "
        f"{'stdout' if out_path == '-' else out_path}"
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
    state_dir: Path,
    include_server: bool,
) -> None:
    """Walk an OPC UA server's address space (node ids in nsu= form, data types, access)."""
    from pydantic import ValidationError

    from collectors.opcua_security import UntrustedServer
    from runtimes.browse import browse, source_block

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
        click.echo(source_block(nodes, endpoint, source_id, security), nl=False)
        return
    console = Console(highlight=False)
    for node in nodes:
        detail = f" [dim]{node.data_type} {node.access or ''}[/dim]" if node.node_class == "Variable" else ""
        console.print(
            f"{'  ' * (node.depth - 1)}{node.path[-1]}  [cyan]{node.node_id}[/cyan]{detail}", soft_wrap=True
        )
    _err.print(f"{len(nodes)} node(s) below Objects, {depth} level(s) deep")


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
    "--truth",
    "truth_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the ground truth (what was produced) here as JSON at the end.",
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
    truth_path: Path | None,
) -> None:
    """Run the demonstration line as an OPC UA server (and an MQTT meter publisher)."""
    import json
    import logging
    from datetime import datetime

    from runtimes.simulator import SimulatorOptions, run

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("asyncua").setLevel(logging.ERROR)
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
        )
    except ValueError as exc:
        _err.print(f"[red]error[/red] {exc}")
        sys.exit(2)
    _err.print(
        f"simulating on opc.tcp://{host}:{port}/ (namespace urn:plantstream:simulator), speed {speed:g}x"
    )
    try:
        truth = asyncio.run(run(options))
    except PlantError as exc:
        for issue in exc.issues:
            _err.print(f"[red]error[/red] {issue}", soft_wrap=True)
        sys.exit(2)
    except OSError as exc:
        _err.print(f"[red]error[/red] cannot serve on {host}:{port}: {exc.strerror or exc}")
        sys.exit(1)
    except KeyboardInterrupt:
        return
    if truth_path is not None:
        truth_path.write_text(json.dumps(truth, indent=2, default=str) + "\n")
        _err.print(f"ground truth written to {truth_path}")


def _stop_on_signals(stop: asyncio.Event) -> None:
    import signal

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)


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
    "--http-port", default=8765, show_default=True, help="Loopback port of /healthz, /metrics, /stream."
)
def run_command(plant_path: Path, state_dir: Path, to_stdout: bool, http_port: int) -> None:
    """Run the embedded pipeline (collectors, calculators, file sink) until SIGINT or SIGTERM."""
    import logging

    from runtimes.embedded import EmbeddedPipeline

    plant, spec = _load(plant_path)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("asyncua").setLevel(logging.WARNING)

    def echo(points: list[Point]) -> None:
        for point in points:
            sys.stdout.write(point.to_json() + "\n")
        sys.stdout.flush()

    pipeline = EmbeddedPipeline(
        plant, spec, state_dir, on_points=echo if to_stdout else None, http_port=http_port
    )

    async def main_task() -> None:
        stop = asyncio.Event()
        _stop_on_signals(stop)
        await pipeline.run(stop)

    asyncio.run(main_task())
    stats = pipeline.stats
    _err.print(
        f"stopped: {stats.readings} readings, {stats.points} points in {state_dir / 'points'}, "
        f"{stats.dead_letters} dead letters, {stats.checkpoints} checkpoints"
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
    "--http-port", default=8765, show_default=True, help="Loopback port of /healthz, /metrics, /stream."
)
def demo_command(
    duration: float | None, no_ui: bool, speed: float, state_dir: Path, seed: int, http_port: int
) -> None:
    """The simulator, the embedded pipeline on examples/demo-line.yaml, and a live view."""
    import logging
    from contextlib import nullcontext

    from rich.live import Live

    from plantstream.plant import load_plant
    from runtimes.embedded import EmbeddedPipeline
    from runtimes.live import LiveView
    from runtimes.simulator import DEMO_PLANT, SimulatorOptions, SimulatorServer
    from streams.config import build_spec

    logging.basicConfig(
        level=logging.INFO if no_ui else logging.ERROR, format="%(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("asyncua").setLevel(logging.ERROR)

    async def main_task() -> LiveView:
        stop = asyncio.Event()
        _stop_on_signals(stop)
        async with SimulatorServer(SimulatorOptions(plant=DEMO_PLANT, port=0, speed=speed, seed=seed)) as sim:
            plant = load_plant(DEMO_PLANT, environ={**os.environ, "OPCUA_ENDPOINT": sim.endpoint})
            spec = build_spec(plant.model)
            view = LiveView(spec)
            pipeline = EmbeddedPipeline(
                plant,
                spec,
                state_dir,
                on_points=view.on_points,
                on_reading=view.on_reading,
                http_port=http_port,
            )
            if duration is not None:
                asyncio.get_running_loop().call_later(duration, stop.set)
            live = nullcontext() if no_ui else Live(view.render(), console=Console(), refresh_per_second=4)
            with live as screen:
                run = asyncio.create_task(pipeline.run(stop))
                while not run.done():
                    await asyncio.wait({run}, timeout=0.5)
                    if screen is not None:
                        screen.update(view.render())
                await run
            _err.print(
                f"points written to {state_dir / 'points'}; {pipeline.stats.readings} readings processed"
            )
            return view

    view = asyncio.run(main_task())
    for line in view.shift_summary():
        _err.print(line)


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

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("asyncua", "aiokafka"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


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
        stop = asyncio.Event()
        _stop_on_signals(stop)
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
def process_command(plant_path: Path) -> None:
    """Kafka role: the calculators in a consumer group, readings topic in, points topic out."""
    from aiokafka.errors import KafkaError

    from runtimes.kafka.process import ProcessRole

    plant, spec = _load(plant_path)
    settings = _kafka_settings(plant, plant_path)
    _role_logging()
    role = ProcessRole(settings, spec)

    async def main_task() -> None:
        stop = asyncio.Event()
        _stop_on_signals(stop)
        await role.run(stop)

    try:
        asyncio.run(main_task())
    except (KafkaError, OSError) as exc:
        _kafka_unreachable(settings, exc)
    stats = role.stats
    _err.print(
        f"stopped: {stats.records} readings, {stats.points} points, {stats.dead_letters} dead letters, "
        f"{stats.skipped} redelivered readings skipped"
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

    from runtimes.kafka.sink import FileSink, PointSink, SinkRole

    plant, _ = _load(plant_path)
    settings = _kafka_settings(plant, plant_path)
    _role_logging()
    sinks: list[PointSink] = [FileSink(state_dir)]
    role = SinkRole(settings, sinks)

    async def main_task() -> None:
        stop = asyncio.Event()
        _stop_on_signals(stop)
        await role.run(stop)

    try:
        asyncio.run(main_task())
    except (KafkaError, OSError) as exc:
        _kafka_unreachable(settings, exc)
    _err.print(
        f"stopped: {role.stats.points} points in {state_dir / 'points'}, "
        f"{role.stats.dead_letters} dead letters"
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
    "--measurement", default=None, help="Points of this measurement only (oee, energy, carbon, reading)."
)
@click.option("--json", "as_json", is_flag=True, help="JSON lines, for pipes.")
@click.option("--count", type=int, default=None, help="Stop after this many lines.")
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
    count: int | None,
    kafka_bootstrap: str | None,
    topics: str,
    from_beginning: bool,
) -> None:
    """Follow the running pipeline's readings and points, filtered."""
    from runtimes.tail import Filters, follow

    filters = Filters(site=site, line=line, machine=machine, signal=signal, measurement=measurement)
    if kafka_bootstrap is not None:
        import logging

        from runtimes.kafka.tail import follow_topics

        # The one-line error below says it; the client's own connection log would repeat it.
        logging.getLogger("aiokafka").setLevel(logging.CRITICAL)

        try:
            asyncio.run(
                follow_topics(
                    kafka_bootstrap,
                    [t.strip() for t in topics.split(",") if t.strip()],
                    filters,
                    as_json=as_json,
                    count=count,
                    console=Console(highlight=False),
                    from_beginning=from_beginning,
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
        asyncio.run(follow(url, filters, as_json=as_json, count=count, console=Console(highlight=False)))
    except (OSError, ConnectionError) as exc:
        _err.print(
            f"[red]error[/red] nothing to follow at {url}: {exc}; is `plantstream run` or `demo` running?"
        )
        sys.exit(1)
    except KeyboardInterrupt:
        return
