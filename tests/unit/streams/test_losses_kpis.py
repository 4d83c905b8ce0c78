"""The six big losses and the ISO 22400-2 KPIs beyond OEE: arithmetic shown, and the identity."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.kpis import iso_kpis
from streams.losses import six_losses
from streams.oee import OeeElements

MIN = 60_000_000
S = 1_000_000


def tv_oee_5() -> OeeElements:
    """TV-OEE-5: PBT 420 min, APT 383 min (10 micro), down 37 min, 19 271 pieces at 1 s, 423 rejects."""
    return OeeElements(
        scheduled=480 * MIN,
        planned_stop=60 * MIN,
        run=383 * MIN,
        micro=10 * MIN,
        down=37 * MIN,
        total=19_271,
        good=18_848,
        reject=423,
        ideal=19_271 * S,
    )


def test_six_losses_of_tv_oee_5() -> None:
    losses = six_losses(tv_oee_5())
    ideal_min = 19_271 / 60  # 321.183 min
    assert losses.breakdown == 37 * MIN
    assert losses.setup == 0
    assert losses.small_stop == 10 * MIN
    assert losses.reduced_speed / MIN == pytest.approx(373 - ideal_min)  # 51.817 min
    assert losses.production_reject / MIN == pytest.approx(ideal_min * 423 / 19_271)  # 7.05 min
    assert losses.fully_productive / MIN == pytest.approx(18_848 / 60)  # 314.133 min
    # OEE = FPT / PBT = 314.133 / 420 = 0.7479 (TV-OEE-1)
    assert losses.fully_productive / (420 * MIN) == pytest.approx(0.7479, abs=5e-5)
    # 37 + 10 + 51.817 + 7.050 = 105.867 = 420 − 314.133
    assert losses.total == pytest.approx(420 * MIN - losses.fully_productive)


def test_start_up_rejects_are_split_from_production_rejects() -> None:
    # 100 pieces at 2 s (200 s ideal), 10 rejects of which 4 at start-up: 8 s and 12 s.
    e = OeeElements(scheduled=300 * S, run=250 * S, total=100, good=90, reject=10, ideal=200 * S)
    e.startup_reject = 4
    losses = six_losses(e)
    assert losses.startup_reject == pytest.approx(8 * S)
    assert losses.production_reject == pytest.approx(12 * S)
    # More start-up rejects than rejects (a miscounted phase) are capped at the rejects.
    e.startup_reject = 50
    assert six_losses(e).startup_reject == pytest.approx(20 * S)
    assert six_losses(e).production_reject == 0


def test_a_machine_without_counts_has_its_net_run_as_fully_productive() -> None:
    # An oven: 50 min run (2 micro), 10 min down; FPT = 48 min, no speed or quality loss.
    e = OeeElements(scheduled=60 * MIN, run=50 * MIN, micro=2 * MIN, down=10 * MIN)
    losses = six_losses(e, has_counts=False)
    assert (losses.fully_productive, losses.reduced_speed, losses.production_reject) == (48 * MIN, 0, 0)
    assert losses.total == 60 * MIN - 48 * MIN


def test_faster_than_ideal_gives_a_negative_speed_loss() -> None:
    # 60 s run, 70 pieces at 1 s ideal: -10 s (ISO allows E > 100 %; the ideal cycle is too long).
    e = OeeElements(scheduled=60 * S, run=60 * S, total=70, good=70, ideal=70 * S)
    assert six_losses(e).reduced_speed == -10 * S


def test_unknown_time_is_unobserved_not_a_loss() -> None:
    e = OeeElements(scheduled=60 * S, run=30 * S, unknown=30 * S, total=30, good=30, ideal=30 * S)
    losses = six_losses(e)
    assert losses.unobserved == 30 * S
    assert losses.total == 0
    assert losses.fields()["unobserved_s"] == 30.0


@st.composite
def elements(draw: st.DrawFn) -> tuple[OeeElements, bool]:
    """Any consistent window: the six state times, micro within run, counts with rejects."""
    part = st.integers(0, 3_600 * S)
    run, down, idle, setup, off, unknown, planned = (draw(part) for _ in range(7))
    micro = draw(st.integers(0, run))
    total = draw(st.integers(0, 10_000))
    reject = draw(st.integers(0, total))
    startup = draw(st.integers(0, total))
    cycle = draw(st.floats(0.01, 10.0))
    has_counts = draw(st.booleans())
    e = OeeElements(
        scheduled=run + down + idle + setup + off + unknown + planned,
        planned_stop=planned,
        run=run,
        micro=micro,
        down=down,
        idle=idle,
        setup=setup,
        off=off,
        unknown=unknown,
        total=total if has_counts else 0,
        good=total - reject if has_counts else 0,
        reject=reject if has_counts else 0,
        ideal=total * cycle * S if has_counts else 0.0,
        startup_reject=startup,
    )
    return e, has_counts


@given(elements())
def test_the_six_losses_add_up_to_planned_busy_minus_fully_productive(case: tuple[OeeElements, bool]) -> None:
    e, has_counts = case
    losses = six_losses(e, has_counts=has_counts)
    expected = e.planned_busy - losses.fully_productive
    # Exact up to float rounding of the ideal time (a few ulps of hours in µs).
    assert math.isclose(losses.total + losses.unobserved, expected, rel_tol=1e-12, abs_tol=1e-3)
    assert losses.breakdown >= 0
    assert losses.setup >= 0
    assert losses.small_stop >= 0
    assert losses.startup_reject >= 0
    assert losses.production_reject >= 0


@given(elements(), elements())
def test_losses_of_summed_elements_are_the_sums_of_losses(
    a: tuple[OeeElements, bool], b: tuple[OeeElements, bool]
) -> None:
    # Roll-ups sum elements: the losses of the sum equal the sum of the losses (both with counts).
    ea, eb = a[0], b[0]
    if not (a[1] and b[1]):
        return
    total = ea.copy()
    total.add(eb)
    la, lb, lt = six_losses(ea), six_losses(eb), six_losses(total)
    assert math.isclose(lt.breakdown, la.breakdown + lb.breakdown)
    assert math.isclose(lt.small_stop, la.small_stop + lb.small_stop)
    expected = total.planned_busy - lt.fully_productive
    assert math.isclose(lt.total + lt.unobserved, expected, rel_tol=1e-12, abs_tol=1e-3)


def test_iso_kpis_with_arithmetic() -> None:
    # run 7 h, down 1 h, setup 30 min, 4 failures among 6 stops, 2 micro-stops, 1 000 pieces of
    # which 20 scrap, 10 reworked.
    e = OeeElements(run=7 * 60 * MIN, down=60 * MIN, setup=30 * MIN, total=1_000, good=980, reject=20)
    e.stops, e.micro_stops, e.failures = 6, 2, 4
    kpis = iso_kpis(e, rework=10)
    assert kpis["mtbf_s"] == 25_200 / 4  # 6 300 s
    assert kpis["mttr_s"] == 3_600 / 4  # 900 s
    assert kpis["setup_ratio"] == pytest.approx(1_800 / 27_000)  # 0.0667
    assert kpis["technical_efficiency"] == 25_200 / 28_800  # 0.875
    assert kpis["scrap_ratio"] == 0.02
    assert kpis["rework_ratio"] == 0.01
    assert (kpis["stops"], kpis["micro_stops"], kpis["failures"]) == (6, 2, 4)


def test_undefined_kpis_are_absent_never_nan() -> None:
    kpis = iso_kpis(OeeElements())
    assert kpis == {"stops": 0, "micro_stops": 0, "failures": 0}
    # No rework counter: no rework ratio; no counter at all: no scrap ratio.
    e = OeeElements(run=60 * S, total=10, good=9, reject=1)
    assert "rework_ratio" not in iso_kpis(e)
    assert "scrap_ratio" not in iso_kpis(e, has_counts=False)


def test_kpis_of_a_shift_come_from_summed_elements_not_averaged_ratios() -> None:
    # Window 1: run 50 min, down 10 min, 1 failure. Window 2: run 60 min, no failure.
    # Summed: MTBF = 110 min / 1 = 6 600 s (averaging the windows' MTBFs would give 3 000 s).
    w1 = OeeElements(run=50 * MIN, down=10 * MIN, failures=1)
    w2 = OeeElements(run=60 * MIN)
    shift = w1.copy()
    shift.add(w2)
    assert iso_kpis(shift)["mtbf_s"] == 6_600
    assert iso_kpis(shift)["technical_efficiency"] == pytest.approx(110 / 120)
