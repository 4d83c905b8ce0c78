"""Dead letters in the log: the first of each (reason, source) at once, then a digest per interval
with the counts, never silent and never a line per letter (a clock injected)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest

from plantstream.records import DeadLetter
from runtimes.deadletter_log import DIGEST_PAIRS, DeadLetterLog


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def letter(source: str = "meters", reason: str = "malformed") -> DeadLetter:
    return DeadLetter(
        ts=datetime(2026, 11, 28, tzinfo=UTC),
        source=source,
        where="plant/l1/m1/power",
        reason=reason,
        error="payload is not JSON",
        raw="{",
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def log(clock: Clock) -> DeadLetterLog:
    return DeadLetterLog(logging.getLogger("test.deadletters"), interval_s=60, clock=clock)


def said(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "test.deadletters"]


def test_a_stream_of_one_kind_is_one_line_then_one_digest_a_minute(
    log: DeadLetterLog, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    for _ in range(800):  # 800 letters in 50 s (a sixteenth of a second apart: exact in binary)
        log.note(letter())
        clock.now += 0.0625
    (first,) = said(caplog)
    assert first.startswith("dead letter from source meters, reason malformed, at plant/l1/m1/power")
    assert "payload is not JSON" in first
    clock.now += 10  # 60 s after the start: the next letter brings the digest
    log.note(letter())
    digest = said(caplog)[1]
    # 799 counted after the first, plus the one that brought the digest.
    assert digest == "dead letters in the last 60 s: source meters malformed: 800"
    assert len(said(caplog)) == 2


def test_each_reason_and_source_pair_is_announced_once(
    log: DeadLetterLog, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    for _ in range(3):
        log.note(letter("meters", "malformed"))
        log.note(letter("meters", "unknown_machine"))
        log.note(letter("plc", "malformed"))
    firsts = said(caplog)
    assert len(firsts) == 3
    assert {(m.split(", ")[0], m.split(", ")[1]) for m in firsts} == {
        ("dead letter from source meters", "reason malformed"),
        ("dead letter from source meters", "reason unknown_machine"),
        ("dead letter from source plc", "reason malformed"),
    }


def test_what_is_pending_is_said_when_the_pipeline_stops(
    log: DeadLetterLog, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    log.note(letter())
    log.note(letter())
    log.note(letter("plc"))
    log.note(letter("plc"))
    log.note(letter("plc"))
    clock.now += 5
    log.digest()  # not due yet
    assert len(said(caplog)) == 2
    log.digest(now=True)
    assert (
        said(caplog)[-1]
        == "dead letters in the last 5 s: source plc malformed: 2; source meters malformed: 1"
    )
    log.digest(now=True)  # nothing pending: nothing said
    assert len(said(caplog)) == 3


def test_the_periodic_check_says_the_digest_without_a_new_letter(
    log: DeadLetterLog, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    log.note(letter())
    log.note(letter())
    clock.now += 61
    log.digest()  # the checkpointer's call: a quiet source's last letters are not kept back
    assert said(caplog)[-1] == "dead letters in the last 61 s: source meters malformed: 1"


def test_after_a_quiet_spell_the_next_digest_waits_a_whole_interval(
    log: DeadLetterLog, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    log.note(letter())
    clock.now += 3_600  # an hour without letters
    log.note(letter())
    log.note(letter())
    assert len(said(caplog)) == 1  # counted, not a digest per letter after the quiet hour
    clock.now += 60
    log.note(letter())
    assert said(caplog)[-1] == "dead letters in the last 60 s: source meters malformed: 3"


def test_a_digest_names_the_most_frequent_pairs_and_sums_the_rest(
    log: DeadLetterLog, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    sources = [f"s{n:02d}" for n in range(DIGEST_PAIRS + 5)]
    for rank, source in enumerate(sources):
        for _ in range(1 + len(sources) - rank):  # the first source the most frequent
            log.note(letter(source))
    clock.now += 60
    log.digest()
    digest = said(caplog)[-1]
    assert digest.count("source s") == DIGEST_PAIRS
    assert "source s00 malformed" in digest
    assert "s24" not in digest
    # The last 5 pairs noted 5, 4, 3, 2, 1 letters after their first: 15 in the sum.
    assert digest.endswith("5 more pair(s): 15")


def test_pairs_beyond_the_bound_are_counted_under_other_not_remembered(
    log: DeadLetterLog, clock: Clock, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from runtimes import deadletter_log

    monkeypatch.setattr(deadletter_log, "MAX_PAIRS", 2)
    caplog.set_level(logging.WARNING)
    for source in ("a", "b", "c", "d"):  # an attacker-chosen source per letter
        log.note(letter(source))
    assert len(said(caplog)) == 2  # a and b announced; c and d only counted
    clock.now += 60
    log.digest()
    assert said(caplog)[-1] == "dead letters in the last 60 s: source others any: 2"
