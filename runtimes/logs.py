"""Logging for the commands: our own lines at the chosen level, the client libraries' below them.

plantstream says once, in its own words, what happened to a source ("source line1-plc: ...:
connection lost; reconnecting with back-off"). The OPC UA library says the same things again,
at WARNING and ERROR and with tracebacks, and says things an operator cannot act on ("Requested
session timeout to be 3600000ms, got 600000ms instead", "Received data for unknown
subscription"). Its records are therefore demoted to DEBUG: they are shown only when the level
is DEBUG, which ``PLANTSTREAM_LOG_LEVEL=debug`` selects for any command.
"""

from __future__ import annotations

import logging
import os

__all__ = ["LEVEL_VARIABLE", "LIBRARIES", "LibraryDemotion", "setup_logging"]

LIBRARIES = ("asyncua",)
"""Loggers (and their children) whose records are demoted to DEBUG."""

LEVEL_VARIABLE = "PLANTSTREAM_LOG_LEVEL"
"""The environment variable that overrides a command's log level (debug, info, warning, error)."""

_FORMAT = "%(levelname)s %(name)s: %(message)s"
_FORMAT_WITH_TIME = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class LibraryDemotion(logging.Filter):
    """A handler filter: a library's record becomes a DEBUG record, shown only at level DEBUG.

    On the handler, not on the library's logger: a logger's filters do not see the records of
    its children (``asyncua.client.ua_client``), a handler's see them all.
    """

    def __init__(self, level: int, libraries: tuple[str, ...] = LIBRARIES) -> None:
        """Demote the records of ``libraries``; let them through only when ``level`` is DEBUG."""
        super().__init__()
        self._level = level
        self._prefixes = tuple(f"{name}." for name in libraries)
        self._names = frozenset(libraries)

    def filter(self, record: logging.LogRecord) -> bool:
        """Keep our own records as they are; demote a library's, and drop it above DEBUG."""
        if record.name not in self._names and not record.name.startswith(self._prefixes):
            return True
        record.levelno = logging.DEBUG
        record.levelname = logging.getLevelName(logging.DEBUG)
        return self._level <= logging.DEBUG


def setup_logging(level: int, *, timestamps: bool = False) -> int:
    """Log to stderr at ``level`` (or ``PLANTSTREAM_LOG_LEVEL``), the libraries' records at DEBUG.

    Args:
        level: the command's level when the environment does not choose one.
        timestamps: start every line with its time (long-running commands).

    Returns:
        The level in force.

    Raises:
        SystemExit: when ``PLANTSTREAM_LOG_LEVEL`` names no level, with the accepted names.
    """
    chosen = os.environ.get(LEVEL_VARIABLE, "").strip()
    if chosen:
        value = logging.getLevelName(chosen.upper())
        if not isinstance(value, int):
            raise SystemExit(f"{LEVEL_VARIABLE}={chosen!r} is not a level: use debug, info, warning or error")
        level = value
    # Without force: a handler already on the root (a test's log capture) is kept, and filtered.
    logging.basicConfig(level=level, format=_FORMAT_WITH_TIME if timestamps else _FORMAT)
    root = logging.getLogger()
    root.setLevel(level)
    demotion = LibraryDemotion(level)
    for handler in root.handlers:
        for earlier in [f for f in handler.filters if isinstance(f, LibraryDemotion)]:
            handler.removeFilter(earlier)
        handler.addFilter(demotion)
    for name in LIBRARIES:
        # Above DEBUG the library's INFO and DEBUG records are not even made (asyncua logs every
        # publish response at INFO); its WARNING and ERROR records reach the handler, which drops
        # them. At DEBUG everything reaches it, demoted.
        logging.getLogger(name).setLevel(logging.NOTSET if level <= logging.DEBUG else logging.WARNING)
    return level
