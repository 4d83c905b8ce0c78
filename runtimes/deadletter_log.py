"""Dead letters said in the log: never silent, never a flood.

A source whose every reading is refused (a misspelt machine in a topic, a device sending the
wrong payload) is a hole in the figures, and the dead-letter folder alone is read by nobody. So
the first dead letter of each (reason, source) pair is logged at once, as a warning with what it
was and why; the ones after it are only counted, and a digest line with the counts of every pair
goes to the log every ``interval_s`` (60 s) while more arrive, and once more when the pipeline
stops. A stream of thousands of refusals a second is thus a line per pair plus a line a minute.

Memory is bounded: at most :data:`MAX_PAIRS` pairs are remembered (sources and reasons are few;
beyond that, new pairs are counted together as ``source others any``), and a digest names at most
:data:`DIGEST_PAIRS` pairs, the most frequent first.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable

from plantstream.records import DeadLetter

__all__ = ["DIGEST_PAIRS", "MAX_PAIRS", "DeadLetterLog"]

MAX_PAIRS = 10_000
"""The most (reason, source) pairs remembered as already logged."""

DIGEST_PAIRS = 20
"""The most pairs a digest line names (the rest are summed into one count)."""

_ERROR_SHOWN = 200
"""Characters of a letter's error shown in its first line (the letter itself has more)."""


class DeadLetterLog:
    """Logs dead letters: the first of each (reason, source) at once, then a digest per interval.

    Args:
        logger: where the lines go (warnings).
        interval_s: the least time between two digest lines.
        clock: monotonic seconds (injected by tests).
    """

    def __init__(
        self,
        logger: logging.Logger,
        *,
        interval_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = logger
        self.interval_s = interval_s
        self._clock = clock
        self._announced: set[tuple[str, str]] = set()
        self._pending: Counter[tuple[str, str]] = Counter()
        self._last_digest = clock()

    def note(self, letter: DeadLetter) -> None:
        """Count one dead letter; log it if its (reason, source) is new, or a digest if one is due."""
        pair = (letter.reason, letter.source)
        moment = self._clock()
        if not self._pending and moment - self._last_digest >= self.interval_s:
            # Quiet for a whole interval: the next digest counts from now, an interval later.
            self._last_digest = moment
        if pair not in self._announced and len(self._announced) < MAX_PAIRS:
            self._announced.add(pair)
            error = letter.error if len(letter.error) <= _ERROR_SHOWN else letter.error[:_ERROR_SHOWN] + "..."
            self._log.warning(
                "dead letter from source %s, reason %s, at %s: %s; more of the same are counted "
                "and summed in the log every %g s (all are in the dead-letter folder)",
                letter.source,
                letter.reason,
                letter.where,
                error,
                self.interval_s,
            )
        elif pair in self._announced:
            self._pending[pair] += 1
        else:
            self._pending["any", "others"] += 1  # past the bound: one count for every new pair
        self.digest()

    def digest(self, *, now: bool = False) -> None:
        """Log the counts since the last digest if the interval has passed (or ``now``) and any."""
        moment = self._clock()
        if not self._pending or (not now and moment - self._last_digest < self.interval_s):
            return
        shown = self._pending.most_common(DIGEST_PAIRS)
        rest = sum(self._pending.values()) - sum(count for _, count in shown)
        parts = [f"source {source} {reason}: {count}" for (reason, source), count in shown]
        if rest:
            parts.append(f"{len(self._pending) - len(shown)} more pair(s): {rest}")
        self._log.warning("dead letters in the last %.0f s: %s", moment - self._last_digest, "; ".join(parts))
        self._pending.clear()
        self._last_digest = moment
