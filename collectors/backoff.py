"""Capped exponential back-off with full jitter, for the one reconnect loop of each client."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

__all__ = ["Backoff"]


@dataclass
class Backoff:
    """Delays for successive failed attempts: uniform in [0, min(cap, first × 2^attempt)].

    Full jitter spreads the reconnects of many clients after a broker restart, so they do not
    all arrive in the same instant.
    """

    first_s: float = 0.5
    cap_s: float = 30.0
    rng: random.Random = field(default_factory=random.Random)
    attempt: int = 0

    def next_delay(self) -> float:
        """The delay before the next attempt; each call counts one more failure."""
        ceiling = min(self.cap_s, self.first_s * 2 ** min(self.attempt, 30))
        self.attempt += 1
        return self.rng.uniform(0, ceiling)

    def reset(self) -> None:
        """A connection succeeded: start again from the shortest delay."""
        self.attempt = 0
