"""The OPC UA collector's values to readings: quality, the reading's time, repeats, dead letters.

The layer of :class:`collectors.opcua.OpcUaCollector` that every value passes through, from the
fast path (:mod:`collectors.opcua_publish`), asyncua's own decoding, reads and history alike.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

from asyncua import ua
from asyncua.common.subscription import DataChangeEvent, StatusChangeEvent, Subscription

from collectors.opcua_items import OpcUaItems
from collectors.opcua_publish import Value
from collectors.opcua_state import _Item
from plantstream.records import DeadLetter, Quality, ReadingTuple, reading_tuple

__all__ = ["OpcUaValues"]

# The collector's one logger, whichever layer logs: operators filter on it.
_log = logging.getLogger("plantstream.collectors.opcua")
_NODE_GONE = frozenset({ua.StatusCodes.BadNodeIdUnknown, ua.StatusCodes.BadNodeIdInvalid})


class OpcUaValues(OpcUaItems):
    """Values (with their timestamps and status codes) made readings, in order, and queued."""

    _by_handle: dict[int, _Item]
    _seq: int
    _held: list[Value] | None
    _clock: Callable[[], datetime]
    _on_dead_letter: Callable[[DeadLetter], None] | None

    def _in_time_order(self, values: list[Value]) -> list[Value]:
        """The fast path's values of one notification in event-time order, as ``in_time_order`` above."""
        if self.source.timestamps == "ingest":
            return values  # every value's time is when it is taken: the order stays
        order = self._order
        return sorted(values, key=lambda value: order(value[3], value[5]))

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
    ) -> list[ReadingTuple]:
        """Turn values (timestamps UTC or None) into readings, in order, in one pass.

        Per value: a value of a handle no item has is ignored; a subscription's (``subscribed``)
        value that repeats the item's last sample (same source time, value and status) is counted
        in ``health.repeats`` and skipped; a node-gone status marks the item failed; a value of
        an unsupported type is dead-lettered; no value means quality bad; the time follows the
        source's policy, its fallbacks counted. Once per call: the ingest time, the skews (of
        the last value that has them) and the health counters.
        """
        # Looked up once per call, not per value.
        by_handle, failed, make = self._by_handle, self.health.items_failed, reading_tuple
        source_id, source_first = self.source.id, self.source.timestamps == "source"
        ingest, seq = self._clock(), self._seq
        readings: list[ReadingTuple] = []
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
            # bad, UTC times, a 32-bit status code): the reading is a tuple of its fields. Validating
            # cost a seventh of the collector's time per value, and an unvalidated Reading object
            # about a quarter of what was left (docs/benchmarks.md).
            append(
                make(
                    (
                        ts,
                        tag.machine,
                        tag.signal,
                        plain,
                        quality,
                        code,
                        server_ts,
                        ingest,
                        source_id,
                        seq,
                        backfilled,
                    )
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
