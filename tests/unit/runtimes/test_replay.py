"""``runtimes.replay``: ordering within the lateness, determinism, and what a bad line costs."""

from __future__ import annotations

import io
import random
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from runtimes.plant import load_and_resolve
from runtimes.replay import replay
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
        if point["tags"]["window"] == "shift":
            final[point["measurement"]] = point["fields"]
    baseline_shift = {}
    for line in BASELINE.splitlines():
        point = json.loads(line)
        if point["tags"]["window"] == "shift":
            baseline_shift[point["measurement"]] = point["fields"]
    assert final == baseline_shift


def test_blank_lines_are_skipped_and_not_counted_as_readings() -> None:
    output, summary = run(["\n", *SHIFT_LINES, "   \n"])
    assert output == BASELINE
    assert summary.readings == len(SHIFT_LINES)
    assert summary.rejected_total == 0


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
