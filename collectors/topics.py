"""MQTT topic templates: ``plant/{line}/{machine}/meter`` to a subscription filter and a matcher.

Pure: no I/O. ``{name}`` matches one level and captures it; ``+`` matches one level; a final
``#`` matches the rest (MQTT 3.1.1 §4.7).
"""

from __future__ import annotations

import re

__all__ = ["TopicTemplate"]

_PLACEHOLDER = re.compile(r"^\{([A-Za-z_][A-Za-z0-9_]*)\}$")


class TopicTemplate:
    """A topic pattern with named levels."""

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self._levels: list[str | None] = []  # None: any one level; "#": the rest; else literal
        self._names: list[str | None] = []
        for level in pattern.split("/"):
            found = _PLACEHOLDER.match(level)
            if found:
                self._levels.append(None)
                self._names.append(found.group(1))
            elif level == "+":
                self._levels.append(None)
                self._names.append(None)
            else:
                self._levels.append(level)
                self._names.append(None)
        self._seen: dict[str, dict[str, str] | None] = {}
        self.filter = "/".join("+" if lit is None else lit for lit in self._levels)
        """The MQTT subscription filter."""

    @property
    def names(self) -> list[str]:
        """The placeholder names, in order."""
        return [n for n in self._names if n is not None]

    def match(self, topic: str) -> dict[str, str] | None:
        """Return the captured levels of ``topic``, or ``None`` when it does not fit the pattern.

        Meters publish on the same few topics again and again: answers are remembered (a bounded
        cache), and the caller must not modify the dict it gets.
        """
        if topic in self._seen:
            return self._seen[topic]
        captured = self._match(topic)
        if len(self._seen) >= 4096:
            self._seen.clear()
        self._seen[topic] = captured
        return captured

    def _match(self, topic: str) -> dict[str, str] | None:
        parts = topic.split("/")
        levels = self._levels
        if levels and levels[-1] == "#":
            if len(parts) < len(levels) - 1:
                return None
        elif len(parts) != len(levels):
            return None
        captured: dict[str, str] = {}
        for part, literal, name in zip(parts, levels, self._names, strict=False):
            if literal == "#":
                break
            if literal is None:
                if not part:
                    return None
                if name is not None:
                    captured[name] = part
            elif part != literal:
                return None
        return captured
