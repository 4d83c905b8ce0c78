"""The OPC UA collector's reads: the catch-up read after every connect, backfill from history, polling.

Values read (rather than subscribed to) go through :class:`collectors.opcua_values.OpcUaValues`
like every other; history is read with :mod:`collectors.opcua_history`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from asyncua import Client, ua

from collectors import opcua_history
from collectors.opcua_state import _Item
from collectors.opcua_values import _NODE_GONE, OpcUaValues, _aware, _fields
from plantstream.plant.schema import OpcUaGroup

__all__ = ["OpcUaReads"]

# The collector's one logger, whichever layer logs: operators filter on it.
_log = logging.getLogger("plantstream.collectors.opcua")


class OpcUaReads(OpcUaValues):
    """Values read from the server: every item's current one, a gap's from history, a polled group's."""

    @property
    def backfills(self) -> bool:
        """Whether this source reads gaps back from history (its setting, under source time)."""
        return self.source.history.enabled and self.source.timestamps == "source"

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
