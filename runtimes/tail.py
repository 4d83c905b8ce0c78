"""``plantstream tail``: follow a running pipeline's ``/stream``, filtered, for people or pipes."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import click
from rich.console import Console

__all__ = ["Filters", "follow"]


@dataclass(frozen=True)
class Filters:
    """What to show; ``None`` matches anything."""

    site: str | None = None
    line: str | None = None
    machine: str | None = None
    signal: str | None = None
    measurement: str | None = None

    def match(self, record: dict[str, Any]) -> bool:
        """True when a reading or point passes every filter."""
        tags = record["tags"] if "measurement" in record else record
        if self.measurement is not None and record.get("measurement") != self.measurement:
            return False
        checks = {"site": self.site, "line": self.line, "machine": self.machine, "signal": self.signal}
        return all(value is None or tags.get(key) == value for key, value in checks.items())


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


async def follow(url: str, filters: Filters, *, as_json: bool, count: int | None, console: Console) -> None:
    """Print matching records from ``url`` until it ends or ``count`` have been shown.

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
                if as_json:
                    click.echo(text)
                else:
                    console.print(render(record), soft_wrap=True)
                shown += 1
    finally:
        writer.close()
