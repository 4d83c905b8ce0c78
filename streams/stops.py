"""Stop events from a machine's state timeline, each with its reason.

Pure. A **stop** is a run of one non-running state category (``down``, ``idle``, ``setup`` or
``off``) inside planned busy time: it starts when the machine enters that category and ends when
it leaves it (for another category, or for unknown: a bad-quality state, a silence). Its
duration is the planned busy time it covered, so a stop across a break does not count the break
and a stop wholly inside one is no stop (ISO 22400-2: PBT = POT − PDOT, docs/references.md
[ISO22400-2]). A stop of ``idle`` or ``down`` no longer than ``micro_stop_max_s`` is a
micro-stop, as in the time model (:mod:`streams.machine`).

The **reason** comes from the machine's reason-code tag (:mod:`streams.reasons`):

- ``first`` (the default, the first-cause rule): the code active when the stop began. A code
  written at the same instant as the state counts as active then, whatever order the two
  readings come in; if no code was active at the start, the first code seen during the stop.
  The first cause is what a plant acts on: the alarm that stopped the machine, not the ones its
  stop set off.
- ``last``: the last code active before the stop ended (the reason an operator confirmed on
  restart, on machines where the HMI asks for one).

An **operator's reason** (``plantstream reason``, :mod:`streams.operator_reason`) is a reading of
the reserved signal :data:`OPERATOR_REASON` at an instant inside a stop (``start <= t < end``;
the embedded runtime stamps it at the start). It names the reason of that one stop, whatever the
rule, and unlike a PLC code it is not "active" afterwards: the next stop does not inherit it. The
latest one given for a stop wins; one at an instant the machine was not stopped changes nothing.

A stop's event is made when the stop ends, so the reason is final then; the engine corrects it
(``revision`` + 1) when late data changes it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from streams.reasons import NO_CODES, code_text

__all__ = [
    "OPERATOR_REASON",
    "REASON_RULES",
    "STOP_STATES",
    "StopEvent",
    "StopTracker",
    "stops_from_timeline",
]

STOP_STATES = frozenset({"down", "idle", "setup", "off"})
"""The state categories that make a stop (running is production, planned_stop is PDOT)."""
REASON_RULES = ("first", "last")
OPERATOR_REASON = "@operator_reason"
"""The reserved signal of an operator's reason for a past stop. A plant's signal names start with a
letter or digit (``Identifier`` in the plant schema), so no signal of a plant file can take it."""


@dataclass(frozen=True, slots=True)
class StopEvent:
    """One ended stop: ``start`` and ``end`` in µs, ``busy_us`` the planned busy time it covered.

    ``code`` is the reason code by the rule (text form), ``None`` when none was seen; ``cause``
    says where it came from: the rule (``first`` or ``last``) or ``operator``.
    """

    start: int
    end: int
    category: str
    code: str | None
    micro: bool
    busy_us: int
    cause: str = "first"

    def to_list(self) -> list[Any]:
        """A JSON-ready form."""
        return [self.start, self.end, self.category, self.code, self.micro, self.busy_us, self.cause]

    @classmethod
    def from_list(cls, data: list[Any]) -> StopEvent:
        """Rebuild an event from :meth:`to_list` (one written before ``cause`` existed: ``first``)."""
        start, end, category, code, micro, busy = data[:6]
        return cls(start, end, category, code, bool(micro), busy, str(data[6]) if len(data) > 6 else "first")


class StopTracker:
    """Follows one machine's state and reason code and makes a :class:`StopEvent` per ended stop.

    Plain data (see :meth:`to_list`), so it is part of the machine's checkpoint and of the
    snapshots late-data corrections restore.
    """

    __slots__ = ("assigned", "busy", "code", "first", "last", "rule", "start", "state")

    def __init__(self, rule: str = "first") -> None:
        if rule not in REASON_RULES:
            raise ValueError(f"reason rule {rule!r} (expected one of {', '.join(REASON_RULES)})")
        self.rule = rule
        self.code: str | None = None
        """The code active now (``None``: no reason active)."""
        self.start: int | None = None
        """Start of the open stop, ``None`` while the machine is not stopped."""
        self.state = ""
        self.busy = 0
        self.first: str | None = None
        self.last: str | None = None
        self.assigned: tuple[int, str] | None = None
        """An operator's reason: (an instant inside the stop it is for, its code)."""

    def reason(self, ts: int, value: Any) -> None:
        """The reason tag changed to ``value`` at ``ts``."""
        text = code_text(value)
        code = None if text in NO_CODES else text
        self.code = code
        if self.start is None or code is None:
            return
        if self.first is None or ts == self.start:
            self.first = code
        self.last = code

    def assign(self, ts: int, value: Any) -> None:
        """An operator named ``value`` the reason of the stop that ``ts`` falls in.

        It applies to that stop only (the one open now, or one starting at ``ts`` once the state
        reading of the same instant is applied), never to later stops; "no code" (``0``, empty)
        withdraws it.
        """
        text = code_text(value)
        self.assigned = None if text in NO_CODES else (ts, text)

    def current(self) -> tuple[str | None, str]:
        """The code the open stop would get if it ended now (``None``: no code), and its cause."""
        if self.assigned is not None and self.start is not None and self.assigned[0] >= self.start:
            return self.assigned[1], "operator"
        return (self.first if self.rule == "first" else self.last), self.rule

    def begin(self, ts: int, category: str | None) -> None:
        """The machine entered ``category`` at ``ts`` (call :meth:`end` first if a stop was open)."""
        if category not in STOP_STATES:
            return
        self.start, self.state, self.busy = ts, category, 0
        self.first = self.last = self.code

    def book(self, busy_us: int) -> None:
        """Planned busy time the open stop has covered (called as the time model books it)."""
        if self.start is not None:
            self.busy += busy_us

    def end(self, ts: int, micro: bool) -> StopEvent | None:
        """The open stop ended at ``ts``; its event, or ``None`` (none open, or no busy time)."""
        start = self.start
        if start is None:
            return None
        self.start = None
        assigned = self.assigned
        ours = assigned is not None and start <= assigned[0] < ts
        if assigned is not None and assigned[0] < ts:
            self.assigned = None  # this stop's, or one for an instant the machine was not stopped
        if self.busy <= 0:
            return None
        code, cause = self.first if self.rule == "first" else self.last, self.rule
        if ours and assigned is not None:
            code, cause = assigned[1], "operator"
        micro = micro and self.state in ("idle", "down")
        return StopEvent(start, ts, self.state, code, micro, self.busy, cause)

    def to_list(self) -> list[Any]:
        """A JSON-ready form of the tracker's state."""
        return [self.rule, self.code, self.start, self.state, self.busy, self.first, self.last, self.assigned]

    @classmethod
    def from_list(cls, data: list[Any]) -> StopTracker:
        """Rebuild a tracker from :meth:`to_list`."""
        tracker = cls(data[0])
        tracker.code, tracker.start, tracker.state, tracker.busy, tracker.first, tracker.last = data[1:7]
        # Absent from checkpoints written before operators' reasons; a JSON list back to a tuple.
        assigned = data[7] if len(data) > 7 else None
        tracker.assigned = None if assigned is None else (int(assigned[0]), str(assigned[1]))
        return tracker

    def copy(self) -> StopTracker:
        """An independent copy (for snapshots)."""
        return StopTracker.from_list(self.to_list())


def stops_from_timeline(
    states: Iterable[tuple[int, str | None]],
    codes: Iterable[tuple[int, Any]],
    end: int,
    *,
    micro_stop_max_us: int = 0,
    rule: str = "first",
) -> list[StopEvent]:
    """The stops of a timeline wholly inside planned busy time (no calendar), for tests and tools.

    ``states`` are (time, category) changes, ``codes`` (time, code) changes, both in µs; the
    timeline ends at ``end``. A stop still open at ``end`` has not ended and gives no event.
    Readings at the same time are applied codes first; the rule makes the order irrelevant.
    """
    tracker = StopTracker(rule)
    merged = sorted(
        [(ts, 0, value) for ts, value in codes] + [(ts, 1, value) for ts, value in states],
        key=lambda item: (item[0], item[1]),
    )
    out: list[StopEvent] = []
    current: str | None = None
    since: int | None = None
    for ts, kind, value in merged:
        if ts > end:
            break
        if kind == 0:
            tracker.reason(ts, value)
            continue
        if since is not None:
            tracker.book(ts - since)
        since = ts
        if value == current and value is not None:
            continue
        if tracker.start is not None:
            length = ts - tracker.start
            event = tracker.end(ts, micro_stop_max_us > 0 and length <= micro_stop_max_us)
            if event is not None:
                out.append(event)
        current = value
        tracker.begin(ts, value)
    return out
