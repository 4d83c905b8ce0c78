"""``plantstream reason`` and ``tail``: what an operator does beside a running pipeline."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.markup import escape

if TYPE_CHECKING:
    pass

from runtimes.cli.group import (
    err,
    load_or_exit,
    main,
)
from runtimes.cli.kafka import kafka_settings, kafka_unreachable


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
        err.print(f"[red]error[/red] {escape(url)} is not a plantstream pipeline: {escape(str(exc))}")
        sys.exit(1)
    except OSError as exc:
        err.print(
            f"[red]error[/red] no pipeline at {escape(url)}: {escape(str(exc))}; "
            "is `plantstream run` or `demo` running, and is --url its port?"
        )
        sys.exit(1)
    if status != 202:
        err.print(
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
    plant, spec = load_or_exit(plant_path)
    settings = kafka_settings(plant, plant_path)
    try:
        reading = operator_reading(spec, machine, at, reason)
    except ReasonRefused as exc:
        err.print(f"[red]refused[/red] ({exc.reason}) {escape(str(exc))}")
        sys.exit(2)
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # the one line below says it
    try:
        asyncio.run(send_to_kafka(settings, reading))
    except (KafkaError, OSError) as exc:
        kafka_unreachable(settings, exc)
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
    spec = load_or_exit(plant_path)[1] if plant_path is not None else None
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
            err.print(
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
        err.print(
            f"[red]error[/red] {escape(url)} is not a plantstream pipeline: {escape(str(exc))}; "
            "is --url right? (`run` serves on port 8765 unless --http-port or the plant file's "
            "http.port says otherwise)",
            soft_wrap=True,
        )
        sys.exit(2)
    except (OSError, ConnectionError) as exc:
        err.print(
            f"[red]error[/red] nothing to follow at {url}: {exc}; is `plantstream run` or `demo` running?"
        )
        sys.exit(1)
    except KeyboardInterrupt:
        return
