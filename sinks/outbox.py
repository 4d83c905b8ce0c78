"""A durable outbox: lines wait on disk until the database has accepted them.

One SQLite file in WAL mode with ``synchronous=NORMAL`` (standard library ``sqlite3`` only): a
committed append survives a crash or ``kill -9`` of the process; :meth:`Outbox.sync` additionally
forces it to the disk, which the runtime does before a checkpoint. Rows keep their order
(``AUTOINCREMENT`` ids, never reused), so a corrected window is always sent after the version it
corrects. Each row carries a ``key`` (the sink stores the time precision of the line there).

The outbox is bounded by the bytes of the lines it holds (SQLite's own overhead comes on top).
When an append does not fit, the policy decides: ``block`` refuses it (:class:`OutboxFull`; the
sink then makes its caller wait for room, which back-pressures the pipeline) and
``drop_oldest`` deletes the oldest lines to make room and counts them in :attr:`Outbox.dropped`.
An append larger than the whole bound is accepted into an empty outbox, so it can never wait
forever.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, NamedTuple

__all__ = ["Outbox", "OutboxFull", "OutboxRow", "WhenFull"]

WhenFull = Literal["block", "drop_oldest"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    enqueued_us INTEGER NOT NULL,
    key TEXT NOT NULL,
    line BLOB NOT NULL
)
"""


class OutboxFull(Exception):
    """An append under policy ``block`` that does not fit; nothing was written."""


class OutboxRow(NamedTuple):
    """One waiting line: its id (for deletion), its key and the line's bytes."""

    id: int
    key: str
    line: bytes


class Outbox:
    """Lines waiting for delivery, in order, in one SQLite file at ``path``."""

    def __init__(self, path: Path, *, max_bytes: int, when_full: WhenFull = "block") -> None:
        if max_bytes <= 0:
            raise ValueError("max_bytes must be > 0")
        self.path = path
        self.max_bytes = max_bytes
        self.when_full = when_full
        self.dropped = 0
        """Lines deleted by ``drop_oldest`` since this outbox was opened."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA auto_vacuum=INCREMENTAL")  # takes effect on a new file only
        self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode: a commit survives the process dying; sync() covers power loss.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA journal_size_limit=67108864")
        self._db.execute(_SCHEMA)
        self._lines = self._bytes = 0
        self._recount()

    @property
    def lines(self) -> int:
        """Lines waiting."""
        return self._lines

    @property
    def size_bytes(self) -> int:
        """Bytes of the lines waiting (what the bound counts)."""
        return self._bytes

    @property
    def oldest_age_s(self) -> float:
        """Seconds the oldest waiting line has waited; 0 when the outbox is empty."""
        row = self._db.execute("SELECT enqueued_us FROM outbox ORDER BY id LIMIT 1").fetchone()
        if row is None:
            return 0.0
        return max(0.0, time.time() - int(row[0]) / 1e6)

    def has_room(self, size: int) -> bool:
        """Whether ``size`` more bytes fit (always true for an empty outbox)."""
        return self._lines == 0 or self._bytes + size <= self.max_bytes

    def append(self, items: Sequence[tuple[str, bytes]], *, force: bool = False) -> None:
        """Add ``(key, line)`` items at the end; returns once they are committed.

        Raises:
            OutboxFull: policy ``block``, the items do not fit and ``force`` is not set.
        """
        if not items:
            return
        size = sum(len(line) for _, line in items)
        if not force and not self.has_room(size):
            if self.when_full == "block":
                raise OutboxFull(f"{self.path}: {self._bytes} of {self.max_bytes} bytes used")
            self._drop_oldest(self._bytes + size - self.max_bytes)
        now = int(time.time() * 1e6)
        with self._transaction():
            self._db.executemany(
                "INSERT INTO outbox (enqueued_us, key, line) VALUES (?, ?, ?)",
                [(now, key, line) for key, line in items],
            )
        self._lines += len(items)
        self._bytes += size

    def peek(self, limit: int) -> list[OutboxRow]:
        """The oldest ``limit`` rows, oldest first; they stay until :meth:`delete`."""
        cursor = self._db.execute("SELECT id, key, line FROM outbox ORDER BY id LIMIT ?", (limit,))
        return list(map(OutboxRow._make, cursor))

    def peek_after(self, row_id: int, limit: int) -> list[OutboxRow]:
        """The ``limit`` rows after ``row_id``, oldest first (the batch after one being sent)."""
        cursor = self._db.execute(
            "SELECT id, key, line FROM outbox WHERE id > ? ORDER BY id LIMIT ?", (row_id, limit)
        )
        return list(map(OutboxRow._make, cursor))

    def delete(self, rows: Sequence[OutboxRow]) -> None:
        """Remove delivered rows (rows already gone, e.g. dropped meanwhile, are ignored)."""
        if not rows:
            return
        first, last = min(row.id for row in rows), max(row.id for row in rows)
        with self._transaction():
            if last - first + 1 == len(rows):
                # Consecutive ids (the usual peek): no row inside the range can be another's, as
                # ids only grow; one range delete is far cheaper than one per row.
                cursor = self._db.execute("DELETE FROM outbox WHERE id BETWEEN ? AND ?", (first, last))
            else:
                cursor = self._db.executemany("DELETE FROM outbox WHERE id = ?", [(row.id,) for row in rows])
        if cursor.rowcount == len(rows):
            self._lines -= len(rows)
            self._bytes -= sum(len(row.line) for row in rows)
        else:
            self._recount()
        if self._lines == 0:
            # Give the pages of a drained backlog back to the file system.
            self._db.execute("PRAGMA incremental_vacuum")

    def sync(self) -> None:
        """Force every committed append to the disk (the WAL holds what is not checkpointed yet)."""
        for name in (self.path, Path(f"{self.path}-wal")):
            try:
                handle = os.open(name, os.O_RDONLY)
            except FileNotFoundError:
                continue
            try:
                os.fsync(handle)
            finally:
                os.close(handle)

    def close(self) -> None:
        """Close the database (committed lines stay for the next open)."""
        self._db.close()

    def _drop_oldest(self, excess: int) -> None:
        freed = dropped = 0
        doomed: list[int] = []
        cursor = self._db.execute("SELECT id, LENGTH(line) FROM outbox ORDER BY id")
        try:
            for row_id, size in cursor:
                if freed >= excess:
                    break
                doomed.append(row_id)
                freed += size
                dropped += 1
        finally:
            cursor.close()
        with self._transaction():
            self._db.executemany("DELETE FROM outbox WHERE id = ?", [(i,) for i in doomed])
        self.dropped += dropped
        self._lines -= dropped
        self._bytes -= freed

    def _recount(self) -> None:
        lines, size = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(LENGTH(line)), 0) FROM outbox"
        ).fetchone()
        self._lines = int(lines)
        self._bytes = int(size)

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on an exception."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: object, *_: object) -> None:
        self._db.execute("ROLLBACK" if kind is not None else "COMMIT")
