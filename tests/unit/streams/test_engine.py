"""The windowing engine: watermarks, late-data corrections, calendars, roll-ups, carbon, bad input."""

from __future__ import annotations

import dataclasses
import gc
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support import build_spec, parse_plant, plant_text, reading, run_engine, select

from streams.engine import Engine, ReadingRejected
from streams.machine import WindowResult
from streams.oee import OeeElements


def production(minutes: int = 10) -> list:
    """A machine running with a counter sample each minute, 60 pieces a minute."""
    out = [reading(0, "state", "running")]
    for m in range(minutes + 1):
        out += [
            reading(m, "total_count", 60 * m),
            reading(m, "good_count", 60 * m),
            reading(m, "reject_count", 0),
        ]
    return out


def test_window_point_time_is_the_window_start_and_counts_book_to_the_interval_end() -> None:
    points = select(run_engine(plant_text(), production(3)), "oee", machine="m1", window="1m")
    assert [p.time.strftime("%H:%M") for p in points] == ["08:00", "08:01", "08:02"]
    # The sample at 08:01:00 reports (08:00, 08:01]: it belongs to the 08:00 window.
    assert [p.fields["total_count"] for p in points] == [60, 60, 60]
    assert all(p.fields["revision"] == 0 for p in points)


def test_out_of_order_within_lateness_changes_nothing() -> None:
    ordered = production(5)
    shuffled = ordered[:]
    shuffled[3], shuffled[7] = shuffled[7], shuffled[3]  # 2 minutes apart at most? no: same minute block
    assert run_engine(plant_text(lateness=120), shuffled) == run_engine(plant_text(lateness=120), ordered)


def test_late_reading_corrects_the_closed_window_with_the_same_identity() -> None:
    readings = production(5)
    late = reading(1.5, "state", "down")  # arrives after everything, 3.5 min late, lateness 5 s
    recovery = reading(1.75, "state", "running")
    points = run_engine(plant_text(), [*readings, late, recovery])
    window = [
        p for p in select(points, "oee", machine="m1", window="1m") if p.time.strftime("%H:%M") == "08:01"
    ]
    assert [p.fields["revision"] for p in window] == [0, 1, 2]
    assert window[-1].fields["down_s"] == 15.0
    assert window[-1].fields["run_s"] == 45.0
    assert len({(p.measurement, tuple(p.tags.items()), p.time) for p in window}) == 1


def test_readings_older_than_the_correction_horizon_are_refused() -> None:
    from support import build_engine

    engine = build_engine(plant_text())
    for r in production(70):
        engine.push(r)
    with pytest.raises(ReadingRejected) as caught:
        engine.push(reading(1, "state", "down"))
    assert caught.value.reason == "too_late"


def test_shift_calendar_in_local_time_with_breaks_and_holidays() -> None:
    calendar = """
calendars:
  day:
    shifts:
      - name: early
        start: "15:00"
        end: "16:00"
        breaks: [{start: "15:30", end: "15:40"}]
    holidays: [2026-03-03]
"""
    # 15:00 in Ho Chi Minh City (UTC+7) is 08:00 UTC.
    text = plant_text(tz="Asia/Ho_Chi_Minh", calendar=calendar)
    readings = [reading(0, "state", "running"), reading(60, "state", "idle")]
    readings += [reading(24 * 60, "state", "running"), reading(24 * 60 + 60, "state", "idle")]  # a holiday
    shifts = select(run_engine(text, readings), "oee", machine="m1", window="shift")
    assert len(shifts) == 1
    fields = shifts[0].fields
    assert shifts[0].tags["shift"] == "early"
    assert shifts[0].time.strftime("%Y-%m-%d %H:%M") == "2026-03-02 08:00"
    assert fields["scheduled_s"] == 3600
    assert fields["planned_stop_s"] == 600
    assert fields["planned_busy_s"] == 3000
    assert fields["run_s"] == 3000
    assert fields["availability"] == 1.0


def test_misaligned_calendar_is_a_config_problem() -> None:
    from streams.config import ConfigProblem

    calendar = """
calendars:
  day:
    shifts:
      - {name: day, start: "08:00:30", end: "16:00"}
"""
    with pytest.raises(ConfigProblem, match="not on a 60 s window boundary"):
        run_engine(plant_text(calendar=calendar), [])


def test_planned_time_without_data_is_unknown_not_guessed() -> None:
    # First reading at 12:00: the four hours before are unknown; the state then runs to 16:00.
    readings = [reading(240, "state", "running"), reading(480, "total_count", 0)]
    [shift] = select(run_engine(plant_text(), readings), "oee", machine="m1", window="shift")
    assert shift.fields["unknown_s"] == 4 * 3600
    assert shift.fields["run_s"] == 4 * 3600
    assert shift.fields["availability"] == 0.5


def test_bad_quality_state_makes_time_unknown() -> None:
    readings = [
        reading(0, "state", "running"),
        reading(1, "state", "running", quality="bad"),
        reading(2, "state", "running"),
        reading(3, "total_count", 0),
    ]
    points = select(run_engine(plant_text(), readings), "oee", machine="m1", window="1m")
    assert [p.fields["unknown_s"] for p in points] == [0, 60, 0]


def test_state_codes_from_a_plc() -> None:
    text = plant_text().replace("state: state", "state: {role: state, codes: {0: off, 1: running, 2: down}}")
    readings = [
        reading(0, "state", 1),
        reading(1, "state", 2.0),
        reading(2, "state", "running"),
        reading(3, "state", 0),
    ]
    points = select(run_engine(text, readings), "oee", machine="m1", window="1m")
    assert [(p.fields["run_s"], p.fields["down_s"]) for p in points] == [(60, 0), (0, 60), (60, 0)]


@pytest.mark.parametrize(
    ("r", "reason"),
    [
        (reading(0, "state", "running", machine="m9"), "unknown_machine"),
        (reading(0, "temperature", 21.5), "unknown_signal"),
        (reading(0, "total_count", "many"), "bad_value"),
        (reading(0, "state", "dancing"), "bad_value"),
        (reading(0, "power_kw", float("nan")), "bad_value"),
    ],
)
def test_bad_readings_are_refused_with_a_reason_and_lose_nothing_else(r, reason: str) -> None:
    from support import build_engine

    engine = build_engine(plant_text())
    good = production(3)
    for item in good[:5]:
        engine.push(item)
    with pytest.raises(ReadingRejected) as caught:
        engine.push(r)
    assert caught.value.reason == reason
    for item in good[5:]:
        engine.push(item)
    engine.flush()
    assert engine.take_points() == run_engine(plant_text(), good)


def test_carbon_is_kwh_times_the_grid_factor() -> None:
    # 60 kW for one hour = 60 kWh; Viet Nam 2023: 0.6592 t/MWh -> 39.552 kg.
    readings = [reading(m, "power_kw", 60) for m in range(61)]
    points = select(run_engine(plant_text(calendar=None), readings), "carbon", window="1m")
    assert sum(p.fields["scope2_location_kg"] for p in points) == pytest.approx(60 * 0.6592)
    assert all(p.fields["grid_factor_t_per_mwh"] == 0.6592 for p in points)


def test_fuel_meter_gives_scope1_tv_c_4() -> None:
    # TV-C-4: 100 t natural gas = 4.8 TJ -> 269.542 t CO2e (AR5), spread over one hour of meter readings.
    text = plant_text(calendar=None).replace(
        "energy_kwh: energy_kwh",
        "energy_kwh: energy_kwh\n              gas: {role: fuel, fuel: natural_gas, unit: t}",
    )
    readings = [reading(m, "gas", 100 * m / 60) for m in range(61)]
    points = select(run_engine(text, readings), "carbon", window="1m")
    assert sum(p.fields["scope1_co2e_kg"] for p in points) == pytest.approx(269_542, abs=1)


def test_fuel_meter_gives_the_co2_alone_beside_the_scope1_co2e() -> None:
    # 100 t natural gas = 4.8 TJ [IPCC06]: CO2 4.8 x 56 100 = 269 280 kg; CO2e adds CH4 4.8 x 1 x 28
    # = 134.4 and N2O 4.8 x 0.1 x 265 = 127.2 (AR5): 269 541.6 kg, 261.6 kg (0.097 %) more. CBAM
    # counts the CO2 alone, so the points carry it apart.
    text = plant_text(calendar=None).replace(
        "energy_kwh: energy_kwh",
        "energy_kwh: energy_kwh\n              gas: {role: fuel, fuel: natural_gas, unit: t}",
    )
    readings = [reading(m, "gas", 100 * m / 60) for m in range(61)]
    points = select(run_engine(text, readings), "carbon", window="1m")
    co2 = sum(p.fields["scope1_co2_kg"] for p in points)
    co2e = sum(p.fields["scope1_co2e_kg"] for p in points)
    assert co2 == pytest.approx(269_280, rel=1e-12)
    assert co2e == pytest.approx(269_541.6, rel=1e-12)
    assert (co2e - co2) / co2 == pytest.approx(261.6 / 269_280, rel=1e-9)


def two_machine_plant() -> str:
    text = plant_text()
    m2 = """
          - id: m2
            ideal_cycle_s: 2.0
            signals: {state: state, total_count: total_count}
"""
    return text.replace(
        "              energy_kwh: energy_kwh\n", "              energy_kwh: energy_kwh\n" + m2, 1
    )


def test_line_roll_up_sums_elements_and_never_averages_ratios() -> None:
    readings = production(4)
    readings += [reading(0, "state", "running", machine="m2"), reading(2, "state", "down", machine="m2")]
    readings += [reading(m, "total_count", 20 * m, machine="m2") for m in range(5)]
    points = run_engine(two_machine_plant(), readings)
    machines = [p for p in select(points, "oee", window="shift") if "machine" in p.tags]
    [line] = [p for p in select(points, "oee", window="shift") if "machine" not in p.tags]
    assert line.tags == {"site": "demo", "line": "l1", "window": "shift", "shift": "day"}
    for key in ("planned_busy_s", "run_s", "down_s", "total_count", "good_count", "ideal_run_s"):
        assert line.fields[key] == pytest.approx(sum(p.fields[key] for p in machines)), key
    assert line.fields["availability"] == pytest.approx(line.fields["run_s"] / line.fields["planned_busy_s"])
    assert line.fields["machines"] == 2


def _locally_shuffled(items: list, seed: int, window: int) -> list:
    rng = random.Random(seed)
    keyed = [(i + rng.uniform(0, window), n, item) for n, (i, item) in enumerate(enumerate(items))]
    return [item for _, _, item in sorted(keyed)]


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(min_value=0, max_value=10_000))
def test_output_is_independent_of_input_order_within_the_allowed_lateness(seed: int) -> None:
    # Readings one minute apart or more; a displacement of at most 3 positions (< 2 min) with 10 min lateness.
    readings = production(20) + [reading(m + 0.5, "power_kw", 10 + m) for m in range(20)]
    readings.sort(key=lambda r: (r.ts, r.signal))
    text = plant_text(lateness=600)
    assert run_engine(text, _locally_shuffled(readings, seed, 3)) == run_engine(text, readings)


@pytest.mark.parametrize("cut", [1, 17, 40, 95])
def test_a_checkpoint_through_json_continues_exactly(cut: int) -> None:
    import json

    from support import build_engine

    text = two_machine_plant()
    readings = production(8) + [reading(m + 0.25, "power_kw", 5 + m) for m in range(8)]
    readings += [reading(0, "state", "running", machine="m2"), reading(3.5, "state", "down", machine="m2")]
    readings += [reading(m, "total_count", 20 * m, machine="m2") for m in range(9)]
    readings.sort(key=lambda r: (r.ts, r.machine, r.signal))
    first = build_engine(text)
    for r in readings[:cut]:
        first.push(r)
    before = first.take_points()
    saved = json.loads(json.dumps(first.checkpoint()))
    second = build_engine(text)
    second.restore(saved)
    for r in readings[cut:]:
        second.push(r)
    second.flush()
    assert before + second.take_points() == run_engine(text, readings)


def test_a_checkpoint_of_another_version_is_refused() -> None:
    from support import build_engine

    engine = build_engine(plant_text())
    saved = engine.checkpoint()
    saved["version"] = 99
    with pytest.raises(ValueError, match="checkpoint version 99"):
        build_engine(plant_text()).restore(saved)


def test_successive_late_readings_each_correct_their_window() -> None:
    # Two late stops, the second older than the first: both corrections land, nothing is refused.
    readings = production(30)
    late = [reading(20.5, "state", "down"), reading(20.75, "state", "running")]
    later = [reading(3.5, "state", "down"), reading(3.75, "state", "running")]
    points = run_engine(plant_text(), [*readings, *late, *later])
    [shift] = [p for p in select(points, "oee", machine="m1", window="shift") if p.fields["revision"] == 0]
    minutes = {p.time.strftime("%H:%M"): p for p in select(points, "oee", machine="m1", window="1m")}
    assert minutes["08:20"].fields["down_s"] == 15
    assert minutes["08:03"].fields["down_s"] == 15
    assert shift.fields["down_s"] == 30


def test_a_machine_without_a_calendar_is_planned_all_the_time() -> None:
    # Running for 4 minutes with 30 pieces a minute at 1 s ideal cycle: A = 1, P = 30/60, Q = 1.
    readings = [reading(0, "state", "running")]
    readings += [reading(m, signal, 30 * m) for m in range(5) for signal in ("total_count", "good_count")]
    windows = select(run_engine(plant_text(calendar=None), readings), "oee", window="1m")
    assert [w.fields["run_s"] for w in windows] == [60.0] * 4
    assert all(w.fields["unknown_s"] == 0 and w.fields["availability"] == 1.0 for w in windows)
    assert all(w.fields["performance"] == 0.5 and w.fields["oee"] == 0.5 for w in windows)


METERS = 40
METER_PLANT = """
sites:
  - id: s
    timezone: UTC
    country: VN
    lines:
      - id: meters
        machines:
{machines}
production:
  window_s: 60
  allowed_lateness_s: 5
"""


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_line_of_many_meters_rolls_up_each_window_once_after_its_last_meter(seed: int) -> None:
    # 40 power meters, sampled every 10 s for 5 minutes, each step in a different shuffled order,
    # so the machine that holds a roll-up back is anywhere in the scope (the scan starts there).
    machines = "\n".join(
        f"          - {{id: p{k}, signals: {{power_kw: {{role: power_kw}}}}}}" for k in range(1, METERS + 1)
    )
    from support import build_engine

    engine = build_engine(METER_PLANT.format(machines=machines))
    rng = random.Random(seed)
    out = []
    for step in range(31):
        order = list(range(1, METERS + 1))
        rng.shuffle(order)
        for k in order:
            engine.push(reading(step / 6, "power_kw", float(k), machine=f"p{k}"))
            out += engine.take_points()
    energy = [p for p in out if p.measurement == "energy"]
    line = [p for p in energy if "machine" not in p.tags]
    # Windows 08:00 .. 08:03 closed (08:04 needs a reading at 08:04:05 or later).
    assert [p.time.strftime("%H:%M") for p in line] == ["08:00", "08:01", "08:02", "08:03"]
    assert all(p.fields["revision"] == 0 and p.fields["machines"] == METERS for p in line)
    for point in line:
        position = out.index(point)
        parts = [p for p in energy[: energy.index(point)] if p.time == point.time and "machine" in p.tags]
        assert len(parts) == METERS, position  # every meter closed the window before its roll-up
        assert point.fields["kwh"] == pytest.approx(sum(p.fields["kwh"] for p in parts))


def test_the_checkpoint_forms_of_results_are_what_asdict_gives() -> None:
    # The hand-written forms are faster; they must stay equal to the generic one as fields change.
    elements = OeeElements(
        scheduled=3_600, planned_stop=600, run=2_400, micro=60, down=300, idle=200, setup=100,
        off=0, unknown=0, total=2_400, good=2_380, reject=20, ideal=2_350.0,
    )  # fmt: skip
    result = WindowResult("shift", 0, 3_600, "day", elements, 12.5, 3_600, 0.001, 56.1, 8.2, None)
    assert elements.to_dict() == dataclasses.asdict(elements)
    assert result.to_dict() == dataclasses.asdict(result)
    assert WindowResult.from_dict(result.to_dict()) == result


def test_the_correction_history_is_bounded_and_older_late_data_is_refused_not_lost() -> None:
    # A share of 40 readings: with 3 counter samples a minute, about 13 minutes of history.
    spec = dataclasses.replace(build_spec(parse_plant(plant_text()).model), correction_history_max=40)
    engine = Engine(spec)
    longest = 0
    for r in production(30):
        engine.push(r)
        longest = max(longest, len(engine._tracks["m1"].history))
    engine.take_points()
    # Over its share, the history is cut at every window close, so it never holds more than the
    # share plus the readings of about one window (1 minute x 3 samples, and the tick that closes it).
    assert longest <= 40 + 1 * 3 + 1, longest
    # Results of windows before the oldest kept snapshot cannot change any more: forgotten too
    # (the hour's horizon alone would keep all 30 minutes' windows).
    assert len([key for key in engine._tracks["m1"].emitted if "window" in str(key)]) <= 40 // 3 + 4 + 1
    assert engine.stats["history_trimmed"] > 0
    # Minute 2 is within the hour's horizon but no longer in the history: refused, with its reason.
    with pytest.raises(ReadingRejected) as caught:
        engine.push(reading(2.5, "state", "down"))
    assert caught.value.reason == "too_late"
    # Minute 25 is still held: corrected as usual.
    engine.push(reading(25.5, "state", "down"))
    engine.push(reading(50, "state", "running"))  # moves the watermark past the correction
    corrected = [
        p
        for p in select(engine.take_points(), "oee", machine="m1", window="1m")
        if p.time.strftime("%H:%M") == "08:25"
    ]
    assert corrected[-1].fields["revision"] == 1
    assert corrected[-1].fields["down_s"] == 30.0


def test_the_correction_history_is_bounded_in_bytes_as_the_history_counts_them() -> None:
    spec = build_spec(parse_plant(plant_text()).model)
    # A share of 720 bytes a machine: 40 counter samples of 18 bytes (two 4-byte offsets, an
    # 8-byte value, a signal and a tag byte); the reading count bound (2 million) does not bind.
    share = 40 * (4 + 4 + 8 + 1 + 1)
    spec = dataclasses.replace(spec, correction_history_bytes=share * len(spec.machines))
    engine = Engine(spec)
    largest = 0
    for r in production(30):
        engine.push(r)
        largest = max(largest, engine._tracks["m1"].history.nbytes)
    # Cut at every window close while over its share, it never holds more than the share plus
    # about one window of readings (3 counter samples and the tick that closes it, 18 B each).
    assert largest <= share + (3 + 1) * 18, largest
    assert engine.stats["history_trimmed"] > 0
    # 30 minutes of 3 samples a minute is 90 readings, 1 620 bytes: without the bound all kept.
    assert len(engine._tracks["m1"].history) <= 40 + 3 + 1
    with pytest.raises(ReadingRejected) as caught:
        engine.push(reading(2.5, "state", "down"))
    assert caught.value.reason == "too_late"
    assert "correction_history_bytes" in str(caught.value)


def test_the_correction_history_holds_only_values_the_garbage_collector_need_not_track() -> None:
    # Millions of readings would be walked by every full collection if each were an object the
    # collector tracks. The history keeps them in arrays (one object each, however long) and the
    # few values it keeps aside (a text) as they are, untracked: the collector walks a few
    # objects, not one per reading.
    engine = Engine(build_spec(parse_plant(plant_text()).model))
    for r in production(3):
        engine.push(r)
    gc.collect()
    history = engine._tracks["m1"].history
    assert len(history) >= 10
    assert history._aside  # the state "running"

    def walked(obj: object) -> list[object]:
        return [o for o in gc.get_referents(obj) if gc.is_tracked(o) and not isinstance(o, type)]

    # Five columns, the signal names and codes, the values kept aside and their positions.
    assert len(walked(history)) <= 9
    assert not [item for part in walked(history) for item in walked(part)]


TWO_ON_A_LINE = """
sites:
  - id: s
    timezone: UTC
    country: VN
    lines:
      - id: a
        machines:
          - {id: m1, ideal_cycle_s: 1.0, signals: {state: state, total_count: total_count}}
          - {id: m2, ideal_cycle_s: 1.0, signals: {state: state, total_count: total_count}}
production:
  window_s: 60
  correction_history_max: 40
"""


def test_the_roll_ups_are_forgotten_with_their_members_correction_history() -> None:
    # Two machines on a line, each keeping a share of 20 readings: with 3 samples a minute (a
    # counter sample every 20 s), about 7 minutes of history, within the hour's horizon that alone
    # would keep all 30 of the half hour's line roll-ups.
    engine = Engine(build_spec(parse_plant(TWO_ON_A_LINE).model))
    for machine in ("m1", "m2"):
        engine.push(reading(0, "state", "running", machine=machine))
    for step in range(1, 91):
        for machine in ("m1", "m2"):
            engine.push(reading(step / 3, "total_count", 20 * step, machine=machine))
    engine.take_points()
    kept = [key for key in engine._rollup._rollups if key[1] == "window"]
    starts = [engine._kept_from(m) for m in ("m1", "m2")]
    assert None not in starts
    oldest = min(start for start in starts if start is not None)
    assert all(engine._rollup._rollups[key].end >= oldest for key in kept)
    # The share of 20 readings plus about a window (3 samples and a tick) is at most 8 minutes.
    assert 0 < len(kept) <= 8, kept
    # Minute 27 is still kept by both: a late `down` of m2 corrects its line roll-up.
    engine.push(reading(27.5, "state", "down", machine="m2"))
    for machine in ("m1", "m2"):
        engine.push(reading(40, "state", "running", machine=machine))
    corrected = [
        p
        for p in engine.take_points()
        if p.measurement == "oee"
        and "machine" not in p.tags
        and p.tags.get("line") == "a"
        and p.time.strftime("%H:%M") == "08:27"
    ]
    assert corrected, "the line's 08:27 roll-up is emitted again"
    assert corrected[-1].fields["revision"] == 1
