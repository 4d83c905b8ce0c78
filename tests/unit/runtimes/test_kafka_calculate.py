"""The per-machine step of ``plantstream process``: redeliveries, bad records, save and load."""

from __future__ import annotations

from pathlib import Path

import orjson

from runtimes.kafka.calculate import MachineStates
from runtimes.plant import load_and_resolve

ROOT = Path(__file__).resolve().parents[3]
LINES = (ROOT / "examples" / "minimal-shift.jsonl").read_text().splitlines()


def states() -> MachineStates:
    _, spec = load_and_resolve(ROOT / "examples" / "minimal.yaml")
    return MachineStates(spec)


def run(machines: MachineStates, offsets: range) -> list[str]:
    out = []
    for offset in offsets:
        outcome = machines.take(b"m1", LINES[offset].encode(), offset, f"t[0]@{offset}")
        assert outcome.dead_letter is None
        out += [p.to_json() for p in outcome.points]
    return out


def test_a_saved_and_loaded_state_goes_on_exactly_as_if_never_stopped() -> None:
    whole = run(states(), range(len(LINES)))
    first = states()
    before = run(first, range(2000))
    second = states()
    second.load("m1", first.state("m1"))
    after = run(second, range(2000, len(LINES)))
    assert before + after == whole
    assert sum('"measurement":"oee"' in p for p in whole) > 400  # a shift of 1-minute windows


def test_records_the_saved_state_already_holds_are_skipped() -> None:
    first = states()
    run(first, range(100))
    second = states()
    second.load("m1", first.state("m1"))
    redelivered = [second.take(b"m1", LINES[o].encode(), o, "t") for o in range(90, 100)]
    assert all(o.skipped and not o.points and o.dead_letter is None for o in redelivered)
    assert not second.take(b"m1", LINES[100].encode(), 100, "t").skipped


def test_each_bad_record_becomes_one_dead_letter_with_its_reason() -> None:
    machines = states()
    cases = {
        "malformed": (b"m1", b'{"ts": "2026-03-02T08:00:00Z", "machine": "m1"'),
        "unknown_machine": (
            b"m7",
            b'{"ts": "2026-03-02T08:00:00Z", "machine": "m7", "signal": "x", "value": 1}',
        ),
        "wrong_key": (b"m2", LINES[0].encode()),
        "unknown_signal": (
            b"m1",
            b'{"ts": "2026-03-02T08:00:00Z", "machine": "m1", "signal": "x", "value": 1}',
        ),
    }
    for offset, (reason, (key, value)) in enumerate(cases.items()):
        outcome = machines.take(key, value, offset, f"readings[0]@{offset}")
        assert outcome.dead_letter is not None, reason
        assert (outcome.dead_letter.reason, outcome.dead_letter.where) == (reason, f"readings[0]@{offset}")
        assert outcome.dead_letter.raw == value.decode()
        assert not outcome.points
    # A refused reading of a known machine still moves its state on; the others have none.
    assert machines.take(b"m1", LINES[0].encode(), 4, "t").dead_letter is None


def test_an_event_time_far_ahead_of_the_records_timestamp_is_refused_as_future() -> None:
    machines = states()
    first = orjson.loads(LINES[0])
    assert first["ts"] == "2026-03-02T08:00:00Z"
    sent_us = 1_772_438_400_000_000  # 2026-03-02T08:00:00Z, when the collect role sent it
    ahead = orjson.dumps({**first, "ts": "2027-03-02T08:00:00Z"})  # a PLC clock a year ahead
    outcome = machines.take(b"m1", ahead, 0, "readings[0]@0", received=sent_us)
    assert outcome.dead_letter is not None
    assert outcome.dead_letter.reason == "future"
    assert "ahead of its receipt" in outcome.dead_letter.error
    # max_future_s is 300 s: 299 s ahead of the send time is taken.
    near = orjson.dumps({**first, "ts": "2026-03-02T08:04:59Z"})
    assert machines.take(b"m1", near, 1, "readings[0]@1", received=sent_us).dead_letter is None
    # Without a record timestamp there is nothing to measure against: today's behaviour.
    other = states()
    assert other.take(b"m1", ahead, 0, "readings[0]@0").dead_letter is None


def test_only_machines_of_a_rolled_up_line_or_site_send_windows_to_the_roll_up_stage() -> None:
    from streams.rollup import rollup_scopes

    machines = states()
    run(machines, range(200))
    assert machines.windows("m1") is None, "one machine: nothing to roll up"
    assert machines.silences(["m1"], 10**18) == []
    _, demo = load_and_resolve(ROOT / "examples" / "demo-line.yaml")
    # Four machines on one line of one site: the line is rolled up, the site (one line) is not.
    assert list(rollup_scopes(demo)) == [("line", "hcm", "line1")]


def test_an_operators_reason_on_the_readings_topic_rewrites_the_stop() -> None:
    # What `collect --from-file` sends for a line {"machine": "m1", "signal": "@operator_reason", ...}.
    machines = states()
    written: list[dict] = []
    offset = 0
    while not written:
        outcome = machines.take(b"m1", LINES[offset].encode(), offset, f"t[0]@{offset}")
        written = [orjson.loads(p.to_json()) for p in outcome.points if p.measurement == "stop"]
        offset += 1
    [stop] = written
    assert (stop["tags"]["reason"], stop["fields"]["revision"]) == ("unassigned", 0)  # minimal.yaml: no codes
    inside = stop["fields"]["start"].replace("Z", ".5Z")  # half a second after the stop began
    line = orjson.dumps({"ts": inside, "machine": "m1", "signal": "@operator_reason", "value": "7"})
    outcome = machines.take(b"m1", line, offset, f"t[0]@{offset}")
    assert outcome.dead_letter is None
    [again] = [orjson.loads(p.to_json()) for p in outcome.points if p.measurement == "stop"]
    # The tree of minimal.yaml is empty: code 7 is its own reason, given by the operator.
    assert (
        again["time"],
        again["tags"]["reason"],
        again["fields"]["cause"],
        again["fields"]["revision"],
    ) == (
        stop["time"],
        "code 7",
        "operator",
        1,
    )
