"""The simulator's tags keep history: every value written is also stored, so a client can read it back.

asyncua's server answers HistoryRead from its in-memory history (``HistoryDict``, OPC UA Part 11
raw reads with continuation points). Its own way in, ``Server.historize_node_data_change``,
stores what an internal subscription samples: several writes of one tag within its publishing
interval (the simulator at speed 60 writes a power sample every simulated second, six per step)
would keep only the last. Each value is therefore stored as it is written, and the node is marked
as keeping history the way that method does it: ``Historizing`` true and the HistoryRead bit of
AccessLevel and UserAccessLevel (OPC UA Part 3, 5.6.2 and 8.57).

The cost is bounded: at most ``count`` values per tag are kept (the oldest go first), each a
``DataValue`` of about 320 bytes (a Double with both timestamps, measured with ``tracemalloc``):
the demonstration line's 16 tags at the simulator's default of 3 600 keep about 18 MiB.
"""

from __future__ import annotations

from asyncua import Server, ua
from asyncua.server.history import HistoryStorageInterface

__all__ = ["ServerHistory"]


class ServerHistory:
    """History for chosen variables of a running asyncua ``server``, ``count`` values each at most."""

    def __init__(self, server: Server, count: int) -> None:
        """Keep at most ``count`` values per variable (> 0).

        Raises:
            ValueError: ``count`` is not positive.
        """
        if count <= 0:
            raise ValueError(f"history count must be > 0, got {count}")
        self._server = server
        self._count = count
        self._storage: HistoryStorageInterface = server.iserver.history_manager.storage
        self._kept: set[ua.NodeId] = set()

    async def add(self, node_id: ua.NodeId) -> None:
        """Mark the variable as keeping history and start storing its values."""
        node = self._server.get_node(node_id)
        await node.write_attribute(ua.AttributeIds.Historizing, ua.DataValue(True))
        await node.set_attr_bit(ua.AttributeIds.AccessLevel, ua.AccessLevel.HistoryRead)
        await node.set_attr_bit(ua.AttributeIds.UserAccessLevel, ua.AccessLevel.HistoryRead)
        # No period: asyncua would prune by the wall clock, and simulated source times are not it.
        await self._storage.new_historized_node(node_id, None, self._count)
        self._kept.add(node_id)

    async def save(self, node_id: ua.NodeId, value: ua.DataValue) -> None:
        """Store ``value`` (as written, with its SourceTimestamp) if the variable keeps history."""
        if node_id in self._kept:
            await self._storage.save_node_value(node_id, value)
