"""The outbox: order, durability across reopen and a killed process, the byte bound and its policies."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from sinks.outbox import Outbox, OutboxFull


def items(*lines: str, key: str = "s") -> list[tuple[str, bytes]]:
    return [(key, line.encode()) for line in lines]


def test_lines_come_back_in_order_with_their_keys(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite", max_bytes=1000)
    box.append(items("a 1", "b 2"))
    box.append(items("c 3", key="ms"))
    rows = box.peek(10)
    assert [(r.key, r.line) for r in rows] == [("s", b"a 1"), ("s", b"b 2"), ("ms", b"c 3")]
    assert box.peek(2) == rows[:2]
    assert (box.lines, box.size_bytes) == (3, 9)


def test_delete_removes_only_what_was_delivered(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite", max_bytes=1000)
    box.append(items("a", "bb", "ccc"))
    first = box.peek(2)
    box.append(items("dddd"))
    box.delete(first)
    assert [r.line for r in box.peek(10)] == [b"ccc", b"dddd"]
    assert (box.lines, box.size_bytes) == (2, 7)
    box.delete(first)  # again: already gone, nothing else is touched
    assert (box.lines, box.size_bytes) == (2, 7)


def test_reopen_finds_the_lines_and_ids_are_never_reused(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    box = Outbox(path, max_bytes=1000)
    box.append(items("a", "b"))
    box.delete(box.peek(2))
    box.append(items("c"))
    last_id = box.peek(1)[0].id
    box.close()
    again = Outbox(path, max_bytes=1000)
    assert [r.line for r in again.peek(10)] == [b"c"]
    assert (again.lines, again.size_bytes) == (1, 1)
    again.append(items("d"))
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
            box.append([("s", b"line %d" % i)])
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], check=False, timeout=60)
    assert result.returncode == -9
    box = Outbox(path, max_bytes=10**6)
    assert [r.line for r in box.peek(1000)] == [b"line %d" % i for i in range(100)]
    box.close()


def test_block_refuses_what_does_not_fit_and_writes_nothing(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite", max_bytes=10)
    box.append(items("12345", "1234"))  # 9 bytes
    assert box.has_room(1)
    assert not box.has_room(2)
    with pytest.raises(OutboxFull):
        box.append(items("ab"))
    assert (box.lines, box.size_bytes, box.dropped) == (2, 9, 0)
    box.delete(box.peek(1))
    box.append(items("ab"))
    assert [r.line for r in box.peek(10)] == [b"1234", b"ab"]


def test_force_exceeds_the_bound(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite", max_bytes=4)
    box.append(items("1234"))
    box.append(items("5678"), force=True)
    assert (box.lines, box.size_bytes) == (2, 8)


def test_an_empty_outbox_takes_an_append_larger_than_its_bound(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite", max_bytes=4)
    box.append(items("123456789"))
    assert box.lines == 1
    with pytest.raises(OutboxFull):
        box.append(items("x"))


def test_drop_oldest_makes_room_and_counts(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite", max_bytes=10, when_full="drop_oldest")
    box.append(items("aaa", "bbb", "ccc"))  # 9 bytes
    box.append(items("dddd"))  # needs 3 more bytes: the oldest line (3 bytes) goes
    assert [r.line for r in box.peek(10)] == [b"bbb", b"ccc", b"dddd"]
    assert (box.lines, box.size_bytes, box.dropped) == (3, 10, 1)
    box.append(items("eeeeeee"))  # 7 bytes: bbb and ccc (6) are not enough, dddd goes too
    assert [r.line for r in box.peek(10)] == [b"eeeeeee"]
    assert box.dropped == 4


def test_age_of_the_oldest_line(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite", max_bytes=100)
    assert box.oldest_age_s == 0.0
    box.append(items("a"))
    # Written a moment ago: non-negative and far below a minute on any machine.
    assert 0.0 <= box.oldest_age_s < 60
    box._db.execute("UPDATE outbox SET enqueued_us = enqueued_us - 3600000000")
    assert 3600 <= box.oldest_age_s < 3660


def test_sync_works_with_and_without_a_wal_file(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite", max_bytes=100)
    box.sync()
    box.append(items("a"))
    box.sync()
    assert Path(f"{tmp_path / 'o.sqlite'}-wal").exists()


def test_peek_after_continues_where_a_batch_ends(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite", max_bytes=1000)
    box.append(items("a", "b", "c", "d", "e"))
    first = box.peek(2)
    assert [r.line for r in box.peek_after(first[-1].id, 2)] == [b"c", b"d"]
    assert box.peek_after(box.peek(5)[-1].id, 2) == []
