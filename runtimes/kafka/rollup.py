"""The roll-up stage of ``process``: machine windows from the windows topic in, line and site points out.

Kept apart from Kafka like :mod:`runtimes.kafka.calculate`. The machine engines publish, per
batch, each machine's new or corrected window results and its "closed until" watermark, keyed by
its site; so every machine of a site, and therefore of each of its lines, arrives in one
partition, and one :class:`streams.rollup.Rollups` per site sums them with the embedded engine's
rule. Each site's state (the members' watermarks, roll-ups waiting, roll-ups emitted and kept for
corrections) carries the offset of the last message it took: a message at or below it is a
redelivery and is skipped, as for the machine states.

Two differences from the embedded engine, both because the members come over a topic:

- a member never heard from may only be behind on another partition, so it is waited for. The
  worker holding its readings partition tells when it has none: a "silent until" message (the
  partition has delivered readings up to then, none of them the machine's) counts as the
  member's "closed until" until its first real one. So a machine without data holds its roll-ups
  back only as far as its partition is behind, as the embedded engine (which sees every machine
  at once and skips one without data) would have it.
- a result that repeats one already rolled up (a machine worker that repeats a batch after a
  crash sends it again) emits nothing, nor does one for a window whose roll-up was forgotten past
  the correction horizon (counted: :attr:`RollupOutcome.stale`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import orjson

from plantstream.records import DeadLetter, Point
from runtimes.kafka.topics import dead_letter
from streams.config import EngineSpec
from streams.machine import WindowResult
from streams.rollup import Rollups

__all__ = ["ROLLUP_STATE_VERSION", "RollupOutcome", "RollupStates"]

ROLLUP_STATE_VERSION = 1
"""Version of a site's saved roll-up state; bump it when the form changes."""


@dataclass
class RollupOutcome:
    """What one windows record produced: roll-up points, or a dead letter, or nothing (a redelivery)."""

    points: list[Point] = field(default_factory=list)
    dead_letter: DeadLetter | None = None
    site: str | None = None
    """Set when the site's state moved on (it is to be saved)."""
    skipped: bool = False
    stale: int = 0
    """Machine results dropped because their window's roll-up was forgotten past the horizon."""


@dataclass
class _Site:
    offset: int
    rollups: Rollups
    marks: dict[str, int]
    silent: set[str] = field(default_factory=set)
    """Members whose mark is a "silent until": they have not reported a window yet."""


class RollupStates:
    """The roll-ups of the sites whose windows partitions this worker holds, with their offsets."""

    def __init__(self, spec: EngineSpec) -> None:
        self.spec = spec
        self._sites: dict[str, _Site] = {}

    def _new_site(self, site: str) -> _Site:
        machines = {mid: m for mid, m in self.spec.machines.items() if m.site == site}
        rollups = Rollups(
            dataclasses.replace(self.spec, machines=machines),
            from_stream=True,
        )
        return _Site(-1, rollups, {})

    def load(self, site: str, saved: bytes) -> int:
        """Continue ``site`` from a state written by :meth:`state`; return its offset.

        Raises:
            ValueError: the state is of another version or names machines the site lacks.
        """
        data = orjson.loads(saved)
        if data.get("version") != ROLLUP_STATE_VERSION:
            raise ValueError(
                f"roll-up state version {data.get('version')!r}, expected {ROLLUP_STATE_VERSION}"
            )
        state = self._new_site(site)
        unknown = sorted(
            set(data["marks"]) - {mid for mids in state.rollups.members.values() for mid in mids}
        )
        if unknown:
            raise ValueError(f"roll-up state has machines the site does not: {', '.join(unknown)}")
        state.rollups.restore_stream(data["rollups"])
        state.marks = {mid: int(mark) for mid, mark in data["marks"].items()}
        state.silent = set(data["silent"])
        state.offset = int(data["offset"])
        self._sites[site] = state
        return state.offset

    def state(self, site: str) -> bytes:
        """The site's roll-up state with the offset of the last record it took, as JSON bytes."""
        s = self._sites[site]
        data = {
            "version": ROLLUP_STATE_VERSION,
            "offset": s.offset,
            "marks": s.marks,
            "silent": sorted(s.silent),
            "rollups": s.rollups.stream_checkpoint(),
        }
        return orjson.dumps(data)

    def forget(self) -> None:
        """Drop every site (the worker's windows partitions were reassigned)."""
        self._sites.clear()

    def take(self, key: bytes | None, value: bytes | None, offset: int, where: str) -> RollupOutcome:
        """Apply one record of the windows topic at ``offset``; never raises for bad input."""
        try:
            return self._take(key, value, offset, where)
        except Exception as exc:  # every per-record error is dead-lettered, never lost silently
            return RollupOutcome(dead_letter=dead_letter("rollup", where, "error", repr(exc), value))

    def _take(self, key: bytes | None, value: bytes | None, offset: int, where: str) -> RollupOutcome:
        try:
            machine, closed_until, silent, results = _parse(value)
        except (ValueError, TypeError, KeyError) as exc:
            return RollupOutcome(dead_letter=dead_letter("rollup", where, "malformed", str(exc), value))
        spec = self.spec.machines.get(machine)
        if spec is None:
            message = f"machine {machine!r} is not in the plant model"
            return RollupOutcome(dead_letter=dead_letter("rollup", where, "unknown_machine", message, value))
        if key != spec.site.encode():
            # A site's roll-ups live in the partition of its key; a message keyed otherwise would
            # be summed apart from the rest of its site.
            message = f"record key {key!r} is not the site {spec.site!r} of machine {machine!r}"
            return RollupOutcome(dead_letter=dead_letter("rollup", where, "wrong_key", message, value))
        site = self._sites.get(spec.site)
        if site is None:
            site = self._sites[spec.site] = self._new_site(spec.site)
        if offset <= site.offset:
            return RollupOutcome(site=spec.site, skipped=True)
        site.offset = offset
        outcome = RollupOutcome(site=spec.site)
        if silent:
            if machine in site.marks and machine not in site.silent:
                return outcome  # it has reported since: an old message of a repeated batch
            site.silent.add(machine)
            site.marks[machine] = max(closed_until, site.marks.get(machine, closed_until))
        elif machine in site.silent:
            # Its first real watermark replaces the silence, even if lower: windows it has data
            # for are still to come.
            site.silent.discard(machine)
            site.marks[machine] = closed_until
        else:
            # A repeated batch may send an older watermark again after a newer one.
            site.marks[machine] = max(closed_until, site.marks.get(machine, closed_until))
        scopes = site.rollups.scopes_of(machine)
        stale_before = site.rollups.stale
        for result in results:
            for scope in scopes:
                outcome.points += site.rollups.add(scope, machine, result)
        for scope in scopes:
            outcome.points += site.rollups.ready(scope, site.marks.get)
        outcome.stale = site.rollups.stale - stale_before
        return outcome


def _parse(value: bytes | None) -> tuple[str, int, bool, list[WindowResult]]:
    """Machine, mark, whether the mark is a silence, and results of a windows message."""
    data: Any = orjson.loads(value or b"")
    if not isinstance(data, dict):
        raise ValueError("a windows message is a JSON object")
    machine = data["machine"]
    silent = "silent_until" in data
    mark = data["silent_until"] if silent else data["closed_until"]
    if not isinstance(machine, str) or not isinstance(mark, int):
        raise ValueError("machine must be text and closed_until or silent_until an integer")
    results = [] if silent else [WindowResult.from_dict(r) for r in data["results"]]
    return machine, mark, silent, results
