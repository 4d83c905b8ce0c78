"""The embedded runtime's HTTP endpoint on loopback: ``/healthz``, ``/metrics``, ``/stream``, ``/reason``.

- ``/healthz``: JSON with each source's health; 200 when every source is connected, else 503.
- ``/metrics``: Prometheus text: readings in, points out, dead letters, refused readings by reason,
  and per source: connected, readings, drops, reconnects.
- ``/stream``: newline-delimited JSON of readings and points as they happen, for ``plantstream
  tail``; a new listener first gets the ``current`` lines (the pipeline gives each machine's
  latest state reading, which may be hours old on a steady line). Each listener has a bounded
  queue (``drop_oldest``, counted): a slow terminal never slows the pipeline.
- ``POST /reason``: an operator's reason for a past stop (``plantstream reason``,
  :mod:`streams.operator_reason`), a JSON body of at most 4 KiB with its ``Content-Length``;
  the pipeline answers 202 with what it applies, or 400 with the reason it refuses. A body too
  large (413), without a length (411) or not arriving within 5 s is refused before it is read;
  every answer is counted by outcome (:attr:`HttpEndpoint.posts`).

Every answer carries ``Server: plantstream/<version>``: ``plantstream tail`` checks it before it
shows anything, so it never follows whatever else answers on the port. The port is 8765 unless
``--http-port`` or the plant file's ``http: {port: N}`` says otherwise; a port that cannot be
bound stops the pipeline at start (:class:`PortUnavailable`) rather than running it unwatched.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from collectors.queue import BoundedQueue
from plantstream import __version__

__all__ = ["DEFAULT_PORT", "SERVER", "HttpEndpoint", "PortUnavailable", "check_port"]

DEFAULT_PORT = 8765
"""The endpoint's port when neither ``--http-port`` nor the plant file's ``http.port`` sets one."""

SERVER = f"plantstream/{__version__}"
"""The ``Server`` header of every answer: how ``tail`` knows it talks to a pipeline."""

_STATUS = {
    200: "OK",
    202: "Accepted",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    411: "Length Required",
    413: "Content Too Large",
    503: "Service Unavailable",
}
MAX_POST_BODY = 4096
"""The largest body ``POST /reason`` reads (a request is about 100 bytes)."""
_MAX_HEADERS = 100
"""Header lines read before a request is refused (a client sends a handful)."""

ReasonHandler = Callable[[bytes], Awaitable[tuple[int, dict[str, Any]]]]
"""Takes a ``POST /reason`` body, answers (status, JSON body); an ``error`` key names a refusal."""


class PortUnavailable(Exception):
    """The endpoint's port cannot be bound (in use, or not allowed)."""

    def __init__(self, host: str, port: int, reason: str) -> None:
        self.host = host
        self.port = port
        self.reason = reason
        super().__init__(f"cannot serve on {host}:{port}: {reason}")


def check_port(port: int, host: str = "127.0.0.1") -> None:
    """Fail before anything starts if ``port`` cannot be bound (0, any free port, always can).

    A first look only, so that ``run`` and ``demo`` stop before they start collectors or the
    simulator; the endpoint's own bind stays the check that counts (something may take the port
    in between). The socket is bound as asyncio binds its servers (``SO_REUSEADDR``), so a port
    whose last connections linger in TIME_WAIT is not called busy.

    Raises:
        PortUnavailable: the port is in use or may not be bound.
    """
    if port == 0:
        return
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise PortUnavailable(host, port, exc.strerror or str(exc)) from None


class HttpEndpoint:
    """A tiny HTTP/1.1 server; ``health()`` and ``metrics()`` are supplied by the pipeline."""

    def __init__(
        self,
        health: Callable[[], tuple[bool, dict[str, Any]]],
        metrics: Callable[[], str],
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        listener_queue: int = 1_000,
        current: Callable[[], list[str]] | None = None,
        on_reason: ReasonHandler | None = None,
    ) -> None:
        self._health = health
        self._on_reason = on_reason
        self.posts: Counter[str] = Counter()
        """``POST /reason`` answers by outcome: ``accepted`` or the refusal's reason."""
        self._metrics = metrics
        self._current = current
        self.host = host
        self.port = port
        self._listener_queue = listener_queue
        self._listeners: set[BoundedQueue[str]] = set()
        self.stream_dropped = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> HttpEndpoint:
        """Start serving.

        Raises:
            PortUnavailable: the port is in use or may not be bound.
        """
        try:
            self._server = await asyncio.start_server(self._serve, self.host, self.port)
        except OSError as exc:
            raise PortUnavailable(self.host, self.port, exc.strerror or str(exc)) from None
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._server is not None:
            self._server.close()
            for queue in self._listeners:
                await queue.put("")  # wakes the stream handlers, which then end
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    @property
    def listening(self) -> bool:
        """Whether anyone follows ``/stream`` (no need to encode lines for it otherwise)."""
        return bool(self._listeners)

    def publish(self, line: str) -> None:
        """Offer one JSON line to every ``/stream`` listener (never blocks)."""
        for queue in self._listeners:
            before = queue.dropped
            queue.put_nowait(line)
            self.stream_dropped += queue.dropped - before

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readline(), 5)
            headers: dict[str, str] = {}
            for _ in range(_MAX_HEADERS):
                line = await asyncio.wait_for(reader.readline(), 5)
                if line in (b"\r\n", b"\n", b""):
                    break
                name, _, value = line.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
            else:
                await self._reply(writer, 400, "text/plain", f"more than {_MAX_HEADERS} header lines\n")
                return
            parts = request.decode("latin-1").split()
            path = parts[1].split("?", 1)[0] if len(parts) >= 2 else ""
            if len(parts) >= 2 and parts[0] == "POST" and path == "/reason" and self._on_reason is not None:
                await self._post_reason(reader, writer, headers)
                return
            if len(parts) < 2 or parts[0] != "GET":
                allowed = "GET, or POST /reason" if self._on_reason is not None else "GET"
                await self._reply(writer, 405, "text/plain", f"only {allowed}\n")
                return
            if path == "/healthz":
                ok, body = self._health()
                await self._reply(writer, 200 if ok else 503, "application/json", json.dumps(body) + "\n")
            elif path == "/metrics":
                await self._reply(writer, 200, "text/plain; version=0.0.4", self._metrics())
            elif path == "/stream":
                await self._stream(writer)
            else:
                await self._reply(writer, 404, "text/plain", "try /healthz, /metrics or /stream\n")
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError, ValueError):
            # ValueError: a line longer than the reader's limit (64 KiB), garbage in any case.
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _post_reason(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, headers: dict[str, str]
    ) -> None:
        """Read a bounded body and hand it to the pipeline; count the outcome whatever it is."""
        handler = self._on_reason
        if handler is None:  # pragma: no cover - only routed here with a handler
            return
        length_text = headers.get("content-length")
        if "transfer-encoding" in headers or length_text is None or not length_text.isdigit():
            await self._refuse(writer, 411, "no_length", "a JSON body with a Content-Length is needed")
            return
        length = int(length_text)
        if length > MAX_POST_BODY:
            await self._refuse(
                writer, 413, "too_large", f"the body has {length} bytes (at most {MAX_POST_BODY})"
            )
            return
        try:
            body = await asyncio.wait_for(reader.readexactly(length), 5)
        except (TimeoutError, asyncio.IncompleteReadError):
            self.posts["incomplete"] += 1
            raise
        status, answer = await handler(body)
        self.posts[str(answer.get("error", "accepted"))] += 1
        await self._reply(writer, status, "application/json", json.dumps(answer) + "\n")

    async def _refuse(self, writer: asyncio.StreamWriter, status: int, reason: str, message: str) -> None:
        self.posts[reason] += 1
        await self._reply(
            writer, status, "application/json", json.dumps({"error": reason, "message": message}) + "\n"
        )

    async def _reply(self, writer: asyncio.StreamWriter, status: int, kind: str, body: str) -> None:
        data = body.encode()
        head = (
            f"HTTP/1.1 {status} {_STATUS[status]}\r\nServer: {SERVER}\r\nContent-Type: {kind}\r\n"
            f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n"
        )
        writer.write(head.encode() + data)
        await writer.drain()

    async def _stream(self, writer: asyncio.StreamWriter) -> None:
        writer.write(
            f"HTTP/1.1 200 OK\r\nServer: {SERVER}\r\nContent-Type: application/x-ndjson\r\n"
            "Connection: close\r\n\r\n".encode()
        )
        await writer.drain()
        queue: BoundedQueue[str] = BoundedQueue(self._listener_queue, "drop_oldest")
        # Both in one step of the loop: nothing published in between is missed or sent twice.
        self._listeners.add(queue)
        current = self._current() if self._current is not None else []
        try:
            if current:
                writer.write("".join(line + "\n" for line in current).encode())
                await writer.drain()
            while True:
                line = await queue.get()
                if not line:
                    return
                writer.write(line.encode() + b"\n")
                await writer.drain()
        finally:
            self._listeners.discard(queue)
