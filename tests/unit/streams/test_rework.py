"""A rework counter (role ``rework_count``, ISO 22400-2 RQ): ``rework_count`` and ``rework_ratio``
(RQ / PQ) on the ``oee`` points of its machine, and of a roll-up only when every member that
counts pieces counts rework too."""

from __future__ import annotations

import json

import pytest
from support import build_engine, reading, select

from plantstream.plant import PlantError, parse_plant

PLANT = """
sites:
  - id: demo
    timezone: UTC
    country: VN
    lines:
      - id: l1
        machines:
          - id: m1
            ideal_cycle_s: 1.0
            signals:
              state: state
              total_count: total_count
              good_count: good_count
              rework_count: rework_count
          - id: m2
            ideal_cycle_s: 1.0
            signals:
              state: state
              total_count: total_count
              rework: {role: rework_count, modulus: 65536}
      - id: l2
        machines:
          - id: m3
            ideal_cycle_s: 1.0
            signals:
              state: state
              total_count: total_count
production:
  allowed_lateness_s: 0
"""


def minute_points(readings: list) -> list:
    engine = build_engine(PLANT)
    for r in sorted(readings, key=lambda r: r.ts):
        engine.push(r)
    engine.flush()
    return engine.take_points()


def shift() -> list:
    """08:00-08:02, both machines of l1 and m3 of l2 running.

    m1: 50 pieces in the first minute (40 good, 4 to rework), 60 in the second (57 good, 3 rework);
    m2: 30 then 20 pieces, 6 then 2 to rework; m3: 10 pieces (no rework counter).
    """
    out = []
    for m in ("m1", "m2", "m3"):
        out += [reading(0, "state", "running", m), reading(2, "state", "running", m)]
    out += [reading(0, "total_count", 0), reading(1, "total_count", 50), reading(2, "total_count", 110)]
    out += [reading(0, "good_count", 0), reading(1, "good_count", 40), reading(2, "good_count", 97)]
    out += [reading(0, "rework_count", 100), reading(1, "rework_count", 104), reading(2, "rework_count", 107)]
    out += [reading(t, "total_count", n, "m2") for t, n in ((0, 0), (1, 30), (2, 50))]
    # A 16-bit rework counter rolling over: 65 534 -> 4 is 6 pieces, then 2 more.
    out += [reading(t, "rework", n, "m2") for t, n in ((0, 65_534), (1, 4), (2, 6))]
    out += [reading(t, "total_count", n, "m3") for t, n in ((0, 0), (2, 10))]
    return out


def test_a_machine_with_a_rework_counter_gets_the_rework_ratio() -> None:
    oee = {p.time.minute: p.fields for p in select(minute_points(shift()), "oee", machine="m1", window="1m")}
    assert (oee[0]["rework_count"], oee[0]["total_count"]) == (4, 50)
    assert oee[0]["rework_ratio"] == 4 / 50  # RQ / PQ = 0.08
    assert oee[1]["rework_ratio"] == 3 / 60  # 0.05
    # Rework is a defect: the quality ratio is good over total whatever is reworked.
    assert oee[0]["quality"] == 40 / 50
    m2 = {p.time.minute: p.fields for p in select(minute_points(shift()), "oee", machine="m2", window="1m")}
    assert (m2[0]["rework_count"], m2[0]["rework_ratio"]) == (6, 6 / 30)  # across the rollover


def test_a_machine_without_one_has_neither_field() -> None:
    for p in select(minute_points(shift()), "oee", machine="m3"):
        assert "rework_count" not in p.fields
        assert "rework_ratio" not in p.fields


def test_a_roll_up_sums_rework_only_when_every_counting_member_counts_it() -> None:
    points = minute_points(shift())
    last = {
        (p.tags.get("line"), p.time.minute): p.fields
        for p in select(points, "oee", window="1m")
        if "machine" not in p.tags
    }
    # Line l1: m1 and m2 both count rework: (4 + 6) / (50 + 30) in the first minute, (3 + 2) / (60 + 20) then.
    assert last[("l1", 0)]["rework_count"] == 10
    assert last[("l1", 0)]["rework_ratio"] == 10 / 80
    assert last[("l1", 1)]["rework_ratio"] == 5 / 80
    # The site has m3, which counts pieces but not rework: a ratio over all pieces would be too low.
    site = [p.fields for p in select(points, "oee", window="1m") if "line" not in p.tags]
    assert site
    assert all("rework_ratio" not in f and "rework_count" not in f for f in site)


def test_a_checkpoint_written_before_rework_counters_still_loads() -> None:
    engine = build_engine(PLANT)
    readings = sorted(shift(), key=lambda r: r.ts)
    for r in readings[:10]:
        engine.push(r)
    saved = json.loads(json.dumps(engine.checkpoint()))
    for machine in saved["machines"].values():
        for window in machine["state"]["windows"]:
            window[2] = window[2][:3]  # total, good, reject only: the old form
    again = build_engine(PLANT)
    again.restore(saved)
    for r in readings[10:]:
        again.push(r)
    again.flush()
    assert select(again.take_points(), "oee", machine="m1")


@pytest.mark.parametrize(
    ("signals", "fragment"),
    [
        (
            "{state: state, rework_count: rework_count}",
            "needs a total_count, good_count or reject_count beside it",
        ),
        ("{total_count: total_count, a: rework_count, b: rework_count}", "both have role rework_count"),
        ("{total_count: total_count, rework: {role: rework_count, modulus: 0}}", "modulus"),
        ("{total_count: total_count, rework: {role: rework_counts}}", "rework_counts"),
    ],
)
def test_a_wrong_rework_counter_is_refused_with_its_place(signals: str, fragment: str) -> None:
    text = PLANT.replace(
        "signals:\n              state: state\n              total_count: total_count\nproduction",
        f"signals: {signals}\nproduction",
    )
    assert text != PLANT
    with pytest.raises(PlantError) as refused:
        parse_plant(text)
    assert fragment in str(refused.value)
    assert "machines[0]" in str(refused.value)
    assert "lines[1]" in str(refused.value)
