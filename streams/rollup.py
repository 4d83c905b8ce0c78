"""Line and site roll-ups: closed machine windows summed per line and per site.

Pure. The one implementation of the summing rule, fed by the embedded :class:`streams.engine.Engine`
(its machines in one process) and by the kafka runtime's roll-up stage (machine results from the
windows topic); both give the same roll-up for the same machine results.

- **Scopes.** A line of two or more machines and a site of two or more lines; a roll-up of a
  single member would repeat the member.
- **Sums.** A roll-up adds the OEE elements, kWh and emissions of the latest result of each member
  for the window (ratios are never averaged) and says how many machines it holds.
- **When.** A roll-up is emitted once every member that has reported has closed its window (its
  "closed until" is at or after the window's end). A member that has not reported yet is not
  waited for, except when the results come over a stream (``from_stream``, see :class:`Rollups`).
- **Corrections.** A member result that changes after the roll-up was emitted emits it again with
  the same identity and ``revision`` + 1. Emitted roll-ups are kept for that until the scope's
  watermark has passed them by the correction horizon.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

from plantstream.records import Point
from streams.config import EngineSpec
from streams.losses import SixLosses, six_losses
from streams.machine import WindowResult
from streams.oee import OeeElements
from streams.points import WindowPoints, window_label

__all__ = ["ClosedUntil", "Rollup", "Rollups", "Scope", "rollup_scopes"]

_NEVER = 2**62
Scope = tuple[str, ...]
"""``("line", site, line)`` or ``("site", site)``."""
RollupKey = tuple[Scope, str, int]
ClosedUntil = Callable[[str], int | None]
"""A member's "closed until" (µs): every window ending at or before it is closed; ``None`` when
the member has not reported yet."""


@dataclass(slots=True)
class Rollup:
    """One window of one scope: the member results so far and, once emitted, its revision."""

    end: int
    kind: str
    start: int
    shift: str | None
    parts: dict[str, WindowResult] = field(default_factory=dict)
    revision: int | None = None


def rollup_scopes(spec: EngineSpec) -> dict[Scope, list[str]]:
    """The lines and sites of ``spec`` that are rolled up, each with its machines (sorted)."""
    lines: dict[Scope, list[str]] = {}
    sites: dict[Scope, set[str]] = {}
    for m in spec.machines.values():
        lines.setdefault(("line", m.site, m.line), []).append(m.id)
        sites.setdefault(("site", m.site), set()).add(m.line)
    scopes = {key: sorted(ids) for key, ids in lines.items() if len(ids) > 1}
    for key, site_lines in sites.items():
        if len(site_lines) > 1:
            scopes[key] = sorted(m.id for m in spec.machines.values() if m.site == key[1])
    return scopes


class Rollups:
    """The roll-ups of every scope of a plant: parts waiting, emission, corrections, checkpoints."""

    def __init__(
        self,
        spec: EngineSpec,
        *,
        from_stream: bool = False,
        kept_from: Callable[[str], int | None] | None = None,
    ) -> None:
        """Roll-ups for the scopes of ``spec``.

        Args:
            spec: the resolved plant (or the part of it whose scopes are wanted).
            from_stream: off for the embedded engine, which sees every machine in one process.
                On for the kafka stage, whose members' results come over a topic, where a member
                may be behind on another partition and a batch may be sent twice: (1) a member
                not heard from is waited for (its source says how long it has been silent, as a
                "closed until" of a member without data); (2) a result equal to the one already
                in an emitted roll-up emits nothing; (3) a result for a window already forgotten
                (past the horizon) is dropped and counted in :attr:`stale`, rather than starting
                a roll-up of that member alone.
            kept_from: where a machine's corrections start (µs; ``None`` before it has any):
                a window of it that ended before can no longer change. The embedded engine gives
                it, so that an emitted roll-up is forgotten once no member can correct it any
                more, not only once the horizon has passed it: at 2 000 meters on a line, a roll-up
                holds 2 000 results, and an hour of minute windows of them was about 80 MiB.
        """
        self.spec = spec
        self.members = rollup_scopes(spec)
        """Every rolled-up scope with its machines."""
        self._horizon = spec.correction_horizon_us
        self._from_stream = from_stream
        self._kept_from = kept_from
        self.stale = 0
        """Results dropped because their window's roll-up was already forgotten (``from_stream``)."""
        label = window_label(spec.window_us)
        self._points = {key: self._builder(key, label) for key in self.members}
        self._scopes_of: dict[str, list[Scope]] = {}
        for m in spec.machines.values():
            candidates: list[Scope] = [("line", m.site, m.line), ("site", m.site)]
            self._scopes_of[m.id] = [key for key in candidates if key in self.members]
        self._rollups: dict[RollupKey, Rollup] = {}
        self._pending: dict[Scope, dict[RollupKey, Rollup]] = {}
        self._done: dict[Scope, list[RollupKey]] = {}
        self._forgotten: dict[Scope, int] = {}
        """Per scope, the latest end of a roll-up forgotten past the horizon."""
        # Where the last scan of a scope found a member that had not closed the earliest waiting
        # roll-up: the next scan starts there (see ready).
        self._scan_from: dict[Scope, int] = {}

    def _builder(self, key: Scope, label: str) -> WindowPoints:
        machines = [self.spec.machines[mid] for mid in self.members[key]]
        first = machines[0]
        tags = {"site": key[1], "line": key[2]} if key[0] == "line" else {"site": key[1]}
        return WindowPoints(
            tags,
            first.method,
            None,
            label,
            any(m.has_oee for m in machines),
            any(m.has_energy for m in machines),
            self.spec.site_carbon.get(first.site),
            per_good_unit=False,
            has_counts=any(m.counters for m in machines),
            # A member counting pieces without a rework counter would make the ratio look better.
            has_rework=all(m.has_rework for m in machines if m.counters)
            and any(m.has_rework for m in machines),
        )

    def scopes_of(self, machine: str) -> list[Scope]:
        """The rolled-up scopes ``machine`` belongs to: its line, then its site (either may be absent)."""
        return self._scopes_of.get(machine, [])

    def add(self, scope: Scope, machine: str, result: WindowResult) -> list[Point]:
        """Take a closed window of ``machine`` into ``scope``; the points of a roll-up it corrects."""
        key = (scope, result.kind, result.start)
        rollup = self._rollups.get(key)
        if rollup is None:
            if self._from_stream and result.end <= self._forgotten.get(scope, -_NEVER):
                self.stale += 1
                return []
            rollup = self._rollups[key] = Rollup(result.end, result.kind, result.start, result.shift)
            self._pending.setdefault(scope, {})[key] = rollup
        elif self._from_stream and rollup.revision is not None and rollup.parts.get(machine) == result:
            return []
        rollup.parts[machine] = result
        if rollup.revision is not None:
            return self._emit(key, rollup)
        return []

    def ready(self, scope: Scope, closed_until: ClosedUntil) -> list[Point]:
        """Emit the waiting roll-ups of ``scope`` that every member has closed, in time order."""
        pending = self._pending.get(scope)
        if not pending:
            return []
        earliest = min(rollup.end for rollup in pending.values())
        lowest = _NEVER
        # The scan starts at the member that held the roll-ups back last time, which has most
        # likely not closed yet either: without that, each of a scope's n members closing a window
        # rescanned the members before it, n²/2 checks per window (4 million for 2 000 meters on
        # a line). Where the scan starts does not change its outcome: it returns early if any
        # member has not closed the earliest waiting window, and otherwise takes the minimum of all.
        members = self.members[scope]
        start = self._scan_from.get(scope, 0)
        for i in chain(range(start, len(members)), range(start)):
            mark = closed_until(members[i])
            if mark is None:
                if self._from_stream:
                    self._scan_from[scope] = i
                    return []
            elif mark < lowest:
                lowest = mark
                if lowest < earliest:
                    self._scan_from[scope] = i
                    return []  # some member has not closed even the earliest waiting window
        ready = [key for key, rollup in pending.items() if rollup.end <= lowest]
        out: list[Point] = []
        for key in sorted(ready, key=lambda k: (k[2], k[1])):
            out += self._emit(key, pending.pop(key))
        # Emitted roll-ups are kept for corrections until the horizon has passed them, or every
        # member's corrections start after them (checked as roll-ups are emitted: a scan of the
        # members once a window, not once a member's close).
        horizon = lowest - self._horizon
        done = self._done.setdefault(scope, [])
        done.extend(ready)
        if ready and self._kept_from is not None and done and self._rollups[done[0]].end < lowest:
            horizon = max(horizon, self._correctable_from(members))
        while done and self._rollups[done[0]].end < horizon:
            end = self._rollups.pop(done.pop(0)).end
            self._forgotten[scope] = max(end, self._forgotten.get(scope, end))
        return out

    def _correctable_from(self, members: list[str]) -> int:
        """The earliest time any of ``members`` can still correct (``kept_from`` is given)."""
        kept_from = self._kept_from
        assert kept_from is not None
        earliest = _NEVER
        for member in members:
            start = kept_from(member)
            if start is None:
                # A member without corrections yet (silent so far) may still send any window in
                # the horizon: it holds the roll-ups, as before.
                return -_NEVER
            earliest = min(earliest, start)
        return earliest

    def flush(self) -> list[Point]:
        """The input has ended: emit every roll-up still waiting, whatever its members' watermarks."""
        waiting = [(key, rollup) for pending in self._pending.values() for key, rollup in pending.items()]
        out: list[Point] = []
        for key, rollup in sorted(waiting, key=lambda item: (item[0][2], item[0][1], item[0][0])):
            out += self._emit(key, rollup)
        self._pending.clear()
        return out

    def _emit(self, key: RollupKey, rollup: Rollup) -> list[Point]:
        total = WindowResult(rollup.kind, rollup.start, rollup.end, rollup.shift, OeeElements(counted_run=0))
        machines = self.spec.machines
        losses: SixLosses | None = None
        for mid in sorted(rollup.parts):
            part = rollup.parts[mid]
            counts = bool(machines[mid].counters)
            total.add(part, counts_pieces=counts)
            # Each member's losses by its own rule (an oven has no speed loss), then summed.
            mine = six_losses(part.elements, has_counts=counts)
            losses = mine if losses is None else losses.plus(mine)
        rollup.revision = 0 if rollup.revision is None else rollup.revision + 1
        return self._points[key[0]].points(total, rollup.revision, {"machines": len(rollup.parts)}, losses)

    def checkpoint(self) -> list[dict[str, Any]]:
        """The roll-ups waiting for members, JSON-ready: the ``rollups`` of the embedded checkpoint (v1)."""
        return [_item(key, r) for key, r in self._rollups.items() if r.revision is None]

    def stream_checkpoint(self) -> dict[str, Any]:
        """Everything a roll-up stage needs after a restart, JSON-ready.

        The roll-ups waiting, those emitted and kept for corrections (with their ``revision``, in
        the order they are forgotten), and where each scope has forgotten up to.
        """
        items = self.checkpoint()
        for keys in self._done.values():
            for key in keys:
                rollup = self._rollups[key]
                items.append({**_item(key, rollup), "revision": rollup.revision})
        forgotten = [[list(scope), end] for scope, end in self._forgotten.items()]
        return {"rollups": items, "forgotten": forgotten}

    def restore(self, items: list[dict[str, Any]]) -> None:
        """Continue from a :meth:`checkpoint`; what was held before is dropped."""
        self.restore_stream({"rollups": items, "forgotten": []})

    def restore_stream(self, data: dict[str, Any]) -> None:
        """Continue from a :meth:`stream_checkpoint`; what was held before is dropped."""
        self._rollups, self._pending, self._done, self._scan_from = {}, {}, {}, {}
        self._forgotten = {tuple(scope): end for scope, end in data["forgotten"]}
        for item in data["rollups"]:
            key = (tuple(item["scope"]), item["kind"], item["start"])
            parts = {mid: WindowResult.from_dict(part) for mid, part in item["parts"].items()}
            revision = item.get("revision")
            rollup = Rollup(item["end"], item["kind"], item["start"], item["shift"], parts, revision)
            self._rollups[key] = rollup
            if revision is None:
                self._pending.setdefault(key[0], {})[key] = rollup
            else:
                self._done.setdefault(key[0], []).append(key)


def _item(key: RollupKey, r: Rollup) -> dict[str, Any]:
    return {
        "scope": list(key[0]),
        "kind": r.kind,
        "start": r.start,
        "end": r.end,
        "shift": r.shift,
        "parts": {mid: part.to_dict() for mid, part in r.parts.items()},
    }
