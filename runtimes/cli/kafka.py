"""``plantstream collect``, ``process`` and ``sink``: the kafka roles."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import click

from plantstream.plant import LoadedPlant
from plantstream.plant.schema import Kafka

if TYPE_CHECKING:
    pass

from runtimes.cli.group import (
    PLANT_OPTION,
    err,
    hold_state_dir,
    load_or_exit,
    main,
    stop_on_signals,
    until_signalled,
)


def kafka_settings(plant: LoadedPlant, plant_path: Path) -> Kafka:
    """The plant file's kafka section; without one, exit 2 naming the file."""
    settings = plant.model.kafka
    if settings is None:
        err.print(
            f"[red]error[/red] {plant_path}: no kafka: section; the kafka roles need one (docs/kafka.md)"
        )
        sys.exit(2)
    return settings


def role_logging() -> None:
    """A role's logs: timestamped lines at INFO, aiokafka's own only from WARNING."""
    import logging

    from runtimes.logs import setup_logging

    setup_logging(logging.INFO, timestamps=True)
    logging.getLogger("aiokafka").setLevel(logging.WARNING)


def kafka_unreachable(settings: Kafka, exc: Exception) -> NoReturn:
    """One line naming the broker and what went wrong; exit 1."""
    err.print(f"[red]error[/red] Kafka at {settings.bootstrap}: {exc}")
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

    plant, spec = load_or_exit(plant_path)
    settings = kafka_settings(plant, plant_path)
    role_logging()
    collector = Collector(plant, spec, settings, state_dir)

    async def main_task() -> None:
        stop = stop_on_signals()
        if from_file is None:
            await collector.run(stop)
            return
        with from_file.open(encoding="utf-8") as lines:
            await collector.run(stop, file_readings(collector, from_file, lines))

    try:
        asyncio.run(main_task())
    except (KafkaError, OSError) as exc:
        kafka_unreachable(settings, exc)
    stats = collector.stats
    err.print(
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

    plant, spec = load_or_exit(plant_path)
    settings = kafka_settings(plant, plant_path)
    role_logging()
    role = ProcessRole(settings, spec, save_interval_s=save_every_s)

    try:
        asyncio.run(until_signalled(role.run))
    except (KafkaError, OSError) as exc:
        kafka_unreachable(settings, exc)
    stats = role.stats
    err.print(
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

    plant, spec = load_or_exit(plant_path)
    settings = kafka_settings(plant, plant_path)
    hold_state_dir(state_dir)
    role_logging()
    files = FileSink(state_dir, readings=plant.model.files.readings, keep_days=plant.model.files.keep_days)

    async def main_task() -> None:
        stop = stop_on_signals()
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
        err.print(f"[red]error[/red] {exc}")
        sys.exit(2)
    except (KafkaError, OSError) as exc:
        kafka_unreachable(settings, exc)
    for role in roles:
        err.print(
            f"stopped: {role.stats.points} points in {state_dir / 'points'} "
            f"({role.stats.raw_points} of them raw readings), {role.stats.dead_letters} dead letters"
        )
