"""An operator's reason for a past stop: the request checked, the stop found, the stop rewritten."""

from __future__ import annotations

import json

import pytest
from support import T0, build_engine, reading, select

from plantstream.records import Point
from streams.engine import Engine
from streams.operator_reason import MAX_BODY, ReasonRefused, code_for, parse_request
from streams.reasons import ReasonTree
from streams.stops import OPERATOR_REASON, StopTracker

PLANT = """
sites:
  - id: demo
    timezone: UTC
    country: VN
    lines:
      - id: l1
        machines:
          - id: m1
            type: packer
            ideal_cycle_s: 1.0
            signals:
              state: state
              total_count: total_count
              fault: reason
          - id: m2
            signals:
              state: state
          - id: m3
            signals:
              power: power_kw
reasons:
  groups: {material: small_stop, mechanical: breakdown, changeover: setup}
  codes:
    12: {reason: film break, group: material}
    7: {reason: jam, group: mechanical}
  machine_types:
    press:
      12: {reason: die change, group: changeover}
production:
  micro_stop_max_s: 10
  allowed_lateness_s: 5
  correction_horizon_s: 3600
"""

MINUTE_US = 60_000_000
T0_US = int(T0.timestamp()) * 1_000_000


def us(minutes: float) -> int:
    """µs since the epoch, ``minutes`` after 08:00."""
    return T0_US + round(minutes * MINUTE_US)


def morning() -> list:
    """m1: code 12 and down 08:01:30-08:02, code 4711 and idle 08:03-08:04:30; m2 idle 08:02-08:03."""
    items = [
        (0, "state", "running", "m1"),
        (0, "total_count", 0, "m1"),
        (1.5, "fault", 12, "m1"),
        (1.5, "state", "down", "m1"),
        (2, "state", "running", "m1"),
        (3, "fault", "4711", "m1"),
        (3, "state", "idle", "m1"),
        (4.5, "state", "running", "m1"),
        (6, "total_count", 300, "m1"),
        (7, "state", "running", "m1"),
        (0, "state", "running", "m2"),
        (2, "state", "idle", "m2"),
        (3, "state", "running", "m2"),
        (7, "state", "running", "m2"),
    ]
    return sorted((reading(t, s, v, m) for t, s, v, m in items), key=lambda r: r.ts)


def started() -> tuple[Engine, list[Point]]:
    engine = build_engine(PLANT)
    for r in morning():
        engine.push(r)
    first = select(engine.take_points(), "stop")
    return engine, first


# -- the request -----------------------------------------------------------------------------------


def body(**fields: object) -> bytes:
    base: dict[str, object] = {"machine": "m1", "at": "2026-03-02T08:03:30Z", "reason": "jam"}
    base.update(fields)
    return json.dumps({k: v for k, v in base.items() if v is not ...}).encode()


def test_a_request_names_machine_time_and_reason() -> None:
    request = parse_request(body())
    assert (request.machine, request.at, request.given) == ("m1", us(3.5), "jam")
    # An offset is honoured: 15:03:30 at +07:00 is 08:03:30 UTC; a code may be a number.
    request = parse_request(body(at="2026-03-02T15:03:30+07:00", reason=12))
    assert (request.at, request.given) == (us(3.5), "12")


@pytest.mark.parametrize(
    ("raw", "why", "names"),
    [
        (b"", "bad_json", "not JSON"),
        (b"\xff\xfe{}", "bad_json", "not JSON"),
        (b"{'machine': 'm1'}", "bad_json", "not JSON"),
        (b"[1, 2]", "bad_json", "JSON object, not list"),
        (b"null", "bad_json", "JSON object, not NoneType"),
        (b"9" * 5000, "too_large", f"at most {MAX_BODY}"),
        (body(operator="ann"), "bad_field", "unknown field 'operator'"),
        (body(reason=...), "bad_field", "reason: missing"),
        (body(machine=7), "bad_field", "machine: must be a machine id"),
        (body(machine="m" * 65), "bad_field", "machine: must be a machine id"),
        (body(at="yesterday"), "bad_field", "at: 'yesterday' is not an ISO 8601 time"),
        (body(at="2026-03-02T08:03:30"), "bad_field", "has no offset"),
        (body(at=1772438610), "bad_field", "at: must be an ISO 8601 time"),
        (body(reason=True), "bad_field", "reason: must be a code"),
        (body(reason=12.5), "bad_field", "reason: must be a code"),
        (body(reason=["jam"]), "bad_field", "reason: must be a code"),
        (body(reason="   "), "bad_field", "reason: must be 1-64 characters"),
        (body(reason="x" * 65), "bad_field", "reason: must be 1-64 characters"),
    ],
)
def test_garbage_requests_are_refused_naming_the_field(raw: bytes, why: str, names: str) -> None:
    with pytest.raises(ReasonRefused) as refused:
        parse_request(raw)
    assert refused.value.reason == why
    assert names in str(refused.value)


def test_a_reason_is_a_code_or_a_name_of_the_tree_and_the_machine_types_own_come_first() -> None:
    tree = ReasonTree(
        codes={"12": ("film break", "material"), "7": ("jam", "mechanical")},
        groups={"material": "small_stop", "mechanical": "breakdown", "changeover": "setup"},
        by_type={"press": {"12": ("die change", "changeover")}},
    )
    assert code_for(tree, "packer", "12") == "12"
    assert code_for(tree, None, "Film Break") == "12"
    assert code_for(tree, "press", "die change") == "12"
    assert code_for(tree, "press", "jam") == "7"
    # On a press, code 12 is a die change: "film break" is not a reason a press can be given.
    with pytest.raises(ReasonRefused, match=r"reasons: die change, jam\)") as refused:
        code_for(tree, "press", "film break")
    assert refused.value.reason == "unknown_reason"
    for unknown in ("4711", "0", "jamm"):
        with pytest.raises(ReasonRefused, match="neither a code nor a reason of the tree"):
            code_for(tree, "packer", unknown)
    with pytest.raises(ReasonRefused, match="the plant file has no reasons tree"):
        code_for(ReasonTree(), None, "jam")


# -- the stop found, and rewritten -------------------------------------------------------------------


def test_an_operators_reason_rewrites_the_stop_with_revision_1() -> None:
    engine, first = started()
    idle = next(p for p in first if p.tags["machine"] == "m1" and p.tags["category"] == "idle")
    assert (idle.tags["reason"], idle.fields["revision"]) == ("code 4711", 0)
    # Any time inside the stop finds it; the reading goes at the stop's start.
    start = engine.stop_at("m1", us(4))
    assert start == us(3)
    engine.push(reading(3, OPERATOR_REASON, "7"))
    again = select(engine.take_points(), "stop", machine="m1")
    assert [(p.time, p.tags["reason"], p.fields["code"], p.fields["revision"]) for p in again] == [
        (idle.time, "jam", "7", 1)
    ]
    # The point says where its reason came from: the rule for the PLC's, the operator here.
    assert (idle.fields["cause"], again[0].fields["cause"]) == ("first", "operator")
    assert engine.stats["stops_corrected"] == 1


def test_the_operators_reason_beats_the_plc_code_and_is_not_inherited_by_the_next_stop() -> None:
    engine, _ = started()
    engine.push(reading(1.5, OPERATOR_REASON, "7"))  # the PLC said 12 (film break) at 08:01:30
    again = select(engine.take_points(), "stop", machine="m1")
    # Only the stop at 08:01:30 changes: the idle stop at 08:03 keeps its own code 4711.
    assert [(p.time.minute, p.tags["reason"], p.fields["revision"]) for p in again] == [(1, "jam", 1)]


def test_a_machine_without_a_reason_signal_takes_an_operators_reason() -> None:
    engine, _ = started()
    assert engine.stop_at("m2", us(2.5)) == us(2)
    engine.push(reading(2, OPERATOR_REASON, "12", "m2"))
    again = select(engine.take_points(), "stop", machine="m2")
    assert [(p.tags["reason"], p.tags["reason_group"], p.fields["revision"]) for p in again] == [
        ("film break", "material", 1)
    ]


def test_a_time_without_a_stop_an_unknown_machine_one_without_states_and_beyond_the_horizon() -> None:
    engine, _ = started()
    with pytest.raises(
        ReasonRefused,
        match=r"not stopped at 2026-03-02T08:02:30Z \(the stops before it start at 2026-03-02T08:01:30Z\)",
    ) as e:
        engine.stop_at("m1", us(2.5))  # running again since 08:02
    assert e.value.reason == "no_stop"
    with pytest.raises(ReasonRefused, match=r"m1 was not stopped at .* \(no stop before it is kept\)"):
        engine.stop_at("m1", us(0.5))
    with pytest.raises(ReasonRefused, match=r"'m9' is not in the plant \(machines: m1, m2, m3\)") as e:
        engine.stop_at("m9", us(2.5))
    assert e.value.reason == "unknown_machine"
    with pytest.raises(ReasonRefused, match="'m3' has no state signal") as e:
        engine.stop_at("m3", us(2.5))
    assert e.value.reason == "no_state"
    # Two hours on (running), 08:03:30 is more than the horizon of 3600 s behind m1's time.
    engine.push(reading(120, "state", "running"))
    engine.push(reading(121, "state", "running"))
    with pytest.raises(ReasonRefused, match=r"more than correction_horizon_s \(3600\) behind m1's time") as e:
        engine.stop_at("m1", us(3.5))
    assert e.value.reason == "too_late"


def test_the_stop_open_now_takes_a_reason_for_when_it_ends() -> None:
    engine, _ = started()
    engine.push(reading(8, "state", "down"))
    engine.push(reading(8.5, "state", "down"))
    engine.push(reading(9, "state", "down"))  # the watermark (5 s lateness) is past 08:08:30
    assert engine.stop_at("m1", us(8.8)) == us(8)
    engine.push(reading(8, OPERATOR_REASON, "7"))
    assert select(engine.take_points(), "stop", machine="m1") == []  # still open: nothing written
    engine.push(reading(10, "state", "running"))
    engine.push(reading(11, "state", "running"))
    written = select(engine.take_points(), "stop", machine="m1")
    assert [(p.time.minute, p.tags["reason"], p.fields["revision"]) for p in written] == [(8, "jam", 0)]


def test_in_order_an_operators_reason_before_the_state_at_the_same_instant_still_counts() -> None:
    # replay orders ties by signal: '@operator_reason' comes before 'state', and the state
    # reading at 08:02 ends the down stop before it begins the idle one the reason is for.
    engine = build_engine(PLANT, reorder=False)
    for r in [
        reading(0, "state", "running", "m2"),
        reading(1, "state", "down", "m2"),
        reading(2, OPERATOR_REASON, 12, "m2"),
        reading(2, "state", "idle", "m2"),
        reading(3, "state", "running", "m2"),
        reading(4, "state", "running", "m2"),
    ]:
        engine.push(r)
    engine.flush()
    stops = select(engine.take_points(), "stop", machine="m2")
    assert [(p.tags["category"], p.tags["reason"]) for p in stops] == [
        ("down", "unassigned"),
        ("idle", "film break"),
    ]


def test_the_assignment_survives_a_checkpoint_and_an_old_checkpoint_has_none() -> None:
    tracker = StopTracker()
    tracker.begin(us(1), "down")
    tracker.assign(us(1), 7)
    assert tracker.current() == ("7", "operator")
    again = StopTracker.from_list(json.loads(json.dumps(tracker.to_list())))
    assert again.assigned == (us(1), "7")
    old = StopTracker.from_list(tracker.to_list()[:7])  # written before operators' reasons
    assert old.assigned is None
    tracker.assign(us(1), 0)  # "no code" withdraws it
    assert tracker.current() == (None, "first")


def test_a_reading_at_any_instant_inside_the_stop_names_it_and_one_while_running_changes_nothing() -> None:
    # The kafka route (collect --from-file) has no engine to ask for the stop's start.
    engine, _ = started()
    engine.push(reading(4, OPERATOR_REASON, "12"))  # 08:04, inside the idle stop 08:03-08:04:30
    again = select(engine.take_points(), "stop", machine="m1")
    assert [(p.time.minute, p.tags["reason"], p.fields["cause"], p.fields["revision"]) for p in again] == [
        (3, "film break", "operator", 1)
    ]
    engine.push(reading(2.5, OPERATOR_REASON, "7"))  # 08:02:30: m1 was running
    assert select(engine.take_points(), "stop", machine="m1") == []


def test_at_the_instant_one_stop_ends_and_the_next_begins_the_reason_is_the_next_ones() -> None:
    # The stop that ts falls in is the one with start <= ts < end: at 08:02 the idle one.
    engine = build_engine(PLANT)
    for r in [
        reading(0, "state", "running", "m2"),
        reading(1, "state", "down", "m2"),
        reading(2, "state", "idle", "m2"),
        reading(3, "state", "running", "m2"),
        reading(4, "state", "running", "m2"),
    ]:
        engine.push(r)
    engine.take_points()
    engine.push(reading(2, OPERATOR_REASON, "7", "m2"))
    again = select(engine.take_points(), "stop", machine="m2")
    assert [(p.tags["category"], p.tags["reason"]) for p in again] == [("idle", "jam")]
