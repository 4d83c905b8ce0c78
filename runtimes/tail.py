"""``plantstream tail``: follow a running pipeline's ``/stream``, filtered, for people or pipes.

What is shown is up to a :data:`Show` callback: a coloured line per record, the JSON line itself
(:func:`printer`), or a live per-machine table (:meth:`runtimes.live.LiveView.on_record`); the
kafka runtime's topics are followed the same way (:mod:`runtimes.kafka.tail`).
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import click
from rich.console import Console
from rich.markup import escape

from runtimes.shift_so_far import MEASUREMENT as SHIFT_SO_FAR

__all__ = ["Filters", "NotAPipeline", "Show", "follow", "number", "printer", "render"]

_ANSWER_TIMEOUT_S = 10.0
"""How long the status line and headers may take: a server that accepts and says nothing is not
a pipeline (the pipeline answers at once, before any record)."""
_HEADER_LINES = 100
"""Most header lines read before deciding; a pipeline sends four."""

Show = Callable[[dict[str, Any], str], None]
"""Shows one matching record: the decoded reading or point, and its JSON text."""


class NotAPipeline(Exception):
    """What answers at the URL is not a plantstream pipeline (no ``Server: plantstream/...``)."""


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
    """One compact, coloured line (rich markup) for a reading or a point.

    A corrected window (``revision`` above 0) says so, ``rev N``: the same window was shown before
    with other figures.
    """
    if record.get("measurement") == "stop":
        return _stop_line(record)
    if "measurement" in record:
        tags, fields = record["tags"], record["fields"]
        shown = ", ".join(f"{k}={number(v)}" for k, v in list(fields.items())[:6])
        where = "/".join(str(tags[k]) for k in ("site", "line", "machine") if k in tags)
        revision = fields.get("revision")
        corrected = (
            f" [magenta]rev {revision}[/magenta]" if isinstance(revision, int) and revision > 0 else ""
        )
        return (
            f"[cyan]{record['time']}[/cyan] [bold]{record['measurement']}[/bold] {where}{corrected} {shown}"
        )
    colour = {"good": "green", "uncertain": "yellow"}.get(str(record.get("quality", "good")), "red")
    value = number(record.get("value"))
    return (
        f"[cyan]{record['ts']}[/cyan] {record['machine']}.{record['signal']} = [{colour}]{value}[/{colour}]"
    )


_CAUSES = {"first": "first cause", "last": "last cause", "operator": "given by an operator"}


def _stop_line(record: dict[str, Any]) -> str:
    """A ``stop`` point as people say it, its names escaped (a reason is the plant's text).

    ``hcm/line1/packer1 stopped 4.6 min (down): film break (material) code 302, first cause``,
    then ``micro-stop`` and ``rev N`` where they apply.
    """
    tags, fields = record.get("tags", {}), record.get("fields", {})
    where = "/".join(str(tags[k]) for k in ("site", "line", "machine") if k in tags)
    seconds = fields.get("duration_s")
    if isinstance(seconds, int | float) and not isinstance(seconds, bool):
        lasted = f"{number(round(seconds, 1))} s" if seconds < 60 else f"{seconds / 60:.1f} min"
    else:
        lasted = "?"
    reason, group = str(tags.get("reason", "?")), str(tags.get("reason_group", ""))
    said = escape(reason if group in ("", reason) else f"{reason} ({group})")
    if "code" in fields and not reason.startswith("code "):
        said += f" [dim]code {escape(str(fields['code']))}[/dim]"
    cause = _CAUSES.get(str(fields.get("cause")))
    if cause is not None and reason != "unassigned":
        said += f", {cause}"
    if fields.get("micro") is True:
        said += ", micro-stop"
    revision = fields.get("revision")
    if isinstance(revision, int) and revision > 0:
        said += f" [magenta]rev {revision}[/magenta]"
    return (
        f"[cyan]{record.get('time')}[/cyan] [bold]stop[/bold] {escape(where)} stopped {lasted} "
        f"({escape(str(tags.get('category', '?')))}): {said}"
    )


def number(value: object) -> str:
    """A field's value for people: whole numbers in full, with thousands separators.

    So a counter's every increment shows (``427,013``, never ``4.27e+05``); numbers of 1 or more
    keep up to three decimals, smaller ones four significant digits (a ratio: ``0.8333``).
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if not math.isfinite(value) or abs(value) >= _EXACT_FLOAT:
        return f"{value:.4g}"  # not a count any more: 1e+38 says more than 39 digits
    if value.is_integer():
        return f"{int(value):,}"
    if abs(value) >= 1:
        return f"{value:,.3f}".rstrip("0").rstrip(".")
    return f"{value:.4g}"


_EXACT_FLOAT = 2.0**53
"""Below this a float holds every whole number exactly, so a whole one is shown as an integer."""


async def follow(
    url: str,
    filters: Filters,
    *,
    count: int | None,
    show: Show,
    around: Callable[[], AbstractAsyncContextManager[object]] | None = None,
) -> None:
    """Show matching records from ``url`` until it ends or ``count`` have been shown.

    Nothing is shown before the answer's headers say it comes from a plantstream pipeline;
    ``around`` (a live table's display) is entered only then, around the records.

    Raises:
        OSError, ConnectionError: nothing answers at ``url`` (or the pipeline does not stream).
        NotAPipeline: something answers, but not a plantstream pipeline.
    """
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(f"GET {parts.path or '/stream'} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        await writer.drain()
        try:
            status, server = await asyncio.wait_for(_answer(reader), _ANSWER_TIMEOUT_S)
        except TimeoutError:
            raise NotAPipeline(f"no HTTP answer within {_ANSWER_TIMEOUT_S:g} s") from None
        except ValueError:  # a line longer than the reader's limit: not an HTTP header
            raise NotAPipeline("it does not speak HTTP (a header line of over 64 KiB)") from None
        if not server.startswith("plantstream/"):
            said = f"Server: {server}" if server else "no Server header"
            raise NotAPipeline(f"it answered {status!r} with {said}, not Server: plantstream/...")
        if " 200 " not in f"{status} ":
            raise ConnectionError(f"the pipeline answered {status!r}")
        async with around() if around is not None else nullcontext():
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


async def _answer(reader: asyncio.StreamReader) -> tuple[str, str]:
    """The status line and the ``Server`` header's value ("" without one) of an HTTP answer."""
    status = (await reader.readline()).decode("latin-1").strip()
    if not status.startswith("HTTP/"):
        raise NotAPipeline(f"it does not speak HTTP (it said {status[:60]!r})")
    server = ""
    for _ in range(_HEADER_LINES):
        line = await reader.readline()
        if line in (b"\r\n", b"\n", b""):
            return status, server
        name, _, value = line.decode("latin-1").partition(":")
        if name.strip().lower() == "server":
            server = value.strip()
    raise NotAPipeline(f"more than {_HEADER_LINES} header lines")
