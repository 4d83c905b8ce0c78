"""OPC UA Alarms & Conditions events as stop reasons (docs/references.md [OPC-UA-9]).

The collector subscribes to the events of one notifier (the Server object by default) with an
EventFilter selecting EventType, SourceNode, SourceName, Time, Severity, ConditionName,
ActiveState/Id and the ConditionId, and turns each machine's alarms into readings of its
``reason`` signal:

- **Active.** A condition that becomes active (``ActiveState/Id`` true) with ``Severity`` at
  least ``min_severity`` sets the machine's reason to its ``ConditionName`` (the EventType's
  browse name when the condition has no name), at the event's ``Time``.
- **Several at once.** A machine's active conditions are kept in the order they became active;
  the reason is the oldest still active (the first cause, as :mod:`streams.stops` takes it).
- **Inactive.** When a condition becomes inactive, the reason goes to the oldest one still active,
  or is cleared to ``""`` (which the reason tree reads as no reason). Acknowledging or confirming
  a condition does not change the reason: a stop's cause is the alarm that is active, whether an
  operator has seen it or not.
- **Not a reason.** Events without ``ActiveState/Id`` (plain events, non-alarm conditions) are
  counted and ignored; so are events of no mapped source, and events whose fields are malformed
  (each kind logged once).
- **Bounded.** The server and client queues hold ``queue_size`` events (the oldest dropped and
  counted when full); beyond ``max_events_per_s`` new activations are dropped and counted
  (policy ``drop_activations``: clears and updates of active conditions always pass, so a flood
  never leaves a reason stuck); at most ``max_active_per_machine`` conditions are tracked per
  machine.
- **Sessions.** The subscription is made again with every session, followed by a
  ConditionRefresh [OPC-UA-9]: the server sends every retained condition again between a
  RefreshStart and a RefreshEnd event, and a condition tracked as active that is not among them
  has cleared while the session was down; it is cleared at the RefreshEnd event's time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from asyncua import Client, ua
from asyncua.common.subscription import OpcEvent, Subscription

from plantstream.plant.schema import OpcUaEvents

__all__ = ["EventHealth", "EventReasons", "Transition"]

_log = logging.getLogger("plantstream.collectors.opcua")

_BASE = ua.NodeId(ua.ObjectIds.BaseEventType)
_CONDITION = ua.NodeId(ua.ObjectIds.ConditionType)
_ALARM = ua.NodeId(ua.ObjectIds.AlarmConditionType)
_REFRESH_START = ua.NodeId(ua.ObjectIds.RefreshStartEventType)
_REFRESH_END = ua.NodeId(ua.ObjectIds.RefreshEndEventType)
# (type definition, browse path): the select clauses, in the order the fields come back.
_SELECT: tuple[tuple[ua.NodeId, tuple[str, ...]], ...] = (
    (_BASE, ("EventType",)),
    (_BASE, ("SourceNode",)),
    (_BASE, ("SourceName",)),
    (_BASE, ("Time",)),
    (_BASE, ("Severity",)),
    (_CONDITION, ("ConditionName",)),
    (_ALARM, ("ActiveState", "Id")),
    (_CONDITION, ()),  # the ConditionId: the NodeId attribute of the condition [OPC-UA-9]
)
_MAX_WARNED = 256
"""Distinct log keys remembered; past it a flood of new source names logs nothing more."""
_MAX_TYPE_NAMES = 256


@dataclass
class EventHealth:
    """Counts of one source's events (``health.events`` of the OPC UA collector)."""

    events: int = 0
    reasons: int = 0
    """Readings of a reason signal made from events."""
    active: int = 0
    """Conditions active now, all machines."""
    unmapped: int = 0
    """Events of a source node or name no ``where`` entry maps."""
    malformed: int = 0
    """Events with a field of the wrong type, a missing Time or EventType, or an absurd Severity."""
    below_severity: int = 0
    not_conditions: int = 0
    """Events without ActiveState/Id (not an alarm)."""
    rate_dropped: int = 0
    """Activations dropped above ``max_events_per_s``."""
    active_overflow: int = 0
    """Activations dropped because the machine already had ``max_active_per_machine``."""
    refreshes: int = 0
    refresh_failed: int = 0
    subscribe_failed: int = 0
    """Sessions whose event subscription the server refused (e.g. a notifier it does not have)."""


@dataclass(frozen=True, slots=True)
class Transition:
    """A change of a machine's reason: a reading of ``signal`` with ``value`` at ``ts``."""

    machine: str
    signal: str
    value: str
    ts: datetime


@dataclass
class _Fields:
    event_type: ua.NodeId
    source_node: ua.NodeId | None
    source_name: str | None
    ts: datetime
    severity: int
    condition_name: str | None
    active: bool | None
    condition_id: ua.NodeId | None


@dataclass
class _Machine:
    signal: str
    active: dict[Any, str] = field(default_factory=dict)  # condition key -> name, oldest first
    value: str = ""


class EventReasons:
    """Turns one source's A&C events into reason transitions (the state per machine is here)."""

    def __init__(
        self,
        source_id: str,
        settings: OpcUaEvents,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """Prepare for ``settings``; ``monotonic`` paces the activation rate (tests pass their own)."""
        self.source_id = source_id
        self.settings = settings
        self.health = EventHealth()
        self._monotonic = monotonic
        self._machines = {m.machine: _Machine(m.signal) for m in settings.where}
        self._by_name = {m.source_name: m.machine for m in settings.where if m.source_name is not None}
        self._by_node: dict[ua.NodeId, str] = {}
        self._type_names: dict[ua.NodeId, str] = {}
        self._warned: set[str] = set()
        self._tokens = float(self._burst)
        self._refilled = monotonic()
        self._refreshing: set[Any] | None = None

    @property
    def _burst(self) -> float:
        return max(1.0, self.settings.max_events_per_s)

    # -- the session part ---------------------------------------------------------------------------

    async def subscribe(
        self, client: Client, sub: Subscription, resolve: Callable[[str], Awaitable[ua.NodeId]]
    ) -> None:
        """Monitor the notifier's events on ``sub`` and ask for a ConditionRefresh.

        ``resolve`` turns a plant-file node id (``nsu=`` allowed) into this session's NodeId; a
        ``source_node`` that does not resolve is logged once and matches nothing this session.
        """
        self._by_node = {}
        for match in self.settings.where:
            if match.source_node is None:
                continue
            try:
                self._by_node[await resolve(match.source_node)] = match.machine
            except (ValueError, ua.UaError) as exc:
                self._warn(f"resolve:{match.source_node}", f"event source_node {match.source_node}: {exc}")
        self.guard(sub)
        try:
            notifier = client.get_node(await resolve(self.settings.notifier))
            await sub.subscribe_events(notifier, evfilter=event_filter(), queuesize=self.settings.queue_size)
        except (ValueError, ua.UaError) as exc:
            # A wrong notifier costs the events, not the tags: the session goes on without them.
            self.health.subscribe_failed += 1
            self._warn(
                f"subscribe:{exc}",
                f"events of notifier {self.settings.notifier} cannot be subscribed ({exc}); "
                "no events this session",
            )
            return
        try:
            await client.get_node(_CONDITION).call_method(
                ua.NodeId(ua.ObjectIds.ConditionType_ConditionRefresh),
                ua.Variant(sub.subscription_id, ua.VariantType.UInt32),
            )
            self.health.refreshes += 1
        except ua.UaError as exc:
            # Without a refresh, conditions that changed while the session was down stay as known.
            self.health.refresh_failed += 1
            self._warn(
                "refresh", f"ConditionRefresh failed ({exc}); conditions are known from their next event"
            )

    def guard(self, sub: Subscription) -> None:
        """Drop events with the wrong number of fields before asyncua reads them.

        asyncua pairs each field with its select clause by index, and an event with fewer fields
        than clauses raises inside its publish loop, losing the rest of that notification. They
        are counted as malformed here instead. (A private method, wrapped as opcua.py wraps its
        data-change twin; asyncua is pinned below 3 and tests/unit/collectors covers it.)
        """
        explode = sub._explode_events

        def well_formed(eventlist: ua.EventNotificationList) -> Any:
            eventlist.Events = [e for e in eventlist.Events if self.fields_fit(e.EventFields)]
            return explode(eventlist)

        sub._explode_events = well_formed

    def fields_fit(self, fields: list[ua.Variant]) -> bool:
        """Whether an event has one field per select clause (else it is counted as malformed)."""
        if len(fields) == len(_SELECT):
            return True
        self.health.events += 1
        self.health.malformed += 1
        problem = f"{len(fields)} fields (asked for {len(_SELECT)})"
        self._warn(f"malformed:{problem}", f"an event with {problem} was dropped")
        return False

    async def consume(
        self, client: Client, sub: Subscription, put: Callable[[Transition], Awaitable[None]]
    ) -> None:
        """Take ``sub``'s events until the session ends; each reason change goes to ``put``."""
        async for event in sub:
            if not isinstance(event, OpcEvent):
                continue
            fields = list(event.event.event_fields or [])
            event_type = fields[0].Value if fields else None
            if isinstance(event_type, ua.NodeId) and event_type not in self._type_names:
                self._type_names[event_type] = await self._browse_name(client, event_type)
            for transition in self.take(fields):
                await put(transition)

    async def _browse_name(self, client: Client, event_type: ua.NodeId) -> str:
        """The EventType's browse name (a condition without a name is named by it), or its id."""
        if len(self._type_names) >= _MAX_TYPE_NAMES:
            return _text(event_type)
        try:
            return str((await client.get_node(event_type).read_browse_name()).Name)
        except ua.UaError:
            return _text(event_type)

    # -- the pure part -------------------------------------------------------------------------------

    def take(self, fields: list[Any]) -> list[Transition]:
        """The reason changes one event's fields (Variants, in the select clauses' order) make."""
        self.health.events += 1
        parsed = self._parse(fields)
        if parsed is None:
            return []
        if parsed.event_type in (_REFRESH_START, _REFRESH_END):
            return self._refresh(parsed)
        if parsed.active is None:
            self.health.not_conditions += 1
            return []
        machine_id = self._machine_of(parsed)
        if machine_id is None:
            self.health.unmapped += 1
            label = parsed.source_name or (_text(parsed.source_node) if parsed.source_node else "?")
            self._warn(f"unmapped:{label}", f"events of source {label!r} map to no machine (events.where)")
            return []
        machine = self._machines[machine_id]
        key = (
            parsed.condition_id
            if parsed.condition_id is not None
            else (machine_id, parsed.condition_name, parsed.event_type)
        )
        if not parsed.active:
            machine.active.pop(key, None)
        elif key in machine.active:
            if self._refreshing is not None:
                self._refreshing.add(key)
        elif not self._activate(machine_id, key, parsed):
            return []
        return self._settle(machine_id, parsed.ts)

    def _activate(self, machine_id: str, key: Any, parsed: _Fields) -> bool:
        """Track a condition that became active; False when a bound or the severity filter drops it."""
        machine = self._machines[machine_id]
        if parsed.severity < self.settings.min_severity:
            self.health.below_severity += 1
            return False
        if len(machine.active) >= self.settings.max_active_per_machine:
            self.health.active_overflow += 1
            self._warn(f"overflow:{machine_id}", f"machine {machine_id}: more active conditions than tracked")
            return False
        if not self._allow_activation():
            self.health.rate_dropped += 1
            self._warn("rate", f"more than {self.settings.max_events_per_s:g} activations/s; dropping some")
            return False
        name = parsed.condition_name or self._type_names.get(parsed.event_type) or _text(parsed.event_type)
        machine.active[key] = name[:64]
        if self._refreshing is not None:
            self._refreshing.add(key)
        return True

    def _settle(self, machine_id: str, ts: datetime) -> list[Transition]:
        machine = self._machines[machine_id]
        self.health.active = sum(len(m.active) for m in self._machines.values())
        value = next(iter(machine.active.values()), "")
        if value == machine.value:
            return []
        machine.value = value
        self.health.reasons += 1
        return [Transition(machine_id, machine.signal, value, ts)]

    def _refresh(self, parsed: _Fields) -> list[Transition]:
        """A RefreshStart begins collecting what is active; its RefreshEnd clears what was not sent."""
        if parsed.event_type == _REFRESH_START:
            self._refreshing = set()
            return []
        ts = parsed.ts
        seen, self._refreshing = self._refreshing, None
        if seen is None:
            return []  # a RefreshEnd without its start (another client's refresh): nothing to judge
        out: list[Transition] = []
        for machine_id, machine in self._machines.items():
            gone = [key for key in machine.active if key not in seen]
            for key in gone:
                del machine.active[key]
            if gone:
                out += self._settle(machine_id, ts)
        return out

    def _allow_activation(self) -> bool:
        """A token bucket: ``max_events_per_s`` activations a second, as many in a burst."""
        now = self._monotonic()
        rate = self.settings.max_events_per_s
        self._tokens = min(self._burst, self._tokens + (now - self._refilled) * rate)
        self._refilled = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True

    def _machine_of(self, parsed: _Fields) -> str | None:
        if parsed.source_node is not None and parsed.source_node in self._by_node:
            return self._by_node[parsed.source_node]
        if parsed.source_name is not None:
            return self._by_name.get(parsed.source_name)
        return None

    def _parse(self, fields: list[Any]) -> _Fields | None:
        values = [getattr(f, "Value", None) for f in fields]
        problem = None
        if len(values) != len(_SELECT):
            problem = f"{len(values)} fields (asked for {len(_SELECT)})"
        else:
            event_type, node, name, ts, severity, condition, active, condition_id = values
            if not isinstance(event_type, ua.NodeId):
                problem = "no EventType"
            elif not isinstance(ts, datetime) or ts.year < 1602:
                problem = "no Time"
            elif event_type in (_REFRESH_START, _REFRESH_END):
                # Only their type and time matter (some servers give them no proper Severity).
                return _Fields(event_type, None, None, _utc(ts), 1, None, None, None)
            elif isinstance(severity, bool) or not isinstance(severity, int) or not 1 <= severity <= 1000:
                problem = f"Severity {severity!r} (1 to 1000)"
            elif not (node is None or isinstance(node, ua.NodeId)) or not (
                name is None or isinstance(name, str)
            ):
                problem = "SourceNode or SourceName of the wrong type"
            elif not (condition is None or isinstance(condition, str)):
                problem = "ConditionName of the wrong type"
            elif not (active is None or isinstance(active, bool)):
                problem = "ActiveState/Id of the wrong type"
            elif not (condition_id is None or isinstance(condition_id, ua.NodeId)):
                problem = "ConditionId of the wrong type"
            else:
                return _Fields(
                    event_type,
                    node if node is not None and not node.is_null() else None,
                    name or None,
                    _utc(ts),
                    severity,
                    condition or None,
                    active,
                    condition_id if condition_id is not None and not condition_id.is_null() else None,
                )
        self.health.malformed += 1
        self._warn(f"malformed:{problem}", f"an event with {problem} was dropped")
        return None

    def _warn(self, key: str, text: str) -> None:
        if key not in self._warned and len(self._warned) < _MAX_WARNED:
            self._warned.add(key)
            _log.warning("source %s: %s", self.source_id, text)


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _text(node: ua.NodeId) -> str:
    return str(node.to_string())


def event_filter() -> ua.EventFilter:
    """The EventFilter of the select clauses above, without a where clause (every event comes)."""
    evfilter = ua.EventFilter()
    for type_id, path in _SELECT:
        operand = ua.SimpleAttributeOperand()
        operand.TypeDefinitionId = type_id
        operand.BrowsePath = [ua.QualifiedName(name, 0) for name in path]
        operand.AttributeId = ua.AttributeIds.Value if path else ua.AttributeIds.NodeId
        evfilter.SelectClauses.append(operand)
    return evfilter
