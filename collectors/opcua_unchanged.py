"""Report by exception, made explicit: a value a live subscription has not reported is unchanged.

An OPC UA data-change subscription (no deadband) reports a monitored item only when its value or
status changes (OPC UA Part 4, 5.12.1). A piece counter of a machine that stands for an hour sends
nothing for that hour, and downstream that silence cannot be told from a meter that stopped
reporting: the counter's coverage shows a gap, and a CBAM report's data completeness counts the
hour as missing. The collector knows better while the subscription lives: every Publish response
and keep-alive says that what was not reported has not changed. So, for a group with
``repeat_unchanged_s``, a tag silent that long is taken again with its last value, at a time the
subscription vouches for:

- **the source's clock**, estimated as the newest event time the subscription delivered plus the
  time (this host's monotonic clock) from its arrival to the subscription's latest message. It
  never runs ahead of what the server has vouched for, and a server that vanishes vouches for
  nothing past its last message. A simulator whose clock runs faster than real time is
  underestimated, which only makes repeats rarer.
- **never behind** anything the subscription delivered: a repeat is never late data. A change
  sampled just before the latest message may still come in the next one, a publishing interval
  behind the repeat; the engine's allowed lateness reorders that.

Only a good or uncertain last value is repeated (a bad one says nothing about the process), and
only in the session that took it: after a reconnect, the catch-up read takes every value anew.
Pure: no I/O; the caller passes times.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

__all__ = ["Taken", "UnchangedValues"]

K = TypeVar("K")

Taken = tuple[datetime, Any, int]
"""A tag's last value as taken: (event time, value, status code)."""

_BAD = 0b10
"""The severity bits (the top two of a status code) of Bad (OPC UA Part 4, 7.39)."""


@dataclass
class UnchangedValues(Generic[K]):
    """One subscription's source clock, and which of its tags are due to be taken again.

    Args:
        every: how long a tag may stay silent before its value is taken again.
    """

    every: timedelta
    newest: datetime | None = None
    """The newest event time the subscription delivered this session."""
    newest_at: float = 0.0
    """When that arrived (monotonic seconds)."""

    def delivered(self, ts: datetime, at: float) -> None:
        """The subscription delivered a value of event time ``ts`` at ``at`` (monotonic seconds)."""
        if self.newest is None or ts > self.newest:
            self.newest = ts
            self.newest_at = at

    def clock(self, last_message_at: float) -> datetime | None:
        """The source's time the subscription vouches for, given when its latest message came.

        None before anything was delivered.
        """
        if self.newest is None:
            return None
        return self.newest + timedelta(seconds=max(0.0, last_message_at - self.newest_at))

    def due(
        self, taken: Iterable[tuple[K, Taken | None]], last_message_at: float
    ) -> tuple[datetime | None, list[K]]:
        """The repeat time (the clock) and the tags to take again then: silent for ``every`` as of it.

        The clock is None, and nothing is due, before the subscription delivered anything.
        """
        now = self.clock(last_message_at)
        if now is None:
            return None, []
        since = now - self.every
        return now, [
            key for key, last in taken if last is not None and last[0] <= since and last[2] >> 30 != _BAD
        ]

    def forget(self) -> None:
        """A new session: nothing vouched for until it delivers."""
        self.newest = None
        self.newest_at = 0.0
