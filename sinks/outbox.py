"""A durable outbox: lines wait on disk until the database has accepted them.

One SQLite file in WAL mode with ``synchronous=NORMAL`` (standard library ``sqlite3`` only): a
committed append survives a crash or ``kill -9`` of the process; :meth:`Outbox.sync` additionally
forces it to the disk, which the runtime does before a checkpoint.

Lines are stored in chunks: one row per appended group of lines of one ``key`` (the sink stores
the time precision there), at most ``chunk_lines`` lines joined by newlines (so a line must not
contain a line break; line protocol cannot carry one anyway). A row per line cost more in SQLite
and in Python objects than encoding the line did. Rows keep their order (``AUTOINCREMENT`` ids,
never reused), and the lines of one key keep theirs inside and across chunks, so a corrected
window is always sent after the version it corrects. Lines of different keys in one append go to
separate chunks; their relative order is not kept, which is harmless because a key is chosen per
measurement (no series has lines under two keys).

The outbox is bounded by the bytes of the lines it holds (separators and SQLite's own overhead
come on top). When an append does not fit, the policy decides: ``block`` refuses it
(:class:`OutboxFull`; the sink then makes its caller wait for room, which back-pressures the
pipeline) and ``drop_oldest`` deletes the oldest whole chunks to make room and counts their lines
in :attr:`Outbox.dropped`. An append larger than the whole bound is accepted into an empty
outbox, so it can never wait forever.

A file of the first format (table ``outbox``, one row per line) is converted on open, in one
transaction: consecutive lines of one key become chunks, in their order.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal, NamedTuple

from plantstream.private import private_dir, private_sqlite

__all__ = ["Outbox", "OutboxChunk", "OutboxFull", "WhenFull"]

WhenFull = Literal["block", "drop_oldest"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    enqueued_us INTEGER NOT NULL,
    key TEXT NOT NULL,
    lines INTEGER NOT NULL,
    body BLOB NOT NULL
)
"""
_INSERT = "INSERT INTO chunks (enqueued_us, key, lines, body) VALUES (?, ?, ?, ?)"
_COLUMNS = "id, key, lines, body"


class OutboxFull(Exception):
    """An append under policy ``block`` that does not fit; nothing was written."""


class OutboxChunk(NamedTuple):
    """One stored chunk: its id (for deletion), its key, how many lines, and the lines joined by newlines."""

    id: int
    key: str
    lines: int
    body: bytes

    @property
    def size(self) -> int:
        """Bytes of its lines without the separators (what the bound counts)."""
        return len(self.body) - self.lines + 1


class Outbox:
    """Lines waiting for delivery, in order, in chunks, in one SQLite file at ``path``."""

    def __init__(
        self, path: Path, *, max_bytes: int, when_full: WhenFull = "block", chunk_lines: int = 5_000
    ) -> None:
        if max_bytes <= 0:
            raise ValueError("max_bytes must be > 0")
        if chunk_lines <= 0:
            raise ValueError("chunk_lines must be > 0")
        self.path = path
        self.max_bytes = max_bytes
        self.when_full = when_full
        self.chunk_lines = chunk_lines
        """Most lines in one chunk (the sink uses its batch size, so a batch is a few chunks)."""
        self.dropped = 0
        """Lines deleted by ``drop_oldest`` since this outbox was opened."""
        # Owner-only (the queued points are the plant's data); the outbox folder is plantstream's.
        private_dir(path.parent, tighten=True)
        self._db = sqlite3.connect(private_sqlite(path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA auto_vacuum=INCREMENTAL")  # takes effect on a new file only
        self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode: a commit survives the process dying; sync() covers power loss.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA journal_size_limit=67108864")
        with self._transaction():
            self._db.execute(_SCHEMA)
            self._migrate_line_rows()
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
        row = self._db.execute("SELECT enqueued_us FROM chunks ORDER BY id LIMIT 1").fetchone()
        if row is None:
            return 0.0
        return max(0.0, time.time() - int(row[0]) / 1e6)

    def has_room(self, size: int) -> bool:
        """Whether ``size`` more bytes fit (always true for an empty outbox)."""
        return self._lines == 0 or self._bytes + size <= self.max_bytes

    def append(self, groups: Iterable[tuple[str, Sequence[str]]], *, force: bool = False) -> None:
        """Add each ``(key, lines)`` group at the end, in chunks; returns once they are committed.

        Lines are text without line breaks; they are stored UTF-8 encoded.

        Raises:
            OutboxFull: policy ``block``, the lines do not fit and ``force`` is not set.
        """
        now = int(time.time() * 1e6)
        rows: list[tuple[int, str, int, bytes]] = []
        size = count = 0
        step = self.chunk_lines
        for key, lines in groups:
            for at in range(0, len(lines), step):
                part = lines[at : at + step]
                # One join and one encode per chunk: far cheaper than one per line.
                body = "\n".join(part).encode()
                rows.append((now, key, len(part), body))
                size += len(body) - len(part) + 1
                count += len(part)
        if not rows:
            return
        if not force and not self.has_room(size):
            if self.when_full == "block":
                raise OutboxFull(f"{self.path}: {self._bytes} of {self.max_bytes} bytes used")
            self._drop_oldest(self._bytes + size - self.max_bytes)
        with self._transaction():
            self._db.executemany(_INSERT, rows)
        self._lines += count
        self._bytes += size

    def peek(self, limit: int) -> list[OutboxChunk]:
        """The oldest chunks holding at most ``limit`` lines together (at least one chunk), oldest first.

        They stay until :meth:`delete`.
        """
        cursor = self._db.execute(f"SELECT {_COLUMNS} FROM chunks ORDER BY id LIMIT ?", (limit,))
        return _up_to(cursor, limit)

    def peek_after(self, chunk_id: int, limit: int) -> list[OutboxChunk]:
        """Like :meth:`peek`, for the chunks after ``chunk_id`` (the batch after one being sent)."""
        cursor = self._db.execute(
            f"SELECT {_COLUMNS} FROM chunks WHERE id > ? ORDER BY id LIMIT ?", (chunk_id, limit)
        )
        return _up_to(cursor, limit)

    def delete(self, chunks: Sequence[OutboxChunk]) -> None:
        """Remove delivered chunks (chunks already gone, e.g. dropped meanwhile, are ignored)."""
        if not chunks:
            return
        first, last = min(c.id for c in chunks), max(c.id for c in chunks)
        with self._transaction():
            if last - first + 1 == len(chunks):
                # Consecutive ids (the usual peek): no row inside the range can be another's, as
                # ids only grow; one range delete is cheaper than one per row.
                cursor = self._db.execute("DELETE FROM chunks WHERE id BETWEEN ? AND ?", (first, last))
            else:
                cursor = self._db.executemany("DELETE FROM chunks WHERE id = ?", [(c.id,) for c in chunks])
        if cursor.rowcount == len(chunks):
            self._lines -= sum(c.lines for c in chunks)
            self._bytes -= sum(c.size for c in chunks)
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
        # Sizes from the stored lengths: the bodies themselves are not read.
        cursor = self._db.execute("SELECT id, lines, LENGTH(body) - lines + 1 FROM chunks ORDER BY id")
        try:
            for chunk_id, lines, size in cursor:
                if freed >= excess:
                    break
                doomed.append(chunk_id)
                freed += size
                dropped += lines
        finally:
            cursor.close()
        with self._transaction():
            self._db.executemany("DELETE FROM chunks WHERE id = ?", [(i,) for i in doomed])
        self.dropped += dropped
        self._lines -= dropped
        self._bytes -= freed

    def _recount(self) -> None:
        lines, size = self._db.execute(
            "SELECT COALESCE(SUM(lines), 0), COALESCE(SUM(LENGTH(body) - lines + 1), 0) FROM chunks"
        ).fetchone()
        self._lines = int(lines)
        self._bytes = int(size)

    def _migrate_line_rows(self) -> None:
        """Turn the first format's rows (one line each) into chunks, in order (inside a transaction)."""
        old = self._db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'outbox'")
        if old.fetchone() is None:
            return
        pending: list[bytes] = []
        pending_key = ""
        pending_us = 0

        def flush() -> None:
            if pending:
                self._db.execute(_INSERT, (pending_us, pending_key, len(pending), b"\n".join(pending)))
                pending.clear()

        cursor = self._db.execute("SELECT enqueued_us, key, line FROM outbox ORDER BY id")
        try:
            for enqueued_us, key, line in cursor:
                if key != pending_key or len(pending) >= self.chunk_lines:
                    flush()
                if not pending:
                    # A chunk is as old as its oldest line.
                    pending_key, pending_us = key, int(enqueued_us)
                pending.append(bytes(line))
            flush()
        finally:
            cursor.close()
        self._db.execute("DROP TABLE outbox")

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)


def _up_to(cursor: sqlite3.Cursor, limit: int) -> list[OutboxChunk]:
    """Chunks from ``cursor`` while their lines stay within ``limit`` (always the first one)."""
    chunks: list[OutboxChunk] = []
    total = 0
    try:
        for row in cursor:
            total += row[2]
            if chunks and total > limit:
                break
            chunks.append(OutboxChunk._make(row))
    finally:
        cursor.close()
    return chunks


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on an exception."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: object, *_: object) -> None:
        self._db.execute("ROLLBACK" if kind is not None else "COMMIT")
