"""What the OPC UA collector keeps of one source: its health, and each configured item's state."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from asyncua import Node
from asyncua.common.subscription import Subscription

from collectors import opcua_events
from plantstream.plant.schema import OpcUaGroup, OpcUaTag

__all__ = ["OpcUaHealth"]


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
