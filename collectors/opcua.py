"""The OPC UA collector: an async iterator of Readings from one server (asyncua).

It is built against the ways peer tools go silent (the [FIELD-*] entries of docs/references.md):

- **Node ids by namespace URI** (``nsu=urn:...;s=...``) are resolved to the server's current
  index at every session, so an index that moves on a server restart moves with it.
- **Subscriptions**, with monitored items created in batches no larger than the server's
  ``MaxMonitoredItemsPerCall`` (or the source's cap when it publishes none).
- **One reconnect loop**, a fresh ``Client`` for every attempt, capped exponential back-off with
  full jitter; after every connect the subscriptions are made again and the current value of every
  item is read at once, so counters and states catch up.
- **Per-item failures** (``BadNodeIdUnknown``, a namespace the server lacks) are reported and
  retried on their own every ``retry_failed_s`` while every other item keeps flowing.
- **A busy server is not a lost one**: liveness probes every ``timeout_s`` with as long to
  answer, keep-alives at least every ``timeout_s``, and no re-created subscriptions; a session
  is rebuilt only when one of its subscriptions (the server's ``CurrentTime`` is monitored
  beside the tags) publishes nothing, not even a keep-alive, for ``watchdog_s``, or the
  connection is gone. The old session is closed (bounded) before the next is made.
- **Quality and time**: the StatusCode class and raw code are kept on every reading (bad values
  are kept, with no value when the server sends none); the reading's time follows the source's
  policy (source, server or ingest time, falling back when the server omits one, counted), and
  the skews (server − source, ingest − server) are reported. DataValues are decoded in the
  field order of the specification (:mod:`collectors.opcua_binary`).
- **Backfill from history** (:mod:`collectors.opcua_history`): after every (re)connect, a tag
  whose node keeps history (checked once per node and session) gets the values it missed since
  the last one delivered, up to its catch-up value, read in the server's batches and delivered in
  event-time order with the catch-up values, marked ``backfilled``; the subscriptions' values
  wait meanwhile. A bad history answer is counted and logged once per node; the session goes on.
- **A fast data path**: the subscriptions' Publish responses with data changes of scalar values
  are decoded straight from their bytes (:mod:`collectors.opcua_publish`), not through asyncua's
  generic objects per value; everything else (arrays, other notifications, status changes) is
  decoded by asyncua as before, and yields the same readings. The hook into asyncua is
  :mod:`collectors.opcua_fastpath`.

Security: Sign or SignAndEncrypt with Basic256Sha256 or the Aes policies. The application
certificate and key are generated on first use into ``<state_dir>/pki/<source>/`` and kept; their
SHA-256 is logged and in ``health``. The server's certificate must be pinned by SHA-256 or be in
a trusted folder; otherwise the collector refuses, naming the fingerprint to pin. Mode None is
accepted only where the plant file says ``allow_insecure: true``. User name and password come
from the plant file's ``${VAR}`` references to the environment.

The collector is one class in layers, each its own module, none importing this one:
:mod:`collectors.opcua_state` (health, and each item's state), :mod:`collectors.opcua_items`
(node ids resolved, monitored items made and retried), :mod:`collectors.opcua_values` (values to
readings), :mod:`collectors.opcua_reads` (the catch-up read, backfill, polling) and this module
(sessions, subscriptions, liveness).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Coroutine, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from asyncua import Client, ua
from asyncua.common.subscription import OverflowPolicy, Subscription

from collectors import opcua_binary, opcua_events, opcua_fastpath
from collectors.backoff import Backoff
from collectors.opcua_publish import Value
from collectors.opcua_reads import OpcUaReads
from collectors.opcua_security import UntrustedServer, secure_client
from collectors.opcua_state import OpcUaHealth, _Item
from collectors.opcua_unchanged import Taken, UnchangedValues
from collectors.opcua_values import _aware
from plantstream.plant.schema import OpcUaGroup, OpcUaSource
from plantstream.records import DeadLetter, Quality, ReadingTuple

__all__ = ["OpcUaCollector", "OpcUaHealth", "UntrustedServer"]

_log = logging.getLogger("plantstream.collectors.opcua")
# asyncua misreads the ServerTimestamp of a DataValue that carries SourcePicoseconds (see
# collectors/opcua_binary.py); decode DataValues in the order the specification gives.
opcua_binary.install()
_CURRENT_TIME = ua.NodeId(ua.ObjectIds.Server_ServerStatus_CurrentTime)
_TRANSIENT = (OSError, TimeoutError, ConnectionError, ua.UaError)
# How long closing a session may take before its socket is simply closed (see _close).
_CLOSE_TIMEOUT_S = 5.0


def _utc_now() -> datetime:
    return datetime.now(tz=UTC)


class _Silent(Exception):
    """The watchdog saw nothing for too long."""


class OpcUaCollector(OpcUaReads):
    """Reads one OPC UA server. Use as ``async with collector: async for r in collector.readings()``."""

    _name = "opcua"

    def __init__(
        self,
        source: OpcUaSource,
        *,
        on_dead_letter: Callable[[DeadLetter], None] | None = None,
        clock: Callable[[], datetime] = _utc_now,
        backoff: Backoff | None = None,
        retry_failed_s: float = 30.0,
        state_dir: Path = Path("plantstream-data"),
    ) -> None:
        """Prepare a collector for ``source``.

        Args:
            source: the validated source from the plant file.
            on_dead_letter: receives values that cannot become readings (e.g. arrays).
            clock: the ingest time (tests pass their own).
            backoff: reconnect delays; default 0.5 s doubling to 30 s, with jitter.
            retry_failed_s: how often items that failed are tried again.
            state_dir: where the application certificate is generated on first use and kept
                (``<state_dir>/pki/<source id>/``); needed for Sign and SignAndEncrypt.
        """
        self.source = source
        self.health = OpcUaHealth()
        self._on_dead_letter = on_dead_letter
        self._clock = clock
        self._backoff = backoff or Backoff()
        self._retry_failed_s = retry_failed_s
        super().__init__(source.id, source.queue.size, source.queue.overflow)
        self._items = [
            _Item(tag, group, handle)
            for handle, (tag, group) in enumerate(((t, g) for g in source.groups for t in g.tags), start=100)
        ]
        self._by_handle = {item.handle: item for item in self._items}
        self._seq = 0
        self._warned: set[str] = set()
        # Each subscription of the session and when it was made: the watchdog's charge.
        self._watched: list[tuple[Subscription, float]] = []
        # Fast-path values that came before the session's catch-up was out; None once it is.
        self._held: list[Value] | None = None
        # When the watchdog last saw the publish loop wait for room in the queue (block).
        self._waited_at = 0.0
        self._pki = state_dir / "pki" / source.id
        self._events = opcua_events.EventReasons(source.id, source.events) if source.events else None
        if self._events is not None:
            self.health.events = self._events.health

    def resume(self, delivered: Mapping[tuple[str, str], datetime]) -> None:
        """Start from what a checkpoint says was delivered: (machine, signal) -> newest event time.

        After the pipeline's own restart, the backfill from history starts there for each tag
        (what was delivered after the checkpoint was lost with the process, so it is read again).
        """
        for item in self._items:
            moment = delivered.get((item.tag.machine, item.tag.signal))
            if moment is not None:
                item.delivered = _aware(moment)

    # -- the one reconnect loop -----------------------------------------------------------------

    async def _session_loop(self) -> None:
        while True:
            client = self._new_client()
            try:
                await self._secure(client)
                await client.connect()
                try:
                    self._follow_revised_timeout(client)
                    self.health.connected = True
                    self.health.connects += 1
                    self.health.last_error = None
                    self._backoff.reset()
                    _log.info("source %s: connected to %s", self.source.id, self.source.endpoint)
                    await self._session(client)
                finally:
                    await self._close(client)
            except* _Silent:
                self._failed(
                    f"no data and no keep-alive for {self.source.watchdog_s:g} s; rebuilding the session"
                )
            except* _TRANSIENT as group:
                self._failed(_describe(group.exceptions[0]))
            except* UntrustedServer as group:
                self._failed(str(group.exceptions[0]))
            except* Exception as group:
                # Anything else from the client library: the session is rebuilt, the loop never dies.
                first = group.exceptions[0]
                _log.warning("source %s: unexpected %s", self.source.id, type(first).__name__, exc_info=first)
                self._failed(f"unexpected {type(first).__name__}: {first}")
            was_connected = self.health.connected
            self.health.connected = False
            if was_connected:
                self.health.reconnects += 1
            await asyncio.sleep(self._backoff.next_delay())

    def _new_client(self) -> Client:
        """A fresh client whose liveness checks tell a busy server from a lost one.

        asyncua probes the server every ``watchdog_intervall`` with that much time to answer (1 s
        by default): one busy second on the server or this host dropped the session, and the
        server kept the old one with its subscriptions. The probe runs every ``timeout_s`` (or a
        third of the session timeout, if shorter, so the probe also keeps the session alive) and
        gets as long to answer. asyncua 2 also re-creates a subscription that has published
        nothing for 1.5 keep-alive periods, which drops the values the server still holds for it;
        a stalled server is not a lost subscription, so that is switched off and this
        collector's own watchdog, per subscription, rebuilds the whole session instead
        (``watchdog_s``), with the catch-up read.
        """
        source = self.source
        client = Client(
            source.endpoint,
            timeout=source.timeout_s,
            watchdog_intervall=min(source.timeout_s, source.session_timeout_s / 3),
        )
        client.session_timeout = source.session_timeout_s * 1000
        # A private attribute (asyncua is pinned below 3; tests/unit/collectors covers it).
        client._stale_check_margin = math.inf
        return client

    def _follow_revised_timeout(self, client: Client) -> None:
        """Probe often enough for the session timeout the server granted (it may shorten ours)."""
        revised_s = client.session_timeout / 1000
        if revised_s < self.source.session_timeout_s:
            _log.info(
                "source %s: the server shortened the session timeout to %g s", self.source.id, revised_s
            )
            client._watchdog_intervall = min(self.source.timeout_s, revised_s / 3)

    async def _close(self, client: Client) -> None:
        """Close the session and its channel, best effort and bounded.

        A server keeps a session that has subscriptions after its connection is gone, until the
        session timeout; closing it spares the server those leftovers on every rebuild. A server
        that does not answer in ``_CLOSE_TIMEOUT_S`` gets its socket closed instead.
        """
        try:
            await asyncio.wait_for(client.disconnect(), _CLOSE_TIMEOUT_S)
        except (TimeoutError, *_TRANSIENT):
            pass  # the server is gone or stalled: it times the session out itself
        finally:
            # asyncua leaves the socket open when its supervisor has already marked the connection
            # lost (a probe that timed out), and a close cut short never reaches it: close it here.
            protocol = client.uaclient.protocol
            if protocol is not None:
                protocol.disconnect_socket()

    def _failed(self, text: str) -> None:
        message = f"source {self.source.id}: {self.source.endpoint}: {text}"
        if self.health.connected or self.health.last_error != message:
            _log.warning("%s; reconnecting with back-off", message)
        self.health.last_error = message

    async def _session(self, client: Client) -> None:
        lost: asyncio.Future[Exception] = asyncio.get_running_loop().create_future()

        async def on_lost(exc: Exception) -> None:
            if not lost.done():
                lost.set_result(exc)

        # asyncua's supervisor notices a lost connection (its probe, see _new_client); we rebuild.
        client.connection_lost_callback = on_lost
        fast = opcua_fastpath.install(client)
        # The subscriptions' values wait here until the catch-up is out (see _take_values).
        self._held = []
        await self._resolve(client)
        limit = await self._items_per_call(client)
        self._watched = []
        await self._check_history(client, limit)
        # The current values first, then the subscriptions: their first notifications repeat those
        # values or follow them. Read after subscribing, the values would overtake changes queued
        # on the server in between and make them arrive late.
        caught = await self._catch_up_read(client)
        # With a gap to read back from history, the catch-up values wait for it, and so do the
        # subscriptions' values (they queue; see below): the history read may take a while.
        gaps = [self._gap(item, data) for item, data in caught]
        live = asyncio.Event()
        if not any(gaps):
            await self._catch_up(client, caught, gaps)
            live.set()
            await self._release_held()
        async with asyncio.TaskGroup() as tasks:
            subscriptions: list[tuple[Subscription, OpcUaGroup]] = []
            for index, group in enumerate(self.source.groups):
                members = [
                    i
                    for i in self._items
                    if i.group is group and i.node is not None and i.label not in self.health.items_failed
                ]
                if group.mode == "poll":
                    tasks.create_task(
                        self._poll(client, group, live), name=f"opcua[{self.source.id}].poll{index}"
                    )
                    continue
                unchanged = self._unchanged(group)
                take = self._take_values if unchanged is None else self._noting(unchanged)
                sub = await self._subscription(client, group, fast, take)
                subscriptions.append((sub, group))
                await self._monitor(sub, group, members, limit)
                tasks.create_task(self._consume(sub, live=live), name=f"opcua[{self.source.id}].sub{index}")
                if unchanged is not None:
                    tasks.create_task(
                        self._repeat_unchanged(sub, group, unchanged, live),
                        name=f"opcua[{self.source.id}].unchanged{index}",
                    )
            heartbeat = await self._subscription(client, None, fast, _ignore)
            await heartbeat.subscribe_data_change(client.get_node(_CURRENT_TIME), sampling_interval=1000.0)
            tasks.create_task(self._consume(heartbeat, heartbeat=True), name=f"opcua[{self.source.id}].clock")
            if self._events is not None:
                await self._subscribe_events(client, self._events, fast, tasks)
            tasks.create_task(self._watchdog(), name=f"opcua[{self.source.id}].watchdog")
            tasks.create_task(self._until_lost(lost), name=f"opcua[{self.source.id}].lost")
            tasks.create_task(
                self._retry(client, subscriptions, limit), name=f"opcua[{self.source.id}].retry"
            )
            if not live.is_set():
                # The subscriptions exist, so nothing changing meanwhile is lost: it waits (held,
                # bounded, drops counted; see _take_values) until the backfill and the catch-up are out.
                await self._catch_up(client, caught, gaps)
                live.set()
                await self._release_held()

    async def _subscribe_events(
        self,
        client: Client,
        events: opcua_events.EventReasons,
        fast: opcua_fastpath.FastPath,
        tasks: asyncio.TaskGroup,
    ) -> None:
        """A&C events as reasons (:mod:`collectors.opcua_events`), on a subscription of their own."""
        namespaces: dict[str, int] = {}

        async def resolve(text: str) -> ua.NodeId:
            return (await self._node_by_id(client, text, namespaces)).nodeid

        sub = await self._subscription(client, None, fast)
        await events.subscribe(client, sub, resolve)
        tasks.create_task(
            events.consume(client, sub, self._put_reason), name=f"opcua[{self.source.id}].events"
        )

    async def _put_reason(self, change: opcua_events.Transition) -> None:
        self._seq += 1
        ingest = self._clock()
        reading = ReadingTuple(
            ts=change.ts,
            machine=change.machine,
            signal=change.signal,
            value=change.value,
            quality=Quality.GOOD,
            status_code=None,
            server_ts=None,
            ingest_ts=ingest,
            source=self.source.id,
            seq=self._seq,
            backfilled=False,
        )
        self.health.readings += 1
        self.health.last_data = ingest
        await self._queue.put(reading)

    async def _secure(self, client: Client) -> None:
        thumbprint = await secure_client(client, self.source.security, self.source.id, self._pki)
        if thumbprint is not None and self.health.client_certificate_sha256 != thumbprint:
            self.health.client_certificate_sha256 = thumbprint
            _log.info("source %s: application certificate SHA-256 %s", self.source.id, thumbprint)

    # -- subscriptions ------------------------------------------------------------------------------

    async def _subscription(
        self,
        client: Client,
        group: OpcUaGroup | None,
        fast: opcua_fastpath.FastPath,
        take: opcua_fastpath.Take | None = None,
    ) -> Subscription:
        params = ua.CreateSubscriptionParameters()
        interval_ms = group.publishing_interval_ms if group else 1000
        keep_alive = self._keep_alive_count(interval_ms)
        params.RequestedPublishingInterval = interval_ms
        # The server drops a subscription after this many silent intervals without a Publish
        # request; the spec asks for at least three keep-alive periods.
        params.RequestedLifetimeCount = max(10_000, 3 * keep_alive)
        params.RequestedMaxKeepAliveCount = keep_alive
        params.PublishingEnabled = True
        sub = await client.create_subscription(
            params, queue_maxsize=4 * self.source.queue.size, overflow=OverflowPolicy.DROP_OLDEST
        )
        self._watched.append((sub, time.monotonic()))
        # asyncua applies the overflow policy without counting; wrap its hook so the drops are counted
        # (a private method: asyncua is pinned below 3 and a test covers it).
        overflow = sub._handle_overflow

        def counted(event: Any) -> None:
            self.health.dropped_events += 1
            overflow(event)

        sub._handle_overflow = counted
        # Servers commonly group a publish response's notifications by monitored item (asyncua's
        # does): all of one tag's queued values, then all of the next tag's. Emitted in that order, a
        # machine's readings would go back in time by up to a publishing interval (at a simulator's
        # speed 60, 500 ms is 30 s of event time) and count as late. The values of one response
        # are emitted in event-time order instead (a stable sort, so one tag's values keep their
        # order). Also a private method, wrapped for the same reason as above.
        explode = sub._explode_datachange

        def in_time_order(datachange: ua.DataChangeNotification) -> Any:
            datachange.MonitoredItems = sorted(
                datachange.MonitoredItems, key=lambda notification: self._event_order(notification.Value)
            )
            return explode(datachange)

        sub._explode_datachange = in_time_order
        fast.attach(sub, self._in_time_order, take)
        return sub

    def _keep_alive_count(self, interval_ms: float) -> int:
        """Publishing intervals between keep-alives for a subscription publishing every ``interval_ms``.

        A keep-alive at least every ``timeout_s`` and three in every ``watchdog_s``: a quiet
        subscription is never taken for a dead one.
        """
        period_s = min(self.source.timeout_s, self.source.watchdog_s / 3)
        return max(1, int(period_s * 1000 // interval_ms))

    # -- unchanged values taken again ---------------------------------------------------------------

    def _unchanged(self, group: OpcUaGroup) -> UnchangedValues[_Item] | None:
        """This session's clock for a group whose silent tags are taken again; None without repeats."""
        if not group.repeats_unchanged or self.source.timestamps != "source":
            return None
        assert group.repeat_unchanged_s is not None
        # Never more often than two publishing intervals: a tag is silent for one between messages.
        every = max(group.repeat_unchanged_s, 2 * group.publishing_interval_ms / 1000)
        return UnchangedValues(timedelta(seconds=every))

    def _noting(self, unchanged: UnchangedValues[_Item]) -> opcua_fastpath.Take:
        """The fast path's take for a group with repeats: also note the newest event time delivered."""
        take = self._take_values

        def noting(values: list[Value]) -> Coroutine[Any, Any, None] | None:
            # Values come in event-time order (per notification): the newest is at the end.
            for value in reversed(values):
                if value[3] is not None:
                    unchanged.delivered(value[3], time.monotonic())
                    break
            return take(values)

        return noting

    async def _repeat_unchanged(
        self, sub: Subscription, group: OpcUaGroup, unchanged: UnchangedValues[_Item], live: asyncio.Event
    ) -> None:
        """Take the last value of each tag the live subscription has not reported for the period again.

        See :mod:`collectors.opcua_unchanged`. A repeat is a reading like any other (recorded, so
        ``replay`` gives the same points), dated at the source's time the subscription vouches for.
        """
        members = [item for item in self._items if item.group is group]
        failed = self.health.items_failed
        await live.wait()
        every_s = unchanged.every.total_seconds()
        while True:
            await asyncio.sleep(min(every_s / 4, 5.0))
            live_items = (item for item in members if item.monitored is not None and item.label not in failed)
            at, due = unchanged.due(((item, _taken(item)) for item in live_items), sub.last_publish_at or 0.0)
            if at is None or not due:
                continue
            # The repeats carry the vouched time, not a new sample: each item's ``last`` (what a
            # catch-up read or a re-sent notification is compared with) stays the real sample.
            samples = [(item, item.last) for item in due]
            values: list[Value] = [
                (item.handle, last[1], last[2], at, None, None, None) for item, last in samples if last
            ]
            readings = self._readings(values, subscribed=False)
            for item, last in samples:
                item.last = last
                item.repeated = at
            self.health.unchanged_repeats += len(readings)
            if readings:
                await self._queue.put_many(readings)

    # -- liveness -----------------------------------------------------------------------------------

    @staticmethod
    async def _until_lost(lost: asyncio.Future[Exception]) -> None:
        exc = await lost
        raise ConnectionError(f"connection lost ({_describe(exc)})")

    async def _watchdog(self) -> None:
        """Give up on a session one of whose subscriptions has published nothing for ``watchdog_s``.

        A server sends a keep-alive at least three times a ``watchdog_s`` (see
        ``_keep_alive_count``), and the server clock's subscription changes every second, so
        such silence is a stuck server or session, not a quiet machine. (Polled groups need no
        watchdog: each read has ``timeout_s`` to answer.)
        Under ``block``, time the publish loop spends waiting for room in the queue is not silence.
        """
        queue = self._queue
        while True:
            await asyncio.sleep(min(1.0, self.source.watchdog_s / 4))
            now = time.monotonic()  # the clock asyncua stamps ``last_publish_at`` with
            if queue.policy == "block" and not queue.room():
                # The publish loop waits for the reader (see _take_values), so no response is
                # read: that silence is ours, not the server's. The clock starts again after it.
                self._waited_at = now
            for sub, made_at in self._watched:
                if now - max(sub.last_publish_at or made_at, self._waited_at) > self.source.watchdog_s:
                    # Counted before the teardown, which may take up to _CLOSE_TIMEOUT_S.
                    self.health.watchdog_trips += 1
                    raise _Silent


def _ignore(values: list[Value]) -> None:
    """The heartbeat subscription's take: its values only show the subscription lives."""


def _taken(item: _Item) -> Taken | None:
    """An item's last sample as taken: its time is that of the last repeat when that is later."""
    last = item.last
    if last is None or item.repeated is None or item.repeated <= last[0]:
        return last
    return (item.repeated, last[1], last[2])


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is the server running and the endpoint right?)"
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
