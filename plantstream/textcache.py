"""A bounded cache of texts made again and again: series names, escaped keys, formatted times.

Encoders of points meet the same few series, field names and timestamps over and over; keeping
their texts is cheaper than making them again. A full cache starts over rather than evicting one
entry at a time: the working set is small, so it fills again at once with what is in use.
"""

from __future__ import annotations

from typing import TypeVar

__all__ = ["TEXTS_KEPT", "remember"]

TEXTS_KEPT = 4096
"""Entries a cache holds before it starts over."""

_K = TypeVar("_K")


def remember(cache: dict[_K, str], key: _K, text: str) -> str:
    """Keep ``text`` under ``key`` in ``cache`` and return it; a full cache is emptied first."""
    if len(cache) >= TEXTS_KEPT:
        cache.clear()
    cache[key] = text
    return text
