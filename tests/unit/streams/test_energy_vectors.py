"""Energy test vectors of docs/references.md (TV-EN-1, -2, -4, -5), directly and through the engine."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st
from support import plant_text, reading, run_engine, select

from streams.counters import CounterEvent, increase
from streams.energy import specific_energy, trapezoid_kwh

US = 1_000_000


def test_tv_en_1_counter_resets_like_flux_increase() -> None:
    # [FLUX-INC] 1, 2, 8, 10, 0, 4 -> cumulative increase 1, 7, 9, 9, 13.
    samples = [1, 2, 8, 10, 0, 4]
    running, out = 0.0, []
    for previous, current in itertools.pairwise(samples):
        running += increase(previous, current).delta
        out.append(running)
    assert out == [1, 7, 9, 9, 13]
    assert increase(10, 0).event is CounterEvent.RESET


def test_tv_en_1_through_an_energy_register() -> None:
    # The same samples as a kWh register read each minute: 13 kWh in total.
    readings = [reading(i, "energy_kwh", v) for i, v in enumerate([1, 2, 8, 10, 0, 4])]
    points = select(run_engine(plant_text(calendar=None), readings), "energy", window="1m")
    assert sum(p.fields["kwh"] for p in points) == pytest.approx(13)


@pytest.mark.parametrize(
    ("values", "expected"), [([-2, 10, 7, 17, 15, 4], 50.0), ([19, 4, -3, 19, 13, 1], 43.0)]
)
def test_tv_en_2_trapezoid(values: list[float], expected: float) -> None:
    # [FLUX-INT] sampledata.int() at 10 s steps; the integral in units of 10 s.
    step = 10 * US
    kwh = sum(
        trapezoid_kwh(i * step, a, (i + 1) * step, b, i * step, (i + 1) * step)
        for i, (a, b) in enumerate(itertools.pairwise(values))
    )
    # kWh -> kW x (10 s): x 3600 s/h / 10 s.
    assert kwh * 3600 / 10 == pytest.approx(expected)


def test_tv_en_2_through_the_engine_split_at_window_edges() -> None:
    # Power samples every 10 s starting 08:00:40 cross the 08:01 window edge; the total is unchanged.
    values = [-2, 10, 7, 17, 15, 4]
    readings = [reading((40 + 10 * i) / 60, "power_kw", v) for i, v in enumerate(values)]
    points = select(run_engine(plant_text(calendar=None), readings), "energy", window="1m")
    assert len(points) == 2
    assert sum(p.fields["kwh"] for p in points) * 3600 / 10 == pytest.approx(50.0)


def test_tv_en_4_32_bit_wh_rollover() -> None:
    previous, current, modulus = 4_294_967_000, 1_000, 2**32
    wrapped = increase(previous, current, modulus)
    assert wrapped == (1_296, CounterEvent.ROLLOVER)
    # With a plausibility bound below the wrapped increase it is a reset instead.
    assert increase(previous, current, modulus, max_delta=1_000) == (1_000, CounterEvent.RESET)
    # A drop far from the top of the register is a reset.
    assert increase(1_000_000, 10, modulus).event is CounterEvent.RESET


def test_tv_en_5_specific_energy_per_good_piece() -> None:
    # 1 234.5 kWh over TV-OEE-1's shift, 18 848 good pieces: 65.498 Wh per piece.
    assert specific_energy(1_234.5, 18_848) * 1_000 == pytest.approx(65.498, abs=0.001)
    assert specific_energy(10.0, 0) is None


def test_hold_integration_uses_the_left_sample() -> None:
    # 10 kW held for 30 s then 0: 10 x 30 / 3600 kWh.
    readings = [reading(0, "power_kw", 10), reading(0.5, "power_kw", 0), reading(1.5, "power_kw", 0)]
    points = select(
        run_engine(plant_text(calendar=None, integration="hold"), readings), "energy", window="1m"
    )
    assert sum(p.fields["kwh"] for p in points) == pytest.approx(10 * 30 / 3600)


def test_power_is_not_integrated_across_a_gap() -> None:
    # Default max_gap_s is 300: the 10-minute silence between 08:01 and 08:11 is not integrated.
    readings = [
        reading(0, "power_kw", 6),
        reading(1, "power_kw", 6),
        reading(11, "power_kw", 6),
        reading(12, "power_kw", 6),
    ]
    points = select(run_engine(plant_text(calendar=None), readings), "energy", window="1m")
    assert sum(p.fields["kwh"] for p in points) == pytest.approx(2 * 6 / 60)


@given(
    steps=st.lists(st.integers(min_value=1, max_value=200), min_size=2, max_size=30),
    powers=st.lists(st.floats(min_value=0, max_value=500, allow_nan=False), min_size=31, max_size=31),
    offset=st.integers(min_value=0, max_value=59),
)
def test_energy_is_additive_across_any_window_split(
    steps: list[int], powers: list[float], offset: int
) -> None:
    # Whatever the sample times, the windows' kWh add up to the unsplit trapezoid sum.
    times = [offset]
    for step in steps:
        times.append(times[-1] + step)
    readings = [reading(t / 60, "power_kw", p) for t, p in zip(times, powers, strict=False)]
    points = select(run_engine(plant_text(calendar=None), readings), "energy", window="1m")
    unsplit = sum(
        (t1 - t0) * (p0 + p1) / 2 / 3600
        for t0, t1, p0, p1 in zip(times, times[1:], powers, powers[1:], strict=False)
    )
    assert sum(p.fields["kwh"] for p in points) == pytest.approx(unsplit, rel=1e-9, abs=1e-9)
