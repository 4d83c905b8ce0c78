"""Quiet machines of a live source move on with the source's clock, so their windows close.

An OPC UA subscription reports changes only: a machine that stands still (down for an hour, an
oven holding its temperature) may send nothing, and without readings its windows would stay open
until it changes again, exactly when an operator wants to see the downtime. While a source is
connected and other machines on it report newer times, a machine that has been quiet for the
idle time gets an engine tick (:meth:`streams.engine.Engine.tick`) half an idle time behind the
source's clock: its state holds, nothing is invented, and real data that arrives later than the
tick still corrects what it closed.

The source's clock is the newest reading time of that source, never the local clock, so this
works at any simulator speed; it is used for OPC UA sources only (one server, one clock), not for
MQTT, where meters and gateways each stamp with their own clocks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

__all__ = ["IdleTicker"]


class IdleTicker:
    """Remembers each source's clock and each machine's newest time; ticks the quiet ones."""

    def __init__(self, tick: Callable[[str, int], None], idle_us: int, sources: Iterable[str]) -> None:
        """``tick(machine, ts_us)`` moves a machine on; ``sources`` are the ids whose clocks count."""
        self._tick = tick
        self._idle_us = idle_us
        self._sources = set(sources)
        self._clock: dict[str, int] = {}
        self._newest: dict[str, dict[str, int]] = {}
        self.ticks = 0
        """Ticks given so far."""

    def seen(self, source: str | None, machine: str, ts: int) -> None:
        """Note a reading of ``machine`` at ``ts`` (µs since the epoch) that went to the engine."""
        if source not in self._sources:
            return
        if ts > self._clock.get(source, -1):
            self._clock[source] = ts
        machines = self._newest.setdefault(source, {})
        if ts > machines.get(machine, -1):
            machines[machine] = ts

    def forget(self, source: str) -> None:
        """The source lost its connection: no ticks until it reports again (the gap stays unknown)."""
        self._clock.pop(source, None)
        self._newest.pop(source, None)

    def tick_quiet(self) -> int:
        """Tick every machine quiet for the idle time on its source's clock; return how many."""
        given = 0
        for source, clock in self._clock.items():
            machines = self._newest[source]
            for machine, newest in machines.items():
                if clock - newest >= self._idle_us:
                    at = clock - self._idle_us // 2
                    self._tick(machine, at)
                    machines[machine] = at
                    given += 1
        self.ticks += given
        return given
