"""The simulator's stops as OPC UA Alarms & Conditions (``simulate --alarms``; docs/references.md [OPC-UA-9]).

With the option on, every stop reason code a machine's PLC writes also raises an alarm
condition (AlarmConditionType) on the machine's folder: its ConditionName is the code's text
(``301``), so the plant's reason tree maps it as it maps the tag, and its Time is the instant
the code was written. When the code is cleared (``0``, the machine runs again) or replaced by
another, the condition becomes inactive at that instant (after the next one is raised). The
events are emitted through the Server object, where an OPC UA source's ``events:`` subscribes
by default, and the server answers ConditionRefresh, so a reconnecting collector learns what is
active.

Off by default: the tags, their values and every timeline are the same either way.
"""

from __future__ import annotations

from asyncua import Server, ua
from asyncua.server.event_generator import EventGenerator

from runtimes.simulator.model import TagUpdate

__all__ = ["REFRESH_SEVERITY", "SimulatorAlarms"]

REFRESH_SEVERITY = 100
"""The Severity of the RefreshStart and RefreshEnd events (asyncua binds ConditionRefresh with it)."""
_SEVERITY = 700
"""A stop's alarm: high (OPC UA Part 5 gives 1 to 1000; 701-1000 is the highest band)."""


class SimulatorAlarms:
    """One condition per machine and reason code, raised and cleared with the machine's code."""

    def __init__(self, server: Server, ns: int, reason_signals: dict[str, str]) -> None:
        """``reason_signals`` maps each machine with a reason tag to that tag's signal name."""
        self._server = server
        self._ns = ns
        self._signals = reason_signals
        self._conditions: dict[tuple[str, str], EventGenerator] = {}
        self._active: dict[str, str] = {}  # machine -> the code whose condition is active
        self.raised = 0
        """Conditions raised so far (each stop with a code raises one)."""

    async def take(self, updates: list[TagUpdate]) -> None:
        """Raise and clear conditions for the reason-code updates among ``updates``."""
        for update in updates:
            if self._signals.get(update.machine) != update.signal:
                continue
            code = str(update.value)
            previous = self._active.pop(update.machine, None)
            if previous == code:
                self._active[update.machine] = code
                continue
            # The new condition first, then the old one cleared: a client following the oldest
            # active condition goes from one code straight to the next, never through no reason.
            if code not in ("0", ""):
                await self._fire(update, code, active=True)
                self._active[update.machine] = code
                self.raised += 1
            if previous is not None:
                await self._fire(update, previous, active=False)

    async def _fire(self, update: TagUpdate, code: str, *, active: bool) -> None:
        gen = await self._condition(update.machine, code)
        gen.event.Severity = _SEVERITY
        setattr(gen.event, "ActiveState/Id", active)
        gen.event.ActiveState = ua.LocalizedText("Active" if active else "Inactive")
        gen.event.Retain = active  # an inactive stop alarm needs no operator action here
        await gen.trigger(time_attr=update.source_ts, message=f"{update.machine}: stop reason {code}")

    async def _condition(self, machine: str, code: str) -> EventGenerator:
        key = (machine, code)
        gen = self._conditions.get(key)
        if gen is None:
            gen = await self._server.get_event_generator(ua.ObjectIds.AlarmConditionType)
            gen.event.SourceNode = ua.NodeId(machine, self._ns)  # the machine's folder
            gen.event.SourceName = machine
            gen.event.ConditionName = code
            gen.event.NodeId = ua.NodeId(f"{machine}.alarm.{code}", self._ns)
            self._conditions[key] = gen
        return gen
