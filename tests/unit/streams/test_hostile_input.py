"""Issue 13 rows 1-4: implausible times and values are refused with a reason, and nothing else changes.

Each case runs the same readings with and without the bad one and compares every point (all
machines, line and site roll-ups included).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from support import ROLLUP_PLANT, T0, build_engine, plant_text, reading, select

from plantstream.records import EPOCH, Reading
from streams.engine import Engine, ReadingRejected
from streams.plausibility import (
    COUNT_MARGIN,
    COUNT_SLACK,
    DEFAULT_MAX_KW,
    POWER_MARGIN,
    Bound,
    Increase,
    count_bound,
    energy_bound,
    judge,
)

RATED = "ideal_cycle_s: 1.0\n            rated_power_kw: 50"


def shift(minutes: int = 10, machines: tuple[str, ...] = ("m1", "m2", "m3")) -> list[Reading]:
    """Each machine runs at 1 piece a second (60 a minute) and draws 30 kW (0.5 kWh a minute)."""
    out = [reading(0, "state", "running", machine=m) for m in machines]
    for minute in range(minutes + 1):
        for m in machines:
            out += [
                reading(minute, "total_count", 60 * minute, machine=m),
                reading(minute, "good_count", 60 * minute, machine=m),
                reading(minute, "reject_count", 0, machine=m),
                reading(minute, "energy_kwh", 0.5 * minute, machine=m),
                reading(minute, "power_kw", 30.0, machine=m),
            ]
    return out


def us(r: Reading) -> int:
    return (r.ts - EPOCH) // timedelta(microseconds=1)


def run(
    text: str, readings: list[Reading], *, reorder: bool = True, received: dict[int, int] | None = None
) -> tuple[list[str], list[str]]:
    """Every point (as JSON) and every refusal's reason, pushing each reading as a runtime would."""
    engine = build_engine(text, reorder=reorder)
    reasons = []
    for i, r in enumerate(readings):
        try:
            engine.push_raw(us(r), r.machine, r.signal, r.value, r.quality.value, (received or {}).get(i))
        except ReadingRejected as exc:
            reasons.append(exc.reason)
    engine.flush()
    return sorted(p.to_json() for p in engine.take_points()), reasons


def with_bad(readings: list[Reading], at: int, bad: Reading) -> list[Reading]:
    return [*readings[:at], bad, *readings[at:]]


def shift_fields(points: list[str], machine: str) -> dict:
    for line in points:
        p = json.loads(line)
        if (
            p["measurement"] == "oee"
            and p["tags"].get("machine") == machine
            and p["tags"]["window"] == "shift"
        ):
            return p["fields"]
    raise AssertionError(f"no shift point of {machine}")


# -- row 1: time sanity ---------------------------------------------------------------------------


@pytest.mark.parametrize("reorder", [True, False])
def test_a_reading_stamped_1970_is_refused_as_bad_time(reorder: bool) -> None:
    clean = shift()
    bad = Reading(ts=datetime(1970, 1, 1, tzinfo=UTC), machine="m1", signal="total_count", value=5)
    points, reasons = run(ROLLUP_PLANT, with_bad(clean, 40, bad), reorder=reorder)
    assert reasons == ["bad_time"]
    assert points == run(ROLLUP_PLANT, clean, reorder=reorder)[0]


@pytest.mark.parametrize("reorder", [True, False])
def test_a_reading_a_year_ahead_without_receipt_time_is_a_clock_jump(reorder: bool) -> None:
    clean = shift()
    bad = reading(365 * 24 * 60, "total_count", 700, machine="m1")
    points, reasons = run(ROLLUP_PLANT, with_bad(clean, 40, bad), reorder=reorder)
    assert reasons == ["clock_jump"]
    assert points == run(ROLLUP_PLANT, clean, reorder=reorder)[0]


def test_a_reading_a_year_ahead_of_its_receipt_is_refused_as_future() -> None:
    clean = shift()
    readings = with_bad(clean, 40, reading(365 * 24 * 60, "total_count", 700, machine="m1"))
    # Each reading received 2 s after its event time; the bad one with the one before it.
    received = {i: us(r) + 2_000_000 for i, r in enumerate(readings)}
    received[40] = received[39]
    points, reasons = run(ROLLUP_PLANT, readings, received=received)
    assert reasons == ["future"]
    assert points == run(ROLLUP_PLANT, clean)[0]


def test_an_event_time_300_s_ahead_of_receipt_is_taken_and_301_s_is_not() -> None:
    engine = build_engine(plant_text(), reorder=False)
    now = us(reading(0, "state", "running"))
    engine.push_raw(now + 300_000_000, "m1", "state", "running", "good", now)
    with pytest.raises(ReadingRejected) as refused:
        engine.push_raw(now + 301_000_000, "m1", "state", "idle", "good", now)
    assert refused.value.reason == "future"
    assert "301 s ahead of its receipt (max_future_s: 300)" in str(refused.value)


def test_a_jump_is_taken_in_replay_once_three_readings_in_a_row_confirm_it() -> None:
    # Without a receipt time, a jump of more than max_clock_jump_s (1 day) may be a wrong clock
    # or a machine back from a long stop: the third reading in a row at the new time decides.
    engine = build_engine(plant_text(calendar=None), reorder=False)
    engine.push(reading(0, "state", "running"))
    later = [reading(2 * 24 * 60 + i, "state", "running") for i in range(3)]
    for r in later[:2]:
        with pytest.raises(ReadingRejected) as refused:
            engine.push(r)
        assert refused.value.reason == "clock_jump"
    engine.push(later[2])
    assert engine.stats["clock_jumps_taken"] == 1
    assert engine.stats["rejected_clock_jump"] == 2


def test_a_jump_confirmed_by_the_receipt_time_is_taken_at_once() -> None:
    engine = build_engine(plant_text(calendar=None), reorder=False)
    engine.push(reading(0, "state", "running"))
    back = reading(2 * 24 * 60, "state", "idle")
    engine.push_raw(us(back), "m1", "state", "idle", "good", us(back) + 1_000_000)
    assert engine.stats["rejected_clock_jump"] == 0


def test_a_week_of_silence_yields_that_weeks_windows_once_and_a_longer_one_none() -> None:
    # Planned all the time, 1-minute windows: a machine back after 7 days fills 7 x 1440 windows
    # (each once, all unknown time); after 10 days (over max_gap_fill_s, 8 days) it resumes at
    # its new time and the windows of the silence are not emitted at all.
    def windows_after(days: int) -> int:
        engine = build_engine(plant_text(calendar=None), reorder=False)
        engine.push(reading(0, "state", "running"))
        back = reading(days * 24 * 60, "state", "running")
        engine.push_raw(us(back), "m1", "state", "running", "good", us(back))
        engine.push_raw(us(back) + 120_000_000, "m1", "state", "running", "good", us(back) + 120_000_000)
        engine.flush()
        points = select(engine.take_points(), "oee", machine="m1", window="1m")
        assert len({p.time for p in points}) == len(points)  # each window once
        return len(points)

    # 7 days: 08:00 day 0 to 08:02 day 7, every minute once: 7 x 1440 + 2.
    assert windows_after(7) == 7 * 1440 + 2
    # 10 days: the two minutes after the return (the first reading alone spans no time).
    assert windows_after(10) == 2


# -- rows 2 and 4: energy registers --------------------------------------------------------------


@pytest.mark.parametrize("text", [ROLLUP_PLANT.replace("ideal_cycle_s: 1.0", RATED), ROLLUP_PLANT])
def test_an_energy_register_dip_of_half_a_kwh_is_a_glitch_not_a_reset(text: str) -> None:
    # Row 2 (with rated_power_kw: it crashed the run in streams/carbon.py) and row 4 (without:
    # read as a reset, +51 %): 2.5 kWh at 08:05 then 2.0 at 08:05:30 is neither a reset (not
    # below half) nor a rollover.
    clean = shift()
    points, reasons = run(text, with_bad(clean, 80, reading(5.5, "energy_kwh", 2.0, machine="m1")))
    assert reasons == ["implausible"]
    assert points == run(text, clean)[0]
    energy = [json.loads(p) for p in points if '"measurement":"energy"' in p]
    kwh = sum(
        p["fields"]["kwh"] for p in energy if p["tags"] == {**p["tags"], "machine": "m1", "window": "1m"}
    )
    assert kwh == pytest.approx(0.5 * 10)


def test_an_energy_spike_to_1_23e35_kwh_is_refused() -> None:
    # Row 4: without rated_power_kw the bound is the default 20 000 kW, i.e. 20 000 / 120 =
    # 166.7 kWh in the 30 s since the last sample; 1.23e35 is refused, not booked.
    clean = shift()
    points, reasons = run(
        ROLLUP_PLANT, with_bad(clean, 80, reading(5.5, "energy_kwh", 1.23e35, machine="m1"))
    )
    assert reasons == ["implausible"]
    assert points == run(ROLLUP_PLANT, clean)[0]


def test_a_real_register_reset_is_still_counted_as_one() -> None:
    # 2.5 kWh -> 0.1 kWh (below half: the meter was cleared); the increase after it counts.
    engine = build_engine(plant_text(calendar=None), reorder=False)
    for minute, kwh in ((0, 2.0), (1, 2.5), (2, 0.1), (3, 0.6)):
        engine.push(reading(minute, "energy_kwh", kwh))
    engine.flush()
    kwh_total = sum(p.fields["kwh"] for p in select(engine.take_points(), "energy", window="1m"))
    assert kwh_total == pytest.approx(0.5 + 0.1 + 0.5)


def test_power_above_the_rating_is_refused() -> None:
    # rated 50 kW x 1.2 = 60 kW: 60 is taken, 61 is not.
    engine = build_engine(plant_text().replace("ideal_cycle_s: 1.0", RATED), reorder=False)
    engine.push(reading(0, "power_kw", 60.0))
    with pytest.raises(ReadingRejected) as refused:
        engine.push(reading(0.5, "power_kw", 61.0))
    assert refused.value.reason == "implausible"


# -- row 3: counters --------------------------------------------------------------------------------


def test_a_counter_value_of_1e38_is_refused_and_the_shift_is_unchanged() -> None:
    clean = shift()
    points, reasons = run(ROLLUP_PLANT, with_bad(clean, 60, reading(3.5, "total_count", 1e38, machine="m1")))
    assert reasons == ["implausible"]
    assert points == run(ROLLUP_PLANT, clean)[0]
    # 600 pieces in 10 minutes at 1 s ideal cycle: performance 1.0 (it was 446 827 % before).
    assert shift_fields(points, "m1")["performance"] == pytest.approx(1.0)


def test_a_count_beyond_the_ideal_rate_with_its_margin_is_refused() -> None:
    # ideal_cycle_s 1.0: in 60 s at most 60 x 1.5 + 10 = 100 pieces.
    bound = count_bound(1_000_000)
    assert bound.max_increase(60_000_000) == 60 * COUNT_MARGIN + COUNT_SLACK == 100
    engine = build_engine(plant_text(), reorder=False)
    engine.push(reading(0, "total_count", 0))
    engine.push(reading(1, "total_count", 100))
    with pytest.raises(ReadingRejected) as refused:
        engine.push(reading(2, "total_count", 201))
    assert refused.value.reason == "implausible"


def test_a_small_counter_fall_is_a_glitch_and_never_read_as_a_reset() -> None:
    clean = shift()
    points, reasons = run(ROLLUP_PLANT, with_bad(clean, 60, reading(3.5, "good_count", 170, machine="m1")))
    assert reasons == ["implausible"]
    assert points == run(ROLLUP_PLANT, clean)[0]


def test_a_replaced_counter_is_followed_after_three_agreeing_readings_without_crediting_the_jump() -> None:
    engine = build_engine(plant_text(calendar=None), reorder=False)
    engine.push(reading(0, "total_count", 50_000))
    # A new meter that starts at 30 000: not below half, so not a reset; refused twice, then followed.
    for minute, count in ((1, 30_000), (2, 30_060)):
        with pytest.raises(ReadingRejected):
            engine.push(reading(minute, "total_count", count))
    engine.push(reading(3, "total_count", 30_120))
    engine.push(reading(4, "total_count", 30_180))
    engine.flush()
    counts = sum(p.fields["total_count"] for p in select(engine.take_points(), "oee", window="1m"))
    assert counts == 60  # only 30 120 -> 30 180: the jump and the refused readings credit nothing
    assert engine.checkpoint()["machines"]["m1"]["state"]["stats"]["rebased"] == 1


def test_judge_follows_the_published_reset_and_rollover_vectors() -> None:
    # TV-EN-1 samples 1, 2, 8, 10, 0, 4 (a reset to 0), TV-EN-4 32-bit rollover 4 294 967 000 -> 1 000.
    loose = Bound(1e6)
    assert [judge(a, b, 1e6, loose) for a, b in ((1, 2), (2, 8), (8, 10), (10, 0), (0, 4))] == [
        (1, "none"),
        (6, "none"),
        (2, "none"),
        (0, "reset"),
        (4, "none"),
    ]
    assert judge(4_294_967_000, 1_000, 1e6, loose, 2**32) == (1_296, "rollover")
    for absurd in (-1.0, 2.0**53 + 2, 1e38):
        assert not isinstance(judge(0, absurd, 1e6, loose), Increase)


def test_the_default_bounds_are_the_documented_ones() -> None:
    # 20 000 kW for an hour is 20 000 kWh; rated 50 kW x 1.2 for an hour is 60 kWh.
    assert energy_bound(None).max_increase(3600e6) == pytest.approx(DEFAULT_MAX_KW)
    assert energy_bound(50).max_increase(3600e6) == pytest.approx(50 * POWER_MARGIN)


# -- the safety net and the checkpoint ------------------------------------------------------------


def test_a_calculators_own_check_becomes_an_internal_refusal_of_that_reading(monkeypatch) -> None:
    from streams import carbon

    def refuse(kwh: float, factor: float) -> float:
        raise ValueError("kwh must be a finite number >= 0")

    engine = build_engine(plant_text(calendar=None), reorder=False)
    engine.push(reading(0, "state", "running"))
    monkeypatch.setattr(carbon, "scope2_kg", refuse)
    with pytest.raises(ReadingRejected) as refused:
        engine.push(reading(2, "state", "running"))  # closes 08:00 and 08:01: carbon is computed
    assert refused.value.reason == "internal"
    assert "kwh must be a finite number" in str(refused.value)


def test_plausibility_state_survives_a_checkpoint_and_old_checkpoints_load() -> None:
    engine = build_engine(plant_text(calendar=None), reorder=False)
    engine.push(reading(0, "total_count", 50_000))
    with pytest.raises(ReadingRejected):
        engine.push(reading(1, "total_count", 30_000))
    saved = json.loads(json.dumps(engine.checkpoint()))
    assert saved["machines"]["m1"]["state"]["suspects"] == {"total_count": [[us(reading(1, "x", 0)), 30_000]]}
    restored = build_engine(plant_text(calendar=None), reorder=False)
    restored.restore(saved)
    with pytest.raises(ReadingRejected):
        restored.push(reading(2, "total_count", 30_060))
    restored.push(reading(3, "total_count", 30_120))  # the third agreeing reading: followed
    # A checkpoint written before these fields existed still loads.
    for key in ("suspects", "counter_at"):
        del saved["machines"]["m1"]["state"][key]
    build_engine(plant_text(calendar=None), reorder=False).restore(saved)


# -- refusals after a restart say what happened ---------------------------------------------------


def test_after_a_restart_a_catch_up_value_already_counted_is_a_duplicate_not_too_late() -> None:
    # Issue 14 item 3: a source's catch-up read after a restart sends its last values again; they
    # are minutes old, well inside the hour's horizon, and were counted before the restart.
    text = plant_text(calendar=None)
    engine = build_engine(text, reorder=False)
    for r in [*shift(5, ("m1",)), reading(5.5, "state", "running")]:
        engine.push(r)
    restored = build_engine(text, reorder=False)
    restored.restore(json.loads(json.dumps(engine.checkpoint())))
    with pytest.raises(ReadingRejected) as refused:
        restored.push(reading(5, "total_count", 300))  # the value taken at 08:05, again
    assert refused.value.reason == "duplicate"
    with pytest.raises(ReadingRejected) as refused:
        restored.push(reading(3.5, "state", "down"))  # new, but behind what the checkpoint holds
    assert refused.value.reason == "before_restart"
    assert "already counted before the restart" in str(refused.value)
    for r in shift(70, ("m1",)):
        if r.ts > T0 + timedelta(minutes=5.5):
            restored.push(r)
    with pytest.raises(ReadingRejected) as refused:
        restored.push(reading(4.5, "state", "down"))  # 08:04:30, more than an hour behind 09:10
    assert refused.value.reason == "too_late"


def test_a_text_value_longer_than_64_characters_is_refused() -> None:
    engine: Engine = build_engine(plant_text())
    with pytest.raises(ReadingRejected) as refused:
        engine.push(reading(0, "state", "x" * 65))
    assert refused.value.reason == "bad_value"
