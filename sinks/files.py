"""The JSON-lines file sink: points, and input that could not be used, one JSON object per line.

Points go to ``<dir>/points/YYYY-MM-DD.jsonl`` by the UTC date of the point's time, dead letters to
``<dir>/deadletter/YYYY-MM-DD.jsonl`` by the date they were refused, shortened and bounded as
:mod:`sinks.deadletters` says. Folders are created 0700 and files 0600 (:mod:`plantstream.private`).
Writes are appended and flushed per batch, one write per file; :meth:`JsonLinesSink.sync` forces
them to disk (the runtime calls it before it checkpoints, so a checkpoint never claims windows
whose points are not on disk). A corrected window is written again with the same identity:
readers keep the last line of each identity.

Two settings bound the disk they take (the plant file's ``files:``, docs/operations.md): without
``readings`` the raw ``reading`` points are left out (the plant's other sinks still get them), and
with ``keep_days`` the day files of ``points/`` more than that many days before today (UTC, by the
wall clock) are deleted, checked when the sink starts writing and once a day after, each logged
and counted in :attr:`JsonLinesSink.days_deleted`.

``on_write`` (optional, for benchmarks and live views) is called after each batch is flushed with
the batch and the wall-clock time (``time.time()``) of the flush; without it the sink does no
extra work per batch beyond one ``None`` check.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TextIO

from plantstream.private import open_private, private_dir
from plantstream.records import DeadLetter, Point, ReadingRow, reading_row_json
from sinks.deadletters import DEFAULT_MAX_BYTES, DeadLetterFolder

__all__ = ["JsonLinesSink", "WriteHook"]

_log = logging.getLogger("plantstream.sinks.files")

WriteHook = Callable[[Sequence[Point | ReadingRow], float], None]
"""Called with a batch of points (raw readings' as rows) just flushed and the wall-clock time of the
flush (epoch seconds)."""


class JsonLinesSink:
    """Appends points and dead letters to daily JSON-lines files under ``directory``.

    Args:
        directory: where ``points/`` and ``deadletter/`` are created.
        on_write: called after every flushed batch of points (see :data:`WriteHook`); may also be
            set later through the attribute of the same name.
        dead_letter_max_bytes: the dead-letter folder's bound (policy ``drop_oldest``).
        readings: also write the raw ``reading`` points (rows and points alike).
        keep_days: delete ``points/`` day files more than this many days before today (None: never).
        today: today's UTC date (for tests; the wall clock's by default).
    """

    def __init__(
        self,
        directory: Path,
        *,
        on_write: WriteHook | None = None,
        dead_letter_max_bytes: int = DEFAULT_MAX_BYTES,
        readings: bool = True,
        keep_days: int | None = None,
        today: Callable[[], date] = lambda: datetime.now(tz=UTC).date(),
    ) -> None:
        if keep_days is not None and keep_days < 1:
            raise ValueError("keep_days must be at least 1")
        self.directory = directory
        self.on_write = on_write
        self.readings = readings
        self.keep_days = keep_days
        self._today = today
        self._pruned_on: date | None = None
        self.days_deleted = 0
        """Day files of ``points/`` deleted for ``keep_days``."""
        self.dead_letters = DeadLetterFolder(directory, max_bytes=dead_letter_max_bytes)
        self._files: dict[Path, TextIO] = {}
        # The handle of each (kind, UTC date), so that a point costs one dictionary lookup, not a
        # formatted date and two path joins.
        self._by_day: dict[tuple[str, date], TextIO] = {}
        self.points_written = 0
        self.dead_letters_written = 0

    def write(self, points: Iterable[Point | ReadingRow]) -> None:
        """Append ``points``, each to the file of its day; then call ``on_write``, if set.

        A :data:`~plantstream.records.ReadingRow` is written as the line of its ``reading`` point.
        """
        hook = self.on_write
        if hook is None:
            self._append(points)
            return
        batch = list(points)
        self._append(batch)
        hook(batch, time.time())

    def dead_letter(self, letter: DeadLetter) -> None:
        """Append one refused input with its reason (bounded: :mod:`sinks.deadletters`)."""
        self.dead_letters.write(letter)
        self.dead_letters_written += 1

    def flush(self) -> list[int]:
        """Hand everything written so far to the OS; return the descriptors to ``os.fsync``.

        For a caller that forces them to disk elsewhere (a worker thread) while writing goes on.
        """
        for handle in self._files.values():
            handle.flush()
        return [handle.fileno() for handle in self._files.values()] + self.dead_letters.flush()

    def sync(self) -> None:
        """Force everything written so far to disk."""
        for descriptor in self.flush():
            os.fsync(descriptor)

    def close(self) -> None:
        """Sync and close every file."""
        self.sync()
        for handle in self._files.values():
            handle.close()
        self._files.clear()
        self._by_day.clear()
        self.dead_letters.close()

    def _append(self, points: Iterable[Point | ReadingRow]) -> None:
        # The lines of a batch are gathered per file and written with one call each: two
        # writes per point cost more than making its JSON.
        by_day = self._by_day
        gathered: dict[TextIO, list[str]] = {}
        day_then: date | None = None
        lines: list[str] = []
        written = 0
        if self.keep_days is not None:
            today = self._today()
            if today != self._pruned_on:
                self._prune(today - timedelta(days=self.keep_days))
                self._pruned_on = today
        readings = self.readings
        for point in points:
            if isinstance(point, tuple):
                if not readings:
                    continue
                day = point[1].date()
                line = reading_row_json(point)
            else:
                if not readings and point.measurement == "reading":
                    continue
                day = point.time.date()
                line = point.to_json()
            if day != day_then:
                handle = by_day.get(("points", day))
                if handle is None:
                    handle = by_day["points", day] = self._file("points", day.isoformat())
                lines = gathered.setdefault(handle, [])
                day_then = day
            lines.append(line)
            written += 1
        for handle, text in gathered.items():
            text.append("")  # the newline after the last line
            handle.write("\n".join(text))
            handle.flush()
        self.points_written += written

    def _prune(self, oldest_kept: date) -> None:
        """Delete the day files of ``points/`` before ``oldest_kept`` (closing any still open)."""
        folder = self.directory / "points"
        if not folder.is_dir():
            return
        for path in sorted(folder.glob("*.jsonl")):
            try:
                # Ours are named YYYY-MM-DD; fromisoformat alone would also take YYYYMMDD.
                day = date.fromisoformat(path.stem) if len(path.stem) == 10 else None
            except ValueError:
                day = None
            if day is None:
                continue  # not a day file of ours: left alone
            if day >= oldest_kept:
                continue
            handle = self._files.pop(path, None)
            if handle is not None:
                handle.close()
                self._by_day.pop(("points", day), None)
            try:
                path.unlink()
            except OSError as exc:
                _log.warning("files: could not delete %s (keep_days %s): %s", path, self.keep_days, exc)
                continue
            self.days_deleted += 1
            _log.info("files: deleted %s, older than keep_days %s", path, self.keep_days)

    def _file(self, kind: str, day: str) -> TextIO:
        path = self.directory / kind / f"{day}.jsonl"
        handle = self._files.get(path)
        if handle is None:
            private_dir(path.parent, tighten=True)
            handle = self._files[path] = open_private(path, "a", encoding="utf-8")
        return handle
