"""``runtimes.replay``: ordering within the lateness, determinism, and what a bad line costs."""

from __future__ import annotations

import io
import json
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runtimes.plant import load_and_resolve
from runtimes.replay import (
    _BATCH,
    MAX_LINE_BYTES,
    OverlongLine,
    ReplayAborted,
    ReplaySummary,
    read_lines,
    replay,
)
from streams.engine import Engine

ROOT = Path(__file__).resolve().parents[3]
MINIMAL = ROOT / "examples" / "minimal.yaml"
SHIFT_LINES = (ROOT / "examples" / "minimal-shift.jsonl").read_text().splitlines(keepends=True)
_, SPEC = load_and_resolve(MINIMAL)  # allowed lateness 5 s


def run(lines: list[str]) -> tuple[str, object]:
    out = io.StringIO()
    summary = replay(
        Engine(SPEC, reorder=False), lines, out, source="test", lateness_us=SPEC.allowed_lateness_us
    )
    return out.getvalue(), summary


BASELINE, _ = run(SHIFT_LINES)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_output_is_byte_identical_for_any_order_within_the_lateness(seed: int) -> None:
    # Readings are 10 s apart or more in time; shuffling neighbours that are less than 5 s apart
    # in the file (here: those sharing a timestamp) and a few positions around them changes nothing.
    rng = random.Random(seed)
    keyed = [(line[:30], rng.random(), line) for line in SHIFT_LINES]  # line[:30] holds the timestamp
    shuffled = [line for _, _, line in sorted(keyed)]
    assert shuffled != SHIFT_LINES or len(SHIFT_LINES) < 2
    output, summary = run(shuffled)
    assert output == BASELINE
    assert summary.engine.get("late_readings", 0) == 0


def test_a_reading_later_than_the_lateness_is_a_correction_not_a_loss() -> None:
    # Move the 09:00 "down" state reading 20 minutes later in the file: it arrives late.
    index = next(i for i, line in enumerate(SHIFT_LINES) if '"value": "down"' in line)
    moved = (
        SHIFT_LINES[:index]
        + SHIFT_LINES[index + 1 : index + 500]
        + [SHIFT_LINES[index]]
        + SHIFT_LINES[index + 500 :]
    )
    output, summary = run(moved)
    assert summary.engine["late_readings"] == 1
    assert summary.engine["windows_corrected"] >= 1
    final = {}
    import json

    for line in output.splitlines():
        point = json.loads(line)
        if point["tags"].get("window") == "shift":
            final[point["measurement"]] = point["fields"]
    baseline_shift = {}
    for line in BASELINE.splitlines():
        point = json.loads(line)
        if point["tags"].get("window") == "shift":
            baseline_shift[point["measurement"]] = point["fields"]
    assert final == baseline_shift


def test_blank_lines_are_skipped_and_not_counted_as_readings() -> None:
    output, summary = run(["\n", *SHIFT_LINES, "   \n"])
    assert output == BASELINE
    assert summary.readings == len(SHIFT_LINES)
    assert summary.rejected_total == 0


def replay_bytes(lines: list[bytes], *, strict: bool = False) -> tuple[str, ReplaySummary, list[str], str]:
    """Replay undecoded lines; return the points, the summary, the reports and the dead letters."""
    out, dead, reports = io.StringIO(), io.StringIO(), []
    summary = replay(
        Engine(SPEC, reorder=False),
        read_lines(io.BytesIO(b"".join(lines))),
        out,
        source="f",
        lateness_us=SPEC.allowed_lateness_us,
        strict=strict,
        report=reports.append,
        dead_letter=dead,
    )
    return out.getvalue(), summary, reports, dead.getvalue()


SHIFT_BYTES = [line.encode() for line in SHIFT_LINES]
NOT_UTF8 = b'{"ts": "2026-03-02T08:00:00Z", "machine": "m\xff1", "signal": "state", "value": 1}\n'


def test_a_line_that_is_not_utf8_is_one_skipped_line_with_its_number() -> None:
    output, summary, reports, dead = replay_bytes([*SHIFT_BYTES[:2], NOT_UTF8, *SHIFT_BYTES[2:]])
    assert output == BASELINE
    # 0xff is the 45th byte: before it, `{"ts": ` (7) `"2026-03-02T08:00:00Z", ` (24) `"machine": "m` (13).
    assert reports == ["f:3: malformed: not UTF-8 (byte 0xff at column 45)"]
    assert summary.rejected == {"malformed": 1}
    [letter] = [json.loads(line) for line in dead.splitlines()]
    assert (letter["line"], letter["reason"]) == (3, "malformed")
    assert '"m\\xff1"' in letter["raw"]  # the byte shown as an escape, the rest as it was


def test_a_line_longer_than_the_limit_is_skipped_without_being_held_whole() -> None:
    stream = io.BytesIO(b"a" * 2500 + b"\n" + SHIFT_BYTES[0])
    lines = list(read_lines(stream, max_bytes=1000))
    # 2,500 bytes and the newline; only the first 200 are kept.
    assert lines == [OverlongLine(2501, b"a" * 200), SHIFT_BYTES[0]]
    long_line = b"{" + b" " * MAX_LINE_BYTES + b"}\n"
    output, summary, reports, _ = replay_bytes([long_line, *SHIFT_BYTES])
    assert output == BASELINE
    assert reports == [f"f:1: malformed: {MAX_LINE_BYTES + 3} bytes long, over the limit of {MAX_LINE_BYTES}"]
    assert summary.readings == len(SHIFT_LINES)


def test_a_line_of_exactly_the_limit_with_its_newline_is_read_whole() -> None:
    assert list(read_lines(io.BytesIO(b"x" * 10 + b"\n" + b"y" * 11), max_bytes=10)) == [
        b"x" * 10 + b"\n",
        OverlongLine(11, b"y" * 11),
    ]


def test_refused_lines_are_not_counted_as_readings() -> None:
    unknown = b'{"ts": "2026-03-02T08:00:01Z", "machine": "m7", "signal": "state", "value": 1}\n'
    _, summary, _, _ = replay_bytes([b"\n", b"{not json\n", unknown, *SHIFT_BYTES])
    # 3 + len(SHIFT) lines: one blank, one malformed, one unknown machine; the shift's are used.
    assert summary.lines == len(SHIFT_LINES) + 3
    assert summary.blank == 1
    assert summary.rejected_total == 2
    assert summary.readings == len(SHIFT_LINES)


def test_refusals_are_reported_in_line_order_whichever_stage_refused_them() -> None:
    # Line 2 waits for the watermark before the engine refuses it (unknown machine); line 3 is
    # refused at once by the decoder. Reported as they come, 3 would precede 2.
    unknown = b'{"ts": "2026-03-02T08:00:00Z", "machine": "m7", "signal": "state", "value": 1}\n'
    _, _, reports, dead = replay_bytes([SHIFT_BYTES[0], unknown, b"{not json\n", *SHIFT_BYTES[1:]])
    assert [r.split(":")[1] for r in reports] == ["2", "3"]
    assert [json.loads(line)["line"] for line in dead.splitlines()] == [2, 3]


def test_strict_stops_at_the_first_bad_line_in_line_order() -> None:
    unknown = b'{"ts": "2026-03-02T08:00:00Z", "machine": "m7", "signal": "state", "value": 1}\n'
    with pytest.raises(ReplayAborted, match=r"^f:2: unknown_machine"):
        replay_bytes([SHIFT_BYTES[0], unknown, b"{not json\n", *SHIFT_BYTES[1:]], strict=True)


def test_held_refusals_are_bounded_and_the_oldest_goes_out_first(monkeypatch: pytest.MonkeyPatch) -> None:
    # Line 1 waits for the watermark (it never passes: no later reading) and is refused only at
    # the end; lines 2 to 6 are refused at once. With room for 3 held refusals, 2 and 3 cannot
    # wait for line 1, and line 1 cannot wait for 4, 5 and 6: what goes out is always the oldest held.
    monkeypatch.setattr("runtimes.replay._MAX_HELD_REPORTS", 3)
    unknown = b'{"ts": "2026-03-02T08:00:00Z", "machine": "m7", "signal": "state", "value": 1}\n'
    _, summary, reports, _ = replay_bytes([unknown] + [b"{not json\n"] * 5)
    assert [int(r.split(":")[1]) for r in reports] == [2, 3, 1, 4, 5, 6]
    assert summary.rejected_total == 6


def test_malformed_lines_are_reported_as_they_come_when_no_reading_waits() -> None:
    reports: list[str] = []

    def lines() -> Iterator[bytes]:
        yield b"{not json\n"
        # The first line's report is out before the second line is read.
        assert reports == ["f:1: malformed: record: Invalid JSON: key must be a string at line 1 column 2"]
        yield b"{not json either\n"

    replay(Engine(SPEC, reorder=False), lines(), None, source="f", lateness_us=0, report=reports.append)
    assert len(reports) == 2


def test_a_first_reading_held_back_for_its_time_is_reported_in_line_order() -> None:
    # Line 1, stamped 1970, is refused (bad_time) before line 2, also refused at once: in line order.
    epoch = SHIFT_BYTES[0].replace(b'"2026-03-02T08:00:00Z"', b'"1970-01-01T00:00:00Z"')
    assert epoch != SHIFT_BYTES[0]
    _, _, reports, _ = replay_bytes([epoch, b"{not json\n", *SHIFT_BYTES[1:]])
    assert [r.split(":")[1:3] for r in reports] == [["1", " bad_time"], ["2", " malformed"]]


@pytest.mark.parametrize(
    ("stamp", "reason"),
    [
        ("2027-03-02T08:00:00Z", "clock_jump"),
        ("2150-01-01T00:00:00Z", "bad_time"),
        ("1970-01-01T00:00:00Z", "bad_time"),
    ],
)
def test_a_stray_reading_far_off_in_time_is_reported_near_its_line_not_at_the_end(
    stamp: str, reason: str
) -> None:
    # Line 11 is a year ahead (or out of the plausible years): the watermark must not follow it,
    # and its refusal must not wait for the end of the file (with everything refused after it),
    # only for lines 1 to 10, which are fed to the engine with the first batch of pending readings.
    stray = json.dumps({**json.loads(SHIFT_LINES[10]), "ts": stamp}) + "\n"
    reports: list[str] = []
    out = io.StringIO()

    def lines() -> Iterator[str]:
        for lineno, line in enumerate([*SHIFT_LINES[:10], stray, *SHIFT_LINES[10:]], 1):
            if lineno == _BATCH + 100:  # once the readings before it are fed, in the first batch
                assert [r.split(":")[1:3] for r in reports] == [["11", f" {reason}"]], reports
            yield line

    summary = replay(
        Engine(SPEC, reorder=False),
        lines(),
        out,
        source="f",
        lateness_us=SPEC.allowed_lateness_us,
        report=reports.append,
    )
    assert summary.rejected == {reason: 1}
    assert out.getvalue() == BASELINE  # the stray line cost nothing else


def test_a_file_that_really_jumps_two_days_is_followed_after_three_readings() -> None:
    # The shift, then the same shift two days later: a jump past max_clock_jump_s (1 day). One
    # stray reading would not move the watermark; three in a row at the new time do, and the
    # engine takes the machine's jump at its third reading, so the second day's shift is there.
    import json

    later = []
    for line in SHIFT_LINES:
        reading = json.loads(line)
        reading["ts"] = reading["ts"].replace("2026-03-02", "2026-03-04")
        later.append(json.dumps(reading) + "\n")
    out, summary = run([*SHIFT_LINES, *later])
    assert summary.rejected == {"clock_jump": 2}
    shifts = [json.loads(p) for p in out.splitlines() if '"window":"shift"' in p and '"oee"' in p]
    # The silence between is 40 h, under max_gap_fill_s (8 days): its shift is emitted, with the
    # last state held (a state holds until the next one) and no pieces.
    assert [p["time"][:10] for p in shifts] == ["2026-03-02", "2026-03-03", "2026-03-04"]
    assert shifts[1]["fields"]["total_count"] == 0
    # The refused first two readings of the second day (a register and a counter at their
    # starting values) cost nothing: the next samples count from the first day's last ones.
    assert shifts[2]["fields"] == shifts[0]["fields"]
