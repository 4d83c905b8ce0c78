"""The dead-letter folder: a payload kept as a bounded prefix with its length and SHA-256, and the
folder bounded in bytes with ``drop_oldest``, across a restart too."""

from __future__ import annotations

import hashlib
import io
import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from plantstream.records import DeadLetter
from sinks.deadletters import (
    ERROR_KEPT_CHARS,
    MIN_MAX_BYTES,
    RAW_KEPT_BYTES,
    DeadLetterFolder,
)
from sinks.files import JsonLinesSink

DAY = datetime(2026, 11, 28, 8, tzinfo=UTC)


def letter(raw: str, *, error: str = "not JSON", ts: datetime = DAY) -> DeadLetter:
    return DeadLetter(
        ts=ts, source="meters", where="plant/l1/m1/power", reason="malformed", error=error, raw=raw
    )


def lines(folder: Path) -> list[dict[str, object]]:
    return [
        json.loads(line) for file in sorted(folder.glob("*.jsonl")) for line in file.read_text().splitlines()
    ]


def test_an_800_kb_payload_keeps_a_4_kib_prefix_its_length_and_its_sha256(tmp_path: Path) -> None:
    payload = "".join(chr(ord("a") + i % 26) for i in range(800_000))  # 800 000 ASCII bytes
    sink = JsonLinesSink(tmp_path)
    sink.dead_letter(letter(payload))
    sink.close()
    file = tmp_path / "deadletter" / "2026-11-28.jsonl"
    (kept,) = lines(tmp_path / "deadletter")
    assert kept["raw"] == payload[:RAW_KEPT_BYTES]
    assert kept["raw_bytes"] == 800_000
    assert kept["raw_sha256"] == hashlib.sha256(payload.encode()).hexdigest()
    assert file.stat().st_size < RAW_KEPT_BYTES + 1_000  # the prefix and a few hundred bytes of letter
    assert sink.dead_letters.truncated == 1


def test_a_small_payload_is_kept_whole_without_the_extra_fields(tmp_path: Path) -> None:
    sink = JsonLinesSink(tmp_path)
    sink.dead_letter(letter("x" * RAW_KEPT_BYTES))  # exactly the bound: whole
    sink.close()
    (kept,) = lines(tmp_path / "deadletter")
    assert kept["raw"] == "x" * RAW_KEPT_BYTES
    assert "raw_bytes" not in kept
    assert "raw_sha256" not in kept


def test_the_prefix_is_cut_at_a_character_boundary(tmp_path: Path) -> None:
    # "x" then 3 000 two-byte characters: 6 001 bytes; 4 096 bytes end in the middle of the
    # 2 048th character ((4 096 - 1) / 2 = 2 047.5), which is left out.
    payload = "x" + "é" * 3_000
    folder = DeadLetterFolder(tmp_path)
    folder.write(letter(payload))
    folder.close()
    (kept,) = lines(tmp_path / "deadletter")
    assert kept["raw"] == "x" + "é" * 2_047
    assert kept["raw_bytes"] == 6_001


def test_a_long_error_message_is_bounded_too(tmp_path: Path) -> None:
    folder = DeadLetterFolder(tmp_path)
    folder.write(letter("{", error="e" * 100_000))
    folder.close()
    (kept,) = lines(tmp_path / "deadletter")
    assert kept["error"] == "e" * ERROR_KEPT_CHARS + "... (100000 characters)"


def test_the_folder_stays_within_its_bound_dropping_the_oldest_segments(tmp_path: Path) -> None:
    bound = MIN_MAX_BYTES  # 64 KiB: segments of 8 KiB
    folder = DeadLetterFolder(tmp_path, max_bytes=bound)
    for number in range(200):  # 200 letters of 5 000-byte payloads, about 5.2 KB each: ~1 MB
        folder.write(letter(f"{number:05d}" + "y" * 4_995))
        on_disk = sum(f.stat().st_size for f in (tmp_path / "deadletter").glob("*.jsonl"))
        assert on_disk <= bound
        assert on_disk == folder.size
    folder.close()
    kept = lines(tmp_path / "deadletter")
    assert len(kept) + folder.dropped_letters == 200
    assert folder.dropped_letters > 150  # ~12 letters fit in 64 KiB
    # The newest letters are the ones kept, in order.
    assert [str(k["raw"])[:5] for k in kept] == [f"{n:05d}" for n in range(200 - len(kept), 200)]
    assert folder.dropped_bytes > 0


def test_the_bound_holds_across_a_restart(tmp_path: Path) -> None:
    first = DeadLetterFolder(tmp_path, max_bytes=MIN_MAX_BYTES)
    for _ in range(12):  # 12 letters of about 4.2 KB: some 50 KB of the 64 KiB
        first.write(letter("z" * 4_000))
    first.close()
    # A new process knows nothing of them until it reads the folder: 12 more must drop old ones.
    second = DeadLetterFolder(tmp_path, max_bytes=MIN_MAX_BYTES)
    for _ in range(12):
        second.write(letter("z" * 4_000))
    second.close()
    on_disk = sum(f.stat().st_size for f in (tmp_path / "deadletter").glob("*.jsonl"))
    assert on_disk <= MIN_MAX_BYTES
    assert second.dropped_letters > 0
    assert len(lines(tmp_path / "deadletter")) + second.dropped_letters == 24


def test_letters_of_another_day_go_to_that_days_file(tmp_path: Path) -> None:
    folder = DeadLetterFolder(tmp_path)
    folder.write(letter("a"))
    folder.write(letter("b", ts=datetime(2026, 11, 29, 0, 0, 1, tzinfo=UTC)))
    folder.close()
    names = sorted(p.name for p in (tmp_path / "deadletter").iterdir())
    assert names == ["2026-11-28.jsonl", "2026-11-29.jsonl"]


def test_a_bound_too_small_for_a_letter_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 65536 bytes"):
        DeadLetterFolder(tmp_path, max_bytes=MIN_MAX_BYTES - 1)


def test_replays_dead_letter_file_keeps_a_bounded_prefix_of_a_long_line_too() -> None:
    from runtimes.plant import load_and_resolve
    from runtimes.replay import replay
    from streams.engine import Engine

    _, spec = load_and_resolve(Path(__file__).resolve().parents[3] / "examples" / "minimal.yaml")
    line = '{"ts": "' + "9" * 800_000 + '"}\n'  # an 800 KB line that is no reading
    letters = io.StringIO()
    replay(
        Engine(spec, reorder=False),
        [line],
        io.StringIO(),
        source="test",
        lateness_us=spec.allowed_lateness_us,
        report=lambda _text: None,
        dead_letter=letters,
    )
    (kept,) = [json.loads(text) for text in letters.getvalue().splitlines()]
    assert kept["line"] == 1
    assert kept["raw"] == line[:RAW_KEPT_BYTES]
    assert kept["raw_bytes"] == len(line) - 1  # without its newline
    assert kept["raw_sha256"] == hashlib.sha256(line[:-1].encode()).hexdigest()


def test_descriptors_handed_out_stay_open_until_the_next_flush_when_a_segment_is_left(
    tmp_path: Path,
) -> None:
    """The runtime fsyncs them in a worker thread while letters go on being written."""
    folder = DeadLetterFolder(tmp_path, max_bytes=MIN_MAX_BYTES)  # segments of 8 KiB
    folder.write(letter("a" * 4_000))
    handed = folder.flush()
    for _ in range(3):  # 3 more letters of about 4.2 KB: the 8 KiB segment is left for the next
        folder.write(letter("b" * 4_000))
    assert len(list((tmp_path / "deadletter").glob("*.jsonl"))) >= 2
    for descriptor in handed:
        os.fsync(descriptor)  # still the first segment's, not closed under the syncing thread
    second = folder.flush()
    assert set(handed) <= set(second)  # the left segment is synced once more, then closed
    folder.close()
