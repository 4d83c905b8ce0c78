"""Progress of long commands (``replay``, ``report cbam``) for a person watching a terminal.

A bar on stderr when stderr is a terminal, nothing at all otherwise: a log file or a pipe gets
the command's own lines and no control codes. The bar is redrawn a few times a second by rich's
own thread, whatever the rate of updates, and callers update it only every
:data:`UPDATE_EVERY_LINES` lines, so it costs the replay nothing measurable. Lines printed
through the same console while the bar is shown (a skipped line's report) appear above it.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import Self

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from runtimes.replay import OverlongLine

__all__ = ["UPDATE_EVERY_LINES", "TerminalProgress"]

UPDATE_EVERY_LINES = 1024
"""Lines read between two updates of the bar."""

_REFRESH_PER_SECOND = 4
"""Redraws per second: enough to see it move, few enough to cost nothing on a slow terminal."""


class TerminalProgress:
    """A transient progress bar on ``console`` (stderr), shown only when stderr is a terminal.

    Use it as a context manager; outside a terminal every method does nothing. With a ``total``
    (bytes of an input file) the bar shows the share done and the time left; without one (stdin,
    or a sequence of steps) it shows what is being done and the time elapsed.
    """

    def __init__(
        self, console: Console, description: str, total: int | None = None, *, enabled: bool | None = None
    ) -> None:
        """Prepare a bar; ``enabled`` defaults to whether stderr is a terminal."""
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self._description = description
        self._total = total
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        if self.enabled:
            counted = [BarColumn(), DownloadColumn(), TimeRemainingColumn()] if total else []
            self._progress = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                *counted,
                TimeElapsedColumn(),
                console=console,
                transient=True,
                refresh_per_second=_REFRESH_PER_SECOND,
            )

    def __enter__(self) -> Self:
        """Show the bar (on a terminal)."""
        if self._progress is not None:
            self._progress.start()
            self._task = self._progress.add_task(self._description, total=self._total)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        """Remove the bar, whatever ended the block."""
        if self._progress is not None:
            self._progress.stop()

    def update(self, completed: int | None = None, description: str | None = None) -> None:
        """Move the bar to ``completed`` (bytes) and, if given, say what is being done now.

        A new description is drawn at once: steps are few, and a short one would otherwise pass
        between two redraws unseen.
        """
        if self._progress is not None and self._task is not None:
            self._progress.update(
                self._task, completed=completed, description=description, refresh=description is not None
            )

    def bytes_read(self, lines: Iterable[bytes | OverlongLine]) -> Iterator[bytes | OverlongLine]:
        """Yield ``lines`` unchanged, moving the bar by their length every few lines."""
        if self._progress is None:
            yield from lines
            return
        done = 0
        countdown = UPDATE_EVERY_LINES
        for line in lines:
            done += line.length if isinstance(line, OverlongLine) else len(line)
            countdown -= 1
            if not countdown:
                countdown = UPDATE_EVERY_LINES
                self.update(done)
            yield line
        self.update(done)
