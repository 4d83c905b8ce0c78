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
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import re
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from asyncua import Client, Node, ua
from asyncua.common.subscription import DataChangeEvent, OverflowPolicy, StatusChangeEvent, Subscription

from collectors import opcua_binary, opcua_events, opcua_fastpath, opcua_history
from collectors.backoff import Backoff
from collectors.base import Collector
from collectors.opcua_publish import Value
from collectors.opcua_security import UntrustedServer, secure_client
from collectors.opcua_unchanged import Taken, UnchangedValues
from plantstream.plant.schema import OpcUaGroup, OpcUaSource, OpcUaTag
from plantstream.records import DeadLetter, Quality, Reading

__all__ = ["OpcUaCollector", "OpcUaHealth", "UntrustedServer"]

_log = logging.getLogger("plantstream.collectors.opcua")
# asyncua misreads the ServerTimestamp of a DataValue that carries SourcePicoseconds (see
# collectors/opcua_binary.py); decode DataValues in the order the specification gives.
opcua_binary.install()
_CURRENT_TIME = ua.NodeId(ua.ObjectIds.Server_ServerStatus_CurrentTime)
_MAX_ITEMS_PER_CALL = ua.NodeId(
    ua.ObjectIds.Server_ServerCapabilities_OperationLimits_MaxMonitoredItemsPerCall
)
_NSU = re.compile(r"^nsu=([^;]+);(.+)$")
_TRIGGERS = {
    "status": ua.DataChangeTrigger.Status,
    "status_value": ua.DataChangeTrigger.StatusValue,
    "status_value_timestamp": ua.DataChangeTrigger.StatusValueTimestamp,
}
_DEADBANDS = {
    "none": ua.DeadbandType.None_,
    "absolute": ua.DeadbandType.Absolute,
    "percent": ua.DeadbandType.Percent,
}
_TRANSIENT = (OSError, TimeoutError, ConnectionError, ua.UaError)
# How long closing a session may take before its socket is simply closed (see _close).
_CLOSE_TIMEOUT_S = 5.0
_NODE_GONE = frozenset({ua.StatusCodes.BadNodeIdUnknown, ua.StatusCodes.BadNodeIdInvalid})


def _utc_now() -> datetime:
    return datetime.now(tz=UTC)


class _Silent(Exception):
    """The watchdog saw nothing for too long."""


@dataclass
class OpcUaHealth:
    """What an operator needs to know about one OPC UA source."""

    connected: bool = False
    connects: int = 0
    reconnects: int = 0
    notifications: int = 0
    readings: int = 0
    items_ok: int = 0
    items_failed: dict[str, str] = field(default_factory=dict)
    dropped_events: int = 0
    watchdog_trips: int = 0
    last_data: datetime | None = None
    last_error: str | None = None
    skew_server_minus_source_s: float | None = None
    skew_ingest_minus_server_s: float | None = None
    repeats: int = 0
    """Notifications dropped as the same sample again (source time, value, status), e.g. the
    first notification of a subscription repeating what the catch-up read has just taken."""
    timestamp_fallbacks: int = 0
    """Readings whose time is a fallback: the server left out the timestamp the policy names."""
    client_certificate_sha256: str | None = None
    history_nodes: int = 0
    """Items whose node keeps history, as this session's check found."""
    backfilled: int = 0
    """Readings read back from the server's history after an outage."""
    history_problems: int = 0
    """History reads of a node that went wrong (bad status, garbage, no answer); each is logged
    once per node and reason, and that node's backfill stops for the session."""
    history_outside: int = 0
    """History values the server sent outside the range asked for (dropped)."""
    events: opcua_events.EventHealth | None = None
    """Alarms & Conditions events as reasons, where the source subscribes to them."""
    history_truncated: int = 0
    """Gaps only partly read back: longer than ``history.max_span_s`` (its newest part was read)
    or holding more values than the node's bound (its oldest ones were read)."""
    unchanged_repeats: int = 0
    """Readings of a tag's last value taken again because a live subscription had not reported
    it for ``repeat_unchanged_s`` (report by exception made explicit)."""


@dataclass
class _Item:
    tag: OpcUaTag
    group: OpcUaGroup
    handle: int
    node: Node | None = None
    monitored: tuple[Subscription, int] | None = None  # the subscription and server-side item id
    # The last value taken, as (SourceTimestamp, value, status code): a subscription's first
    # notification repeats the value the catch-up read has just taken.
    last: tuple[datetime, Any, int] | None = None
    # The newest SourceTimestamp delivered: where a backfill from history starts.
    delivered: datetime | None = None
    # Whether the node keeps history (AccessLevel HistoryRead and Historizing), this session.
    history: bool = False
    # When its last value was last taken again unchanged (repeat_unchanged_s); ``last`` keeps the
    # sample itself, so that a catch-up read of the same sample is still known as a repeat.
    repeated: datetime | None = None

    @property
    def label(self) -> str:
        return self.tag.node or self.tag.browse_path or "?"


class OpcUaCollector(Collector):
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

    @property
    def backfills(self) -> bool:
        """Whether this source reads gaps back from history (its setting, under source time)."""
        return self.source.history.enabled and self.source.timestamps == "source"

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
        reading = Reading.trusted(
            ts=change.ts,
            machine=change.machine,
            signal=change.signal,
            value=change.value,
            source=self.source.id,
            seq=self._seq,
            ingest_ts=ingest,
        )
        self.health.readings += 1
        self.health.last_data = ingest
        await self._queue.put(reading)

    async def _secure(self, client: Client) -> None:
        thumbprint = await secure_client(client, self.source.security, self.source.id, self._pki)
        if thumbprint is not None and self.health.client_certificate_sha256 != thumbprint:
            self.health.client_certificate_sha256 = thumbprint
            _log.info("source %s: application certificate SHA-256 %s", self.source.id, thumbprint)

    # -- items ------------------------------------------------------------------------------------

    async def _resolve(self, client: Client) -> None:
        """Turn every configured address into a node of this session; record what fails."""
        namespaces: dict[str, int] = {}
        self.health.items_failed.clear()
        for item in self._items:
            item.node = None
            try:
                item.node = await self._node(client, item.tag, namespaces)
            except (ValueError, ua.UaError) as exc:
                self.health.items_failed[item.label] = str(exc)
        self._report_failures()

    async def _node(self, client: Client, tag: OpcUaTag, namespaces: dict[str, int]) -> Node:
        if tag.browse_path is not None:
            try:
                return await client.nodes.root.get_child(tag.browse_path.split("/"))
            except ua.UaStatusCodeError as exc:
                raise ValueError(f"browse path not found on the server ({exc})") from None
        assert tag.node is not None
        return await self._node_by_id(client, tag.node, namespaces)

    async def _node_by_id(self, client: Client, text: str, namespaces: dict[str, int]) -> Node:
        """The node a plant-file node id names in this session (``nsu=`` resolved to its index)."""
        found = _NSU.match(text)
        if found is None:
            if text.startswith("ns=") and text not in self._warned:
                self._warned.add(text)
                _log.warning(
                    "source %s: %s names a namespace by index, which can change when the server restarts; "
                    "prefer nsu=<namespace URI>;...",
                    self.source.id,
                    text,
                )
            return client.get_node(ua.NodeId.from_string(text))
        uri, rest = found.groups()
        if uri not in namespaces:
            array = await client.get_namespace_array()
            if uri not in array:
                raise ValueError(
                    f"namespace URI {uri!r} is not on the server (it has {len(array)} namespaces)"
                )
            namespaces[uri] = array.index(uri)
        return client.get_node(ua.NodeId.from_string(f"ns={namespaces[uri]};{rest}"))

    async def _items_per_call(self, client: Client) -> int:
        try:
            published = await client.get_node(_MAX_ITEMS_PER_CALL).read_value()
        except ua.UaError:
            published = 0
        cap = self.source.max_items_per_call
        return min(cap, int(published)) if published else cap

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

    def _in_time_order(self, values: list[Value]) -> list[Value]:
        """The fast path's values of one notification in event-time order, as ``in_time_order`` above."""
        if self.source.timestamps == "ingest":
            return values  # every value's time is when it is taken: the order stays
        order = self._order
        return sorted(values, key=lambda value: order(value[3], value[5]))

    def _keep_alive_count(self, interval_ms: float) -> int:
        """Publishing intervals between keep-alives for a subscription publishing every ``interval_ms``.

        A keep-alive at least every ``timeout_s`` and three in every ``watchdog_s``: a quiet
        subscription is never taken for a dead one.
        """
        period_s = min(self.source.timeout_s, self.source.watchdog_s / 3)
        return max(1, int(period_s * 1000 // interval_ms))

    def _event_order(self, data: ua.DataValue | None) -> datetime:
        """What orders the values of one response: the policy's time, a missing one last."""
        if data is None:
            return _LAST
        return self._order(data.SourceTimestamp, data.ServerTimestamp)

    def _order(self, source_ts: datetime | None, server_ts: datetime | None) -> datetime:
        policy = self.source.timestamps
        moment = None
        if policy == "source":
            moment = _aware(source_ts) or _aware(server_ts)
        elif policy == "server":
            moment = _aware(server_ts)
        # Under "ingest", and for a value without the timestamp, the time is when it is taken,
        # which is after every value already received.
        return moment or _LAST

    async def _monitor(
        self, sub: Subscription, group: OpcUaGroup, items: Sequence[_Item], limit: int
    ) -> None:
        """Create monitored items in batches of at most ``limit``; record per-item failures."""
        for start in range(0, len(items), limit):
            batch = list(items[start : start + limit])
            results = await sub.create_monitored_items([self._request(item, group) for item in batch])
            for item, result in zip(batch, results, strict=True):
                if isinstance(result, ua.StatusCode):
                    self.health.items_failed[item.label] = result.name
                else:
                    item.monitored = (sub, result)
                    self.health.items_failed.pop(item.label, None)
        self.health.items_ok = len(self._items) - len(self.health.items_failed)
        self._report_failures()

    def _request(self, item: _Item, group: OpcUaGroup) -> ua.MonitoredItemCreateRequest:
        assert item.node is not None
        target = ua.ReadValueId()
        target.NodeId = item.node.nodeid
        target.AttributeId = ua.AttributeIds.Value
        params = ua.MonitoringParameters()
        params.ClientHandle = item.handle
        params.SamplingInterval = group.sampling_interval_ms
        params.QueueSize = group.queue_size
        params.DiscardOldest = group.discard_oldest
        change = ua.DataChangeFilter()
        change.Trigger = _TRIGGERS[group.trigger]
        change.DeadbandType = _DEADBANDS[group.deadband.type]
        change.DeadbandValue = group.deadband.value
        params.Filter = change
        request = ua.MonitoredItemCreateRequest()
        request.ItemToMonitor = target
        request.MonitoringMode = ua.MonitoringMode.Reporting
        request.RequestedParameters = params
        return request

    def _report_failures(self) -> None:
        for label, error in self.health.items_failed.items():
            key = f"{label}:{error}"
            if key not in self._warned:
                self._warned.add(key)
                _log.warning(
                    "source %s: item %s failed: %s; retrying it on its own", self.source.id, label, error
                )

    async def _retry(
        self, client: Client, subscriptions: list[tuple[Subscription, OpcUaGroup]], limit: int
    ) -> None:
        while True:
            await asyncio.sleep(self._retry_failed_s)
            failed = [i for i in self._items if i.label in self.health.items_failed]
            if not failed:
                continue
            namespaces: dict[str, int] = {}
            for item in failed:
                try:
                    item.node = await self._node(client, item.tag, namespaces)
                except (ValueError, ua.UaError) as exc:
                    self.health.items_failed[item.label] = str(exc)
            for item in failed:
                if item.monitored is not None:
                    # The server may still hold the item of a node that went away: drop it first.
                    old_sub, server_id = item.monitored
                    item.monitored = None
                    with contextlib.suppress(ua.UaError):
                        await old_sub.unsubscribe(server_id)
            for sub, group in subscriptions:
                members = [i for i in failed if i.group is group and i.node is not None]
                if members:
                    await self._monitor(sub, group, members, limit)

    # -- values to readings -----------------------------------------------------------------------

    async def _consume(
        self, sub: Subscription, heartbeat: bool = False, live: asyncio.Event | None = None
    ) -> None:
        """What reaches a subscription's iterator: the responses the fast path declined.

        Values decoded by asyncua become readings like the fast path's (one at a time: they are
        rare); a bad status change ends the session. A heartbeat's values are ignored.
        """
        if live is not None:
            await live.wait()
        async for event in sub:
            if event.__class__ is tuple:
                # A fast-path value delivered one by one (a subscription attached without a take).
                if heartbeat:
                    continue
                handle, value, code, source_ts, _, server_ts, _ = event
            elif isinstance(event, StatusChangeEvent) and not event.notification.Status.is_good():
                raise ConnectionError(f"subscription status {event.notification.Status.name}")
            elif heartbeat or not isinstance(event, DataChangeEvent):
                continue
            else:
                handle = event.data.subscription_data.client_handle
                value, code, source_ts, server_ts = _fields(event.data.monitored_item.Value)
            value_tuple = (handle, value, code, _aware(source_ts), None, _aware(server_ts), None)
            readings = self._readings([value_tuple])
            if readings:
                await self._queue.put_many(readings)

    def _take_values(self, values: list[Value]) -> Coroutine[Any, Any, None] | None:
        """The fast path's take: one Publish response's values (in event-time order) as readings.

        Their readings go into the queue in one call; the publish loop awaits it, so under
        ``block`` a full queue holds the next Publish request back and the server keeps the
        values meanwhile. Until the session's catch-up is out, the values are held instead (at
        most four queues' worth, the oldest dropped and counted in ``health.dropped_events``).
        """
        held = self._held
        if held is not None:
            held += values
            over = len(held) - 4 * self.source.queue.size
            if over > 0:
                del held[:over]
                self.health.dropped_events += over
            return None
        readings = self._readings(values)
        return self._queue.put_many(readings) if readings else None

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

    async def _release_held(self) -> None:
        """Deliver the values held during the catch-up (with any that come meanwhile), then stop holding."""
        while self._held:
            values, self._held = self._held, []
            readings = self._readings(values)
            if readings:
                await self._queue.put_many(readings)
        self._held = None

    def _readings(
        self, values: list[Value], *, backfilled: bool = False, subscribed: bool = True
    ) -> list[Reading]:
        """Turn values (timestamps UTC or None) into readings, in order, in one pass.

        Per value: a value of a handle no item has is ignored; a subscription's (``subscribed``)
        value that repeats the item's last sample (same source time, value and status) is counted
        in ``health.repeats`` and skipped; a node-gone status marks the item failed; a value of
        an unsupported type is dead-lettered; no value means quality bad; the time follows the
        source's policy, its fallbacks counted. Once per call: the ingest time, the skews (of
        the last value that has them) and the health counters.
        """
        # Looked up once per call, not per value.
        by_handle, failed, trusted = self._by_handle, self.health.items_failed, Reading.trusted
        source_id, source_first = self.source.id, self.source.timestamps == "source"
        ingest, seq = self._clock(), self._seq
        readings: list[Reading] = []
        append = readings.append
        notifications = repeats = 0
        both: tuple[datetime, datetime] | None = None  # the last (server, source) times
        server_last: datetime | None = None
        for handle, value, code, source_at, _, server_at, _ in values:
            item = by_handle.get(handle)
            if item is None:
                continue
            # What _aware does to a fast-path time (already UTC): "before 1602" is no time at all.
            source_ts = None if source_at is None or source_at.year < 1602 else source_at
            server_ts = None if server_at is None or server_at.year < 1602 else server_at
            if subscribed:
                notifications += 1
                if source_ts is not None and item.last == (source_ts, value, code):
                    repeats += 1  # the same sample again (same source time, value and status): not news
                    continue
            quality = _QUALITIES[code >> 30]
            if code in _NODE_GONE and item.label not in failed:
                self._node_gone(item, code)
            plain = value
            if value is None:
                quality = Quality.BAD
            elif value.__class__ not in _PLAIN_TYPES:
                if isinstance(value, datetime) or not isinstance(value, bool | int | float | str):
                    self._dead_letter(
                        item, "unsupported_type", f"a {type(value).__name__} value cannot be a reading", value
                    )
                    continue
                plain = _plain(value)
            if server_ts is not None:
                server_last = server_ts
                if source_ts is not None:
                    both = (server_ts, source_ts)
            if source_first and source_ts is not None:
                ts = source_ts
            else:
                ts = self._event_time(item, source_ts, server_ts, ingest)
            seq += 1
            tag = item.tag
            # Everything validation would check is known here (a plain value or None with quality
            # bad, UTC times, a 32-bit status code): building the reading without validating it
            # again saves about a seventh of the collector's cost per value.
            append(
                trusted(
                    ts=ts,
                    machine=tag.machine,
                    signal=tag.signal,
                    value=plain,
                    quality=quality,
                    status_code=code,
                    server_ts=server_ts,
                    ingest_ts=ingest,
                    source=source_id,
                    seq=seq,
                    backfilled=backfilled,
                )
            )
            # What makes a value the same sample again; None without a SourceTimestamp (no telling).
            if source_ts is not None:
                item.last = (source_ts, value, code)
                if item.delivered is None or source_ts > item.delivered:
                    item.delivered = source_ts
            else:
                item.last = None
        self._seq = seq
        self._tally(len(readings), notifications, repeats, ingest, both, server_last, backfilled=backfilled)
        return readings

    def _tally(
        self,
        readings: int,
        notifications: int,
        repeats: int,
        ingest: datetime,
        both: tuple[datetime, datetime] | None,
        server_ts: datetime | None,
        *,
        backfilled: bool,
    ) -> None:
        """Health after a pass of :meth:`_readings`: the skews of its last values, its counts."""
        health = self.health
        health.notifications += notifications
        health.repeats += repeats
        if both is not None:
            health.skew_server_minus_source_s = (both[0] - both[1]).total_seconds()
        if server_ts is not None:
            health.skew_ingest_minus_server_s = (ingest - server_ts).total_seconds()
        if readings:
            if backfilled:
                health.backfilled += readings
            health.readings += readings
            health.last_data = ingest

    def _node_gone(self, item: _Item, code: int) -> None:
        """The node went away while we were connected: report it and let the retry loop watch it."""
        self.health.items_failed[item.label] = ua.StatusCode(code).name
        self.health.items_ok = len(self._items) - len(self.health.items_failed)
        self._report_failures()

    async def _catch_up_read(self, client: Client) -> list[tuple[_Item, ua.DataValue]]:
        """Read every item's current value at once: counters and states catch up after a reconnect.

        A node the server does not know is recorded as failed (and retried on its own), not
        turned into a reading: it never had a value in this session.
        """
        ready = [i for i in self._items if i.node is not None and i.label not in self.health.items_failed]
        caught = []
        for item, data in zip(ready, await _read_values(client, ready), strict=True):
            code = data.StatusCode.value if data.StatusCode is not None else 0
            if code in _NODE_GONE:
                self.health.items_failed[item.label] = ua.StatusCode(code).name
                continue
            caught.append((item, data))
        self.health.items_ok = len(self._items) - len(self.health.items_failed)
        self._report_failures()
        return caught

    async def _catch_up(
        self,
        client: Client,
        caught: list[tuple[_Item, ua.DataValue]],
        gaps: list[tuple[datetime, datetime] | None],
    ) -> None:
        """Deliver the catch-up values, with what history holds of each item's gap before them.

        All in event-time order, as a publish response's values (see _subscription): the values
        read back from history are older than their item's catch-up value and go before it.
        """
        values: list[tuple[datetime, _Item, Any, int, datetime | None, datetime | None, bool]] = []
        # The values of every gap are held until all are read (they go out in one time order):
        # each node gets an equal share of the session's bound.
        settings = self.source.history
        share = settings.max_values_per_session // max(1, sum(gap is not None for gap in gaps))
        limit = max(1, min(settings.max_values_per_node, share))
        for (item, data), gap in zip(caught, gaps, strict=True):
            if gap is not None:
                for old in await self._read_history(client, item, *gap, limit):
                    value, code, source_ts, server_ts = _fields(old)
                    values.append(
                        (
                            self._event_order(old),
                            item,
                            value,
                            code,
                            _aware(source_ts),
                            _aware(server_ts),
                            True,
                        )
                    )
            value, code, source_ts, server_ts = _fields(data)
            values.append(
                (self._event_order(data), item, value, code, _aware(source_ts), _aware(server_ts), False)
            )
        values.sort(key=lambda entry: entry[0])  # stable: each item's values keep their order
        for _, item, value, code, source_ts, server_ts, backfilled in values:
            if not backfilled and source_ts is not None and item.last == (source_ts, value, code):
                self.health.repeats += 1  # unchanged while the session was down: nothing new
                continue
            await self._emit_value(item, value, code, source_ts, server_ts, backfilled=backfilled)

    # -- history ------------------------------------------------------------------------------------

    async def _check_history(self, client: Client, per_read: int) -> None:
        """Once per session: which items' nodes keep history (two attributes each, in batches).

        A check that fails leaves those nodes without a backfill for the session, counted in
        ``health.history_problems`` and logged once per reason.
        """
        for item in self._items:
            item.history = False
        self.health.history_nodes = 0
        if not self.backfills:
            return
        ready = [i for i in self._items if i.node is not None and i.label not in self.health.items_failed]
        keeps, problem = await opcua_history.keeps_history(
            client, [i.node.nodeid for i in ready if i.node is not None], self.source.timeout_s, per_read
        )
        for item, kept in zip(ready, keeps, strict=True):
            item.history = kept
        self.health.history_nodes = sum(keeps)
        if problem is not None:
            self.health.history_problems += 1
            key = f"history-check:{problem.reason}"
            if key not in self._warned:
                self._warned.add(key)
                _log.warning(
                    "source %s: %s; no backfill for those nodes this session", self.source.id, problem.detail
                )

    def _gap(self, item: _Item, data: ua.DataValue) -> tuple[datetime, datetime] | None:
        """The span of history to read before ``data``, an item's catch-up value; None if none.

        From the newest value delivered (exclusive) to the catch-up value's source time
        (exclusive), at most ``history.max_span_s`` of it (the newest part: older data may be
        beyond the engine's correction horizon anyway).
        """
        if not item.history or item.delivered is None:
            return None
        end = _aware(data.SourceTimestamp)
        if end is None or end <= item.delivered:
            return None
        span = timedelta(seconds=self.source.history.max_span_s)
        if end - item.delivered > span:
            self.health.history_truncated += 1
            self._history_warning(
                item,
                "span",
                f"a gap of {(end - item.delivered).total_seconds():g} s is longer than history.max_span_s; "
                f"reading back its newest {span.total_seconds():g} s",
            )
            return end - span, end
        return item.delivered, end

    async def _read_history(
        self, client: Client, item: _Item, start: datetime, end: datetime, limit: int
    ) -> list[ua.DataValue]:
        """The item's values in ``(start, end)`` from history; problems counted, logged once per node."""
        assert item.node is not None
        settings = self.source.history
        batch = await opcua_history.read_raw(
            client,
            item.node.nodeid,
            start,
            end,
            per_request=settings.values_per_request,
            max_values=limit,
            values_per_s=settings.max_values_per_s,
            timeout_s=self.source.timeout_s,
        )
        if batch.outside:
            self.health.history_outside += batch.outside
            self._history_warning(
                item, "outside", f"the server sent {batch.outside} history values outside the range asked for"
            )
        if batch.truncated:
            self.health.history_truncated += 1
            self._history_warning(
                item,
                "truncated",
                f"more than {limit} values in the gap (history.max_values_per_node, or this node's "
                "share of history.max_values_per_session); the newest were left",
            )
        if batch.problem is not None:
            self.health.history_problems += 1
            item.history = False  # not again in this session
            self._history_warning(item, batch.problem.reason, f"history read failed: {batch.problem.detail}")
        return batch.values

    def _history_warning(self, item: _Item, reason: str, text: str) -> None:
        key = f"{item.label}:history:{reason}"
        if key not in self._warned:
            self._warned.add(key)
            _log.warning("source %s: item %s: %s", self.source.id, item.label, text)

    async def _poll(self, client: Client, group: OpcUaGroup, live: asyncio.Event) -> None:
        members = [i for i in self._items if i.group is group and i.node is not None]
        await live.wait()
        while True:
            values = await _read_values(client, members)
            for item, value in zip(members, values, strict=True):
                await self._emit(item, value)
            await asyncio.sleep(group.poll_interval_ms / 1000)

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

    async def _emit(self, item: _Item, data: ua.DataValue) -> None:
        """Turn one DataValue into a reading, or a dead letter."""
        value, code, source_ts, server_ts = _fields(data)
        await self._emit_value(item, value, code, _aware(source_ts), _aware(server_ts))

    async def _emit_value(
        self,
        item: _Item,
        value: Any,
        code: int,
        source_ts: datetime | None,
        server_ts: datetime | None,
        *,
        backfilled: bool = False,
    ) -> None:
        """Turn one value (its timestamps already UTC, or None) into a reading, or a dead letter."""
        readings = self._readings(
            [(item.handle, value, code, source_ts, None, server_ts, None)],
            backfilled=backfilled,
            subscribed=False,
        )
        if readings:
            await self._queue.put(readings[0])

    def _event_time(
        self, item: _Item, source_ts: datetime | None, server_ts: datetime | None, ingest: datetime
    ) -> datetime:
        """The reading's time under the source's policy; a timestamp the server left out falls back.

        ``source``: SourceTimestamp, else ServerTimestamp, else ingest time. ``server``:
        ServerTimestamp, else ingest time. ``ingest``: always the ingest time. Each fallback is
        counted in ``health.timestamp_fallbacks`` and logged once per item.
        """
        policy = self.source.timestamps
        if policy == "ingest":
            return ingest
        if policy == "source" and source_ts is not None:
            return source_ts
        if server_ts is not None:
            if policy == "source":
                self._fell_back(item, "no SourceTimestamp", "its ServerTimestamp")
            return server_ts
        self._fell_back(item, f"no {policy.capitalize()}Timestamp", "the ingest time")
        return ingest

    def _fell_back(self, item: _Item, missing: str, instead: str) -> None:
        self.health.timestamp_fallbacks += 1
        key = f"{item.label}:{missing}"
        if key not in self._warned:
            self._warned.add(key)
            _log.info(
                "source %s: item %s: the server sent %s; its readings take %s (timestamps: %s)",
                self.source.id,
                item.label,
                missing,
                instead,
                self.source.timestamps,
            )

    def _dead_letter(self, item: _Item, reason: str, error: str, value: Any) -> None:
        key = f"{item.label}:{reason}"
        if key not in self._warned:
            self._warned.add(key)
            _log.warning("source %s: item %s: %s", self.source.id, item.label, error)
        if self._on_dead_letter is not None:
            self._on_dead_letter(
                DeadLetter(
                    ts=self._clock(),
                    source=self.source.id,
                    where=item.label,
                    reason=reason,
                    error=error,
                    raw=repr(value)[:500],
                )
            )


def _ignore(values: list[Value]) -> None:
    """The heartbeat subscription's take: its values only show the subscription lives."""


def _taken(item: _Item) -> Taken | None:
    """An item's last sample as taken: its time is that of the last repeat when that is later."""
    last = item.last
    if last is None or item.repeated is None or item.repeated <= last[0]:
        return last
    return (item.repeated, last[1], last[2])


def _quality(code: int) -> Quality:
    """The StatusCode class from its severity bits (OPC UA Part 4, 7.39): 00 good, 01 uncertain."""
    severity = code >> 30
    if severity == 0:
        return Quality.GOOD
    if severity == 1:
        return Quality.UNCERTAIN
    return Quality.BAD


def _fields(data: ua.DataValue) -> tuple[Any, int, datetime | None, datetime | None]:
    """A DataValue's value, status code, SourceTimestamp and ServerTimestamp (as the fast path gives them)."""
    value = data.Value.Value if data.Value is not None else None
    code = data.StatusCode.value if data.StatusCode is not None else 0
    return value, code, data.SourceTimestamp, data.ServerTimestamp


def _aware(moment: datetime | None) -> datetime | None:
    if moment is None or moment.year < 1601 + 1:
        return None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment if moment.tzinfo is UTC else moment.astimezone(UTC)


_PLAIN_TYPES = frozenset((bool, int, float, str))
# The StatusCode class by its severity bits (see _quality): 00 good, 01 uncertain, 10 and 11 bad.
_QUALITIES = (Quality.GOOD, Quality.UNCERTAIN, Quality.BAD, Quality.BAD)
_LAST = datetime.max.replace(tzinfo=UTC)


def _plain(value: bool | int | float | str) -> bool | int | float | str:
    """The plain type of a subclass value (an IntEnum of an enumeration variable becomes its int)."""
    if isinstance(value, str):
        return str.__str__(value)  # str() of a str enum member would give its name
    for kind in (bool, int, float):
        if isinstance(value, kind):
            return kind(value)
    raise TypeError(f"not a plain value: {value!r}")


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is the server running and the endpoint right?)"
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


async def _read_values(client: Client, items: Sequence[_Item]) -> list[ua.DataValue]:
    """One Read of the Value attribute of ``items``, with both timestamps."""
    if not items:
        return []
    params = ua.ReadParameters()
    for item in items:
        assert item.node is not None
        target = ua.ReadValueId()
        target.NodeId = item.node.nodeid
        target.AttributeId = ua.AttributeIds.Value
        params.NodesToRead.append(target)
    params.TimestampsToReturn = ua.TimestampsToReturn.Both
    values: list[ua.DataValue] = await client.uaclient.read(params)
    return values
