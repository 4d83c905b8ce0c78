"""The InfluxDB sink: points through a durable outbox to the v2 write API, losing none.

Points are encoded to line protocol (:mod:`sinks.lineprotocol`) at the precision configured for
their measurement and appended to the outbox (:mod:`sinks.outbox`); :meth:`InfluxSink.submit`
returns once they are committed there. A delivery task sends the oldest lines in batches of
``batch_size``, or whatever has waited ``flush_interval_s``, with :mod:`sinks.influx_http` in a
worker thread (so gzip and HTTP never stall the pipeline's event loop), and deletes
lines from the outbox only after the server accepted them.

Answers and what follows:

- 2xx: delivered.
- 429, 5xx, 408, a refused or broken connection, a timeout: retried with capped exponential
  back-off and jitter; a ``Retry-After`` header (seconds or an HTTP date) sets the wait instead.
- 401, 403, 404 (bad token, organisation or bucket) and a redirect (3xx, the url points to the
  wrong place): the sink is misconfigured, not the data; retried with back-off like an outage, so
  nothing is lost while an operator fixes it.
- Any other 4xx (400 bad line, 413 too large, 422 outside retention, ...): the batch is split in
  halves until the rejected lines are isolated; those go to the dead letter with the server's
  message, the rest is delivered. A point that cannot be encoded at all is dead-lettered at once.

Retries may deliver a line twice (the server accepted it, the answer was lost); that is harmless
because a point's identity (measurement, tags, time) overwrites in InfluxDB.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path

import urllib3.exceptions

from plantstream.plant.schema import InfluxDbSink
from plantstream.records import DeadLetter, Point, ReadingRow
from sinks.influx_http import WriteApi, WriteRefused
from sinks.lineprotocol import Precision, encode_many
from sinks.outbox import Outbox, OutboxChunk, OutboxFull

__all__ = ["AcceptHook", "InfluxSink", "SinkConfigError", "SinkHealth", "WriteFailed", "retry_after_s"]

_log = logging.getLogger("plantstream.sinks.influx")

Writer = Callable[[bytes, str], None]
"""Sends a body of lines of one precision, joined by newlines; returns when accepted, raises
otherwise (runs in a thread)."""

AcceptHook = Callable[[bytes, str, float], None]
"""Called on the event loop with a body the server accepted, its precision and the wall-clock time
of the answer (epoch seconds): what a benchmark needs to time delivery, with no cost when unset."""

_CONFIG_STATUSES = frozenset({401, 403, 404})
_RETRY_STATUSES = frozenset({408, 429})
_MAX_MESSAGE = 1_000
_PRECISION_CACHE = 4096


class SinkConfigError(Exception):
    """A sink cannot start (a missing token variable); the message names the sink and the cause."""


class WriteFailed(Exception):
    """One write attempt failed; ``kind`` is the error class, ``status`` the HTTP status (0: none)."""

    def __init__(self, kind: str, message: str, status: int = 0, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.status = status
        self.retry_after = retry_after


@dataclass
class SinkHealth:
    """What a sink reports about itself (the runtime turns it into points and metrics)."""

    written: int = 0
    """Lines the server accepted."""
    requests: int = 0
    """Write requests sent (retries and halves of split batches included)."""
    errors: Counter[str] = field(default_factory=Counter)
    """Failed attempts by class: connection, server, throttled, config, rejected, other."""
    dead_letters: int = 0
    """Lines rejected by the server or not encodable, kept in the dead letter."""
    waits_for_room: int = 0
    """Times a caller waited because the outbox was full (policy block)."""
    connected: bool = False
    """Whether the last attempt reached a server that accepted the write."""
    last_write: datetime | None = None
    last_error: str | None = None


class InfluxSink:
    """One ``influxdb`` sink of the plant file: its outbox, its batching and its delivery task.

    Use as ``async with``: entering starts delivery; leaving flushes for at most
    ``flush_timeout_s`` and leaves the rest in the outbox for the next start.
    """

    def __init__(
        self,
        settings: InfluxDbSink,
        outbox_dir: Path,
        *,
        on_dead_letter: Callable[[DeadLetter], None],
        environ: Mapping[str, str] | None = None,
        writer: Writer | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
        first_retry_s: float = 0.5,
        max_retry_s: float = 30.0,
        timeout_s: float = 10.0,
        flush_timeout_s: float = 30.0,
    ) -> None:
        """Open the outbox and the client.

        Args:
            settings: the sink's block of the plant file.
            outbox_dir: the outbox is ``<outbox_dir>/<id>.sqlite``.
            on_dead_letter: receives every rejected or unencodable line with its reason.
            environ: where the token variable is looked up (default: the process environment).
            writer: replaces the HTTP write (tests); default: :class:`sinks.influx_http.WriteApi`,
                which raises :class:`sinks.influx_http.WriteRefused` for an answer other than 2xx.
            sleep: how the sink waits between attempts (tests record the waits).
            rng: jitter source.
            first_retry_s: first back-off delay; doubled per failure up to ``max_retry_s``.
            max_retry_s: cap of the back-off (a longer Retry-After is still honoured).
            timeout_s: of one HTTP request.
            flush_timeout_s: how long leaving the ``async with`` keeps delivering.

        Raises:
            SinkConfigError: the token variable is not set.
        """
        env = os.environ if environ is None else environ
        if settings.token_env not in env:
            raise SinkConfigError(
                f"sink {settings.id}: environment variable {settings.token_env} (token_env) is not set; "
                "it must hold the InfluxDB API token"
            )
        self.settings = settings
        self.id = settings.id
        self.health = SinkHealth()
        self.outbox = Outbox(
            outbox_dir / f"{settings.id}.sqlite",
            max_bytes=settings.outbox.max_bytes,
            when_full=settings.outbox.when_full,
            chunk_lines=settings.batch_size,
        )
        self._on_dead_letter = on_dead_letter
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._first_retry_s = first_retry_s
        self._max_retry_s = max_retry_s
        self.flush_timeout_s = flush_timeout_s
        self._client: WriteApi | None = None
        if writer is None:
            # Compressed at level 1, not gzip's default 9: a fifth larger, five to thirty times
            # cheaper, where level 9 cost more CPU than encoding the points (docs/benchmarks.md).
            writer = self._client = WriteApi(
                settings.url,
                env[settings.token_env],
                settings.org,
                settings.bucket,
                timeout_s=timeout_s,
                compress=settings.gzip,
            )
        self._writer = writer
        self.on_accepted: AcceptHook | None = None
        """Called after every accepted write (see :data:`AcceptHook`); for benchmarks."""
        self._precisions: dict[str, Precision] = {}
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"sink-{settings.id}")
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._empty = asyncio.Event()
        self._flushing = False
        self._closing = False
        self._idle = False
        self._task: asyncio.Task[None] | None = None

    # -- the pipeline's side -------------------------------------------------------------------

    def encode(self, points: Sequence[Point | ReadingRow]) -> list[tuple[str, list[str]]]:
        """Line protocol for ``points`` as (precision, lines) groups, each in the points' order.

        Unencodable points are dead-lettered instead.
        """
        groups, failed = encode_many(points, self._precision_of)
        for point, exc in failed:
            self._dead_letter(point.measurement, "unencodable", str(exc), point.to_json())
        return list(groups.items())

    def _precision_of(self, measurement: str) -> Precision:
        precision = self._precisions.get(measurement)
        if precision is None:
            precision = self.settings.precision_of(measurement)
            if len(self._precisions) >= _PRECISION_CACHE:
                self._precisions.clear()
            self._precisions[measurement] = precision
        return precision

    async def submit(self, points: Sequence[Point | ReadingRow]) -> None:
        """Append ``points`` to the outbox; returns once they are committed there.

        Under policy ``block`` a full outbox makes this wait for room (back-pressure); while the
        sink is closing it never waits (the bound is exceeded a little instead).
        """
        items = self.encode(points)
        while True:
            try:
                self.outbox.append(items, force=self._closing)
                break
            except OutboxFull:
                self.health.waits_for_room += 1
                self._room.clear()
                self._wake.set()
                await self._room.wait()
        self._appended()

    def submit_nowait(self, points: Sequence[Point | ReadingRow]) -> None:
        """Append ``points`` now, beyond the bound if need be (the runtime's last words at shutdown)."""
        self.outbox.append(self.encode(points), force=True)
        self._appended()

    def sync(self) -> None:
        """Force the outbox to disk (before the runtime writes a checkpoint)."""
        self.outbox.sync()

    async def drain(self, timeout_s: float) -> bool:
        """Deliver everything in the outbox now; ``True`` if it emptied within ``timeout_s``."""
        if self.outbox.lines == 0:
            return True
        self._flushing = True
        self._empty.clear()
        self._wake.set()
        try:
            await asyncio.wait_for(self._empty.wait(), timeout_s)
        except TimeoutError:
            return False
        finally:
            self._flushing = False
        return True

    # -- lifecycle -----------------------------------------------------------------------------

    async def __aenter__(self) -> InfluxSink:
        self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    def start(self) -> None:
        """Start the delivery task."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._deliver(), name=f"sink[{self.id}]")

    def begin_close(self) -> None:
        """From now on :meth:`submit` never waits for room: the pipeline is draining to stop."""
        self._closing = True
        self._room.set()

    async def close(self, flush_timeout_s: float | None = None) -> None:
        """Flush for at most ``flush_timeout_s`` (default: the constructor's), then stop.

        What was not delivered stays in the outbox and goes out on the next start.
        """
        self.begin_close()
        timeout = self.flush_timeout_s if flush_timeout_s is None else flush_timeout_s
        if self._task is not None and not self._task.done():
            if not await self.drain(timeout):
                _log.warning(
                    "sink %s: %d line(s) not delivered within %.0f s; they stay in %s for the next start",
                    self.id,
                    self.outbox.lines,
                    timeout,
                    self.outbox.path,
                )
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._task = None
        self._executor.shutdown(wait=False, cancel_futures=True)
        if self._client is not None:
            self._client.close()
        self.outbox.close()

    # -- delivery ------------------------------------------------------------------------------

    def _appended(self) -> None:
        # A partial batch waits for its interval; wake the delivery task only when it sleeps on
        # an empty outbox, a batch is full, or a flush was asked for.
        if self._idle or self._flushing or self.outbox.lines >= self.settings.batch_size:
            self._wake.set()

    async def _deliver(self) -> None:
        failures = 0
        while True:
            try:
                await self._deliver_batches()
            except Exception as exc:  # the outbox itself failed (disk full, I/O error): say so, go on
                self.health.errors["other"] += 1
                self.health.last_error = f"outbox: {type(exc).__name__}: {exc}"
                _log.exception("sink %s: delivery failed; retrying", self.id)
                await self._sleep(self._backoff(failures))
                failures += 1

    async def _deliver_batches(self) -> None:
        outbox = self.outbox
        batch_size = self.settings.batch_size
        interval = self.settings.flush_interval_s
        while True:
            if outbox.lines == 0:
                self._empty.set()
                self._wake.clear()
                self._idle = True
                try:
                    await self._wake.wait()
                finally:
                    self._idle = False
                continue
            if outbox.lines < batch_size and not self._flushing:
                remaining = interval - outbox.oldest_age_s
                if remaining > 0:
                    self._wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), remaining)
                    continue
            chunks = outbox.peek(batch_size)
            while chunks:
                sending = asyncio.ensure_future(self._send(chunks))
                # While this batch is on the wire, read the next one if it is due already.
                due = outbox.lines - sum(chunk.lines for chunk in chunks) >= batch_size or self._flushing
                following = outbox.peek_after(chunks[-1].id, batch_size) if due else []
                try:
                    await sending
                except BaseException:
                    sending.cancel()
                    raise
                outbox.delete(chunks)
                self._room.set()
                chunks = following

    async def _send(self, chunks: list[OutboxChunk]) -> None:
        """Deliver one batch, each precision in its own request (a request has one precision)."""
        keys = {chunk.key for chunk in chunks}
        for key in sorted(keys):
            part = chunks if len(keys) == 1 else [chunk for chunk in chunks if chunk.key == key]
            body = part[0].body if len(part) == 1 else b"\n".join(chunk.body for chunk in part)
            rejection = await self._write(body, sum(chunk.lines for chunk in part), key)
            if rejection is not None:
                await self._isolate(body.split(b"\n"), key, rejection)

    async def _isolate(self, lines: list[bytes], precision: str, rejection: str) -> None:
        """Bisect rejected ``lines`` down to single lines: those go to the dead letter, the rest in."""
        if len(lines) == 1:
            where = f"{self.settings.url} bucket {self.settings.bucket}"
            self._dead_letter(where, "rejected", rejection, lines[0].decode("utf-8", "replace"))
            return
        middle = len(lines) // 2
        for half in (lines[:middle], lines[middle:]):
            rejected = await self._write(b"\n".join(half), len(half), precision)
            if rejected is not None:
                await self._isolate(half, precision, rejected)

    async def _write(self, body: bytes, lines: int, precision: str) -> str | None:
        """Deliver ``body`` (``lines`` lines of one precision), retrying outages.

        Returns:
            ``None`` once accepted, or the server's message when it rejected the lines (4xx).
        """
        failures = 0
        while True:
            try:
                await self._attempt(body, lines, precision)
                return None
            except WriteFailed as failure:
                self.health.errors[failure.kind] += 1
                self.health.last_error = str(failure)
                if failure.kind == "rejected":
                    return str(failure)
                self.health.connected = False
                delay = failure.retry_after if failure.retry_after is not None else self._backoff(failures)
                failures += 1
                _log.warning("sink %s: %s; retrying in %.1f s", self.id, failure, delay)
                await self._sleep(delay)

    async def _attempt(self, body: bytes, lines: int, precision: str) -> None:
        self.health.requests += 1
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._executor, self._writer, body, precision)
        except WriteRefused as exc:
            raise _classify(exc) from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise WriteFailed("connection", f"{type(exc).__name__}: {exc}"[:_MAX_MESSAGE]) from None
        except Exception as exc:
            # Whatever else the client raises is retried like an outage, never fatal to delivery.
            raise WriteFailed("other", f"{type(exc).__name__}: {exc}"[:_MAX_MESSAGE]) from None
        self.health.written += lines
        if self.on_accepted is not None:
            self.on_accepted(body, precision, time.time())
        self.health.connected = True
        self.health.last_write = datetime.now(tz=UTC)
        self.health.last_error = None

    def _backoff(self, failures: int) -> float:
        """Capped exponential back-off with equal jitter: the wait grows even on unlucky draws."""
        ceiling = min(self._max_retry_s, self._first_retry_s * 2 ** min(failures, 30))
        return self._rng.uniform(ceiling / 2, ceiling)

    def _dead_letter(self, where: str, reason: str, error: str, raw: str) -> None:
        self.health.dead_letters += 1
        self._on_dead_letter(
            DeadLetter(
                ts=datetime.now(tz=UTC),
                source=f"sink:{self.id}",
                where=where,
                reason=reason,
                error=error,
                raw=raw,
            )
        )


def _classify(exc: WriteRefused) -> WriteFailed:
    status = exc.status
    message = str(exc)[:_MAX_MESSAGE]
    retry_after = retry_after_s(exc.retry_after)
    if status == 429:
        return WriteFailed("throttled", message, status, retry_after)
    if status >= 500 or status in _RETRY_STATUSES:
        return WriteFailed("server", message, status, retry_after)
    if status in _CONFIG_STATUSES or status < 400:
        # A redirect is the url's mistake, not the lines': kept and retried until it is fixed.
        return WriteFailed("config", message, status, retry_after)
    return WriteFailed("rejected", message, status)


def retry_after_s(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta seconds or an HTTP date); ``None`` if absent."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - (now or datetime.now(tz=UTC))).total_seconds())
