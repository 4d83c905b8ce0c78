"""``plantstream tail``: follow a running pipeline's ``/stream``, filtered, for people or pipes.

What is shown is up to a :data:`Show` callback: a coloured line per record, the JSON line itself
(:func:`printer`), or a live per-machine table (:meth:`runtimes.live.LiveView.on_record`); the
kafka runtime's topics are followed the same way (:mod:`runtimes.kafka.tail`).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import click
from rich.console import Console

from runtimes.shift_so_far import MEASUREMENT as SHIFT_SO_FAR

__all__ = ["Filters", "Show", "follow", "printer"]

Show = Callable[[dict[str, Any], str], None]
"""Shows one matching record: the decoded reading or point, and its JSON text."""


@dataclass(frozen=True)
class Filters:
    """What to show; ``None`` matches anything.

    A reading names only its machine: ``places`` (machine -> (site, line), from the plant file)
    lets ``site`` and ``line`` select readings too; without it they select points only.

    The pipeline's ``shift_so_far`` records (every machine's, every second) pass only when asked
    for by ``measurement`` or ``shift_so_far`` (the live table); otherwise they would bury the
    events a person or a pipe follows.
    """

    site: str | None = None
    line: str | None = None
    machine: str | None = None
    signal: str | None = None
    measurement: str | None = None
    places: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    shift_so_far: bool = False

    def match(self, record: dict[str, Any]) -> bool:
        """True when a reading or point passes every filter."""
        measurement = record.get("measurement")
        if self.measurement is not None and measurement != self.measurement:
            return False
        if measurement == SHIFT_SO_FAR and not (self.shift_so_far or self.measurement == SHIFT_SO_FAR):
            return False
        tags = record["tags"] if "measurement" in record else record
        place = None if "measurement" in record else self.places.get(str(record.get("machine")))
        if place is not None:
            tags = {**tags, "site": place[0], "line": place[1]}
        checks = {"site": self.site, "line": self.line, "machine": self.machine, "signal": self.signal}
        return all(value is None or tags.get(key) == value for key, value in checks.items())


def printer(*, as_json: bool, console: Console) -> Show:
    """Show records as JSON lines (for pipes) or as one coloured line each (for people)."""

    def show(record: dict[str, Any], text: str) -> None:
        if as_json:
            click.echo(text)
        else:
            console.print(render(record), soft_wrap=True)

    return show


def render(record: dict[str, Any]) -> str:
    """One compact, coloured line (rich markup) for a reading or a point."""
    if "measurement" in record:
        tags, fields = record["tags"], record["fields"]
        shown = ", ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in list(fields.items())[:6]
        )
        where = "/".join(str(tags[k]) for k in ("site", "line", "machine") if k in tags)
        return f"[cyan]{record['time']}[/cyan] [bold]{record['measurement']}[/bold] {where} {shown}"
    colour = {"good": "green", "uncertain": "yellow"}.get(str(record.get("quality", "good")), "red")
    value = record.get("value")
    return (
        f"[cyan]{record['ts']}[/cyan] {record['machine']}.{record['signal']} = [{colour}]{value}[/{colour}]"
    )


async def follow(url: str, filters: Filters, *, count: int | None, show: Show) -> None:
    """Show matching records from ``url`` until it ends or ``count`` have been shown.

    Raises:
        OSError, ConnectionError: nothing answers at ``url`` (or not with a stream).
    """
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(f"GET {parts.path or '/stream'} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        await writer.drain()
        status = await reader.readline()
        if b" 200 " not in status:
            raise ConnectionError(f"the pipeline answered {status.decode().strip()!r}")
        while (await reader.readline()) not in (b"\r\n", b""):
            pass
        shown = 0
        while count is None or shown < count:
            raw = await reader.readline()
            if not raw:
                return
            text = raw.decode().strip()
            record = json.loads(text)
            if filters.match(record):
                show(record, text)
                shown += 1
    finally:
        writer.close()
