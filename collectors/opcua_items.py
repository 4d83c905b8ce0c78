"""The OPC UA collector's items on the server: node ids resolved, monitored items made and retried.

The lowest layer of :class:`collectors.opcua.OpcUaCollector`: the attributes declared here are
set by its constructor.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Sequence

from asyncua import Client, Node, ua
from asyncua.common.subscription import Subscription

from collectors.base import Collector
from collectors.opcua_state import OpcUaHealth, _Item
from plantstream.plant.schema import OpcUaGroup, OpcUaSource, OpcUaTag

__all__ = ["OpcUaItems"]

# The collector's one logger, whichever layer logs: operators filter on it.
_log = logging.getLogger("plantstream.collectors.opcua")
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


class OpcUaItems(Collector):
    """Each configured item's node in the session, its monitored item, and the retry of failed ones."""

    source: OpcUaSource
    health: OpcUaHealth
    _items: list[_Item]
    _warned: set[str]
    _retry_failed_s: float

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
