"""The outbox: chunks in order, durability across reopen and a killed process, the byte bound and its
policies, and the conversion of a file of the first format (one row per line)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from sinks.outbox import Outbox, OutboxChunk, OutboxFull


def lines_of(chunks: list[OutboxChunk]) -> list[bytes]:
    return [line for chunk in chunks for line in chunk.body.split(b"\n")]


def test_each_group_is_a_chunk_and_chunks_come_back_in_order(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite", max_bytes=1000)
    box.append([("s", ["a 1", "b 2"])])
    box.append([("ms", ["c 3"]), ("s", ["d 4"])])
    chunks = box.peek(10)
    assert [(c.key, c.lines, c.body) for c in chunks] == [
        ("s", 2, b"a 1\nb 2"),
        ("ms", 1, b"c 3"),
        ("s", 1, b"d 4"),
    ]
    # The bound counts the lines' bytes, not the separators: 4 lines of 3 bytes.
    assert (box.lines, box.size_bytes) == (4, 12)
    assert [c.size for c in chunks] == [6, 3, 3]


def test_a_group_longer_than_a_chunk_is_split(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite", max_bytes=1000, chunk_lines=2)
    box.append([("s", ["a", "b", "c", "d", "e"])])
    assert [c.body for c in box.peek(10)] == [b"a\nb", b"c\nd", b"e"]
    assert (box.lines, box.size_bytes) == (5, 5)


def test_peek_takes_whole_chunks_up_to_the_limit_in_lines_but_at_least_one(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite", max_bytes=1000)
    box.append([("s", ["a", "b", "c"])])
    box.append([("s", ["d", "e"])])
    box.append([("s", ["f"])])
    assert [c.lines for c in box.peek(5)] == [3, 2]
    assert [c.lines for c in box.peek(4)] == [3]
    assert [c.lines for c in box.peek(1)] == [3]  # a chunk is never split by peek
    first = box.peek(3)
    assert [c.lines for c in box.peek_after(first[-1].id, 3)] == [2, 1]
    assert box.peek_after(box.peek(100)[-1].id, 3) == []


def test_delete_removes_only_what_was_delivered(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite", max_bytes=1000)
    box.append([("s", ["a", "bb"])])
    box.append([("s", ["ccc"])])
    first = box.peek(2)
    box.append([("s", ["dddd"])])
    box.delete(first)
    assert lines_of(box.peek(10)) == [b"ccc", b"dddd"]
    assert (box.lines, box.size_bytes) == (2, 7)
    box.delete(first)  # again: already gone, nothing else is touched
    assert (box.lines, box.size_bytes) == (2, 7)
    box.delete([box.peek(10)[1]])  # a chunk out of the middle
    assert lines_of(box.peek(10)) == [b"ccc"]
    assert (box.lines, box.size_bytes) == (1, 3)


def test_reopen_finds_the_lines_and_ids_are_never_reused(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    box = Outbox(path, max_bytes=1000)
    box.append([("s", ["a", "b"])])
    box.delete(box.peek(2))
    box.append([("s", ["c"])])
    last_id = box.peek(1)[0].id
    box.close()
    again = Outbox(path, max_bytes=1000)
    assert lines_of(again.peek(10)) == [b"c"]
    assert (again.lines, again.size_bytes) == (1, 1)
    again.append([("s", ["d"])])
    assert again.peek(10)[-1].id > last_id
    again.close()


def test_a_killed_process_leaves_its_committed_appends(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    script = textwrap.dedent(
        f"""
        import os, signal
        from sinks.outbox import Outbox
        from pathlib import Path
        box = Outbox(Path({str(path)!r}), max_bytes=10**6)
        for i in range(100):
            box.append([("s", ["line %d" % i, "more %d" % i])])
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], check=False, timeout=60)
    assert result.returncode == -9
    box = Outbox(path, max_bytes=10**6)
    assert box.lines == 200
    assert lines_of(box.peek(1000)) == [b"%s %d" % (w, i) for i in range(100) for w in (b"line", b"more")]
    box.close()


def test_block_refuses_what_does_not_fit_and_writes_nothing(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite", max_bytes=10)
    box.append([("s", ["12345"])])
    box.append([("s", ["1234"])])  # 9 bytes
    assert box.has_room(1)
    assert not box.has_room(2)
    with pytest.raises(OutboxFull):
        box.append([("s", ["a", "b"])])  # 2 bytes of lines: the separator does not count
    assert (box.lines, box.size_bytes, box.dropped) == (2, 9, 0)
    box.delete(box.peek(1))
    box.append([("s", ["a", "b"])])
    assert lines_of(box.peek(10)) == [b"1234", b"a", b"b"]


def test_force_exceeds_the_bound(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite", max_bytes=4)
    box.append([("s", ["1234"])])
    box.append([("s", ["5678"])], force=True)
    assert (box.lines, box.size_bytes) == (2, 8)


def test_an_empty_outbox_takes_an_append_larger_than_its_bound(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite", max_bytes=4)
    box.append([("s", ["123456789"])])
    assert box.lines == 1
    with pytest.raises(OutboxFull):
        box.append([("s", ["x"])])


def test_drop_oldest_drops_whole_chunks_and_counts_their_lines(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite", max_bytes=10, when_full="drop_oldest")
    box.append([("s", ["aa", "bb"])])  # 4 bytes
    box.append([("s", ["ccc"])])  # 7
    box.append([("s", ["ddd"])])  # 10
    box.append([("s", ["e"])])  # needs 1 more byte: the oldest chunk (2 lines, 4 bytes) goes
    assert lines_of(box.peek(10)) == [b"ccc", b"ddd", b"e"]
    assert (box.lines, box.size_bytes, box.dropped) == (3, 7, 2)
    box.append([("s", ["ffffffff"])])  # 8 bytes: needs 5, so ccc and ddd (6) go
    assert lines_of(box.peek(10)) == [b"e", b"ffffffff"]
    assert (box.lines, box.size_bytes, box.dropped) == (2, 9, 4)


def test_empty_groups_write_nothing(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite", max_bytes=10)
    box.append([])
    box.append([("s", [])])
    assert (box.lines, box.peek(10)) == (0, [])


def test_age_of_the_oldest_line(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite", max_bytes=100)
    assert box.oldest_age_s == 0.0
    box.append([("s", ["a"])])
    # Written a moment ago: non-negative and far below a minute on any machine.
    assert 0.0 <= box.oldest_age_s < 60
    box._db.execute("UPDATE chunks SET enqueued_us = enqueued_us - 3600000000")
    assert 3600 <= box.oldest_age_s < 3660


def test_sync_works_with_and_without_a_wal_file(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite", max_bytes=100)
    box.sync()
    box.append([("s", ["a"])])
    box.sync()
    assert Path(f"{tmp_path / 'o.sqlite'}-wal").exists()


def write_first_format(path: Path, rows: list[tuple[int, str, bytes]]) -> None:
    """A file as the first outbox wrote it: table ``outbox``, one row per line."""
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(
        "CREATE TABLE outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, enqueued_us INTEGER NOT NULL, "
        "key TEXT NOT NULL, line BLOB NOT NULL)"
    )
    db.executemany("INSERT INTO outbox (enqueued_us, key, line) VALUES (?, ?, ?)", rows)
    # A delivered first row: ids need not start at 1.
    db.execute("DELETE FROM outbox WHERE id = 1")
    db.commit()
    db.close()


def test_a_file_of_the_first_format_is_converted_to_chunks_in_order(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    t0_us = 1_772_438_400_000_000  # 2026-03-02T08:00:00Z in microseconds
    old = [
        (t0_us, "s", b"gone 0"),
        *[(t0_us + i, "s", b"s %d" % i) for i in range(1, 6)],
        (t0_us + 6, "ms", b"ms 6"),
        (t0_us + 7, "s", b"s 7"),
    ]
    write_first_format(path, old)
    box = Outbox(path, max_bytes=1000, chunk_lines=3)
    chunks = box.peek(100)
    # Consecutive lines of one key share chunks of at most 3 lines; a key change starts a chunk.
    assert [(c.key, c.body) for c in chunks] == [
        ("s", b"s 1\ns 2\ns 3"),
        ("s", b"s 4\ns 5"),
        ("ms", b"ms 6"),
        ("s", b"s 7"),
    ]
    assert (box.lines, box.size_bytes) == (7, 7 * 3 + 1)
    # A chunk is as old as its oldest line.
    (first_us,) = box._db.execute("SELECT enqueued_us FROM chunks ORDER BY id LIMIT 1").fetchone()
    assert first_us == t0_us + 1
    tables = {name for (name,) in box._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "outbox" not in tables
    box.append([("s", ["new"])])
    box.close()
    again = Outbox(path, max_bytes=1000, chunk_lines=3)
    assert lines_of(again.peek(100))[-2:] == [b"s 7", b"new"]
    assert again.lines == 8
    again.close()


def test_an_empty_file_of_the_first_format_is_converted(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    write_first_format(path, [(1, "s", b"gone")])
    box = Outbox(path, max_bytes=100)
    assert (box.lines, box.size_bytes, box.peek(10)) == (0, 0, [])
    box.close()


def test_a_bad_chunk_size_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="chunk_lines must be > 0"):
        Outbox(tmp_path / "o.sqlite", max_bytes=10, chunk_lines=0)
