"""A machine state's snapshot (MachineState.snapshot): its empty containers shared, never written."""

from __future__ import annotations

from support import T0, build_spec, parse_plant, plant_text

from streams.machine import MachineCalc

SECOND = 1_000_000


def _fed_calc() -> MachineCalc:
    """Machine m1 of the test plant after two power readings and one count: one window open."""
    calc = MachineCalc(build_spec(parse_plant(plant_text(calendar=None)).model).machines["m1"])
    start = int(T0.timestamp()) * SECOND
    for ts, signal, value in ((start, "power_kw", 10.0), (start + SECOND, "power_kw", 12.0)):
        calc.advance(ts)
        calc.feed(ts, signal, value, "good")
    calc.feed(start + SECOND, "total_count", 5, "good")
    return calc


def test_snapshots_share_their_empty_containers_and_a_state_restored_from_one_has_its_own() -> None:
    state = _fed_calc().state
    first, second = state.snapshot(), state.snapshot()
    (window,) = first.windows.values()
    (other,) = second.windows.values()
    # m1 burns no fuel: one empty dict for every snapshot, for its fuel and its window's.
    assert first.fuel_last is second.fuel_last
    assert window.fuel is other.fuel
    # A state restored from a snapshot (copy) writes into containers of its own.
    live = first.copy()
    live.fuel_last["gas"] = (1, 2.0)
    (open_window,) = live.windows.values()
    open_window.fuel["gas"] = 0.5
    assert first.fuel_last == second.fuel_last == state.snapshot().fuel_last == {}
    assert window.fuel == other.fuel == {}


def test_a_snapshot_copies_what_is_not_empty() -> None:
    state = _fed_calc().state
    (live_window,) = state.windows.values()
    # 10 and 12 kW over one second, trapezoid: 11 kW-seconds.
    assert live_window.kwh_power == 11 / 3600
    snap = state.snapshot()
    state.counter_last["total_count"] = 9
    live_window.kwh_power += 1.0
    (kept_window,) = snap.windows.values()
    assert snap.counter_last == {"total_count": 5}
    assert kept_window.kwh_power == 11 / 3600
