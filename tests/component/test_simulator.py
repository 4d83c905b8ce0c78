"""The simulator: the pure model (determinism, counters, exact energy, calendar, rollover) and the
OPC UA server read by a plain asyncua client, plus its MQTT meters on a real Mosquitto."""

from __future__ import annotations

import asyncio
import itertools
import json
import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from asyncua import Client, ua
from services import Broker, free_port

from plantstream.plant import PlantModel, load_plant, parse_plant
from runtimes.simulator import (
    DEMO_PLANT,
    NAMESPACE_URI,
    PlantSimulation,
    SimulatorOptions,
    SimulatorServer,
    TagUpdate,
    generic_plant,
    run,
)
from streams.calendar import Schedule

ROOT = Path(__file__).resolve().parents[2]
# Monday 2 March 2026, 08:00 in Ho Chi Minh City (UTC+7): shift A is running.
MONDAY_0800_HCM = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
PRESS_CODES = {0: "off", 1: "idle", 2: "running", 3: "down", 4: "setup", 5: "planned_stop"}


def demo() -> PlantModel:
    return load_plant(ROOT / "examples" / "demo-line.yaml").model


def run_model(
    sim: PlantSimulation, start: datetime, hours: float, step_s: float = 7.0, seed: int = 0
) -> list[TagUpdate]:
    """Step ``sim`` from ``start`` for ``hours`` with irregular steps around ``step_s``."""
    rng = random.Random(seed)
    end = start + timedelta(hours=hours)
    out = sim.step(start)
    t = start
    while t < end:
        t = min(end, t + timedelta(seconds=rng.uniform(0.1, 2 * step_s)))
        out += sim.step(t)
    return out


def series(updates: list[TagUpdate], machine: str, signal: str) -> list[tuple[datetime, Any]]:
    return [(u.source_ts, u.value) for u in updates if u.machine == machine and u.signal == signal]


def value_at(points: list[tuple[datetime, Any]], instant: datetime) -> Any:
    """The value in force at ``instant``: the last update at or before it."""
    current = None
    for ts, value in points:
        if ts > instant:
            break
        current = value
    return current


def with_integration(plant: PlantModel, integration: str) -> PlantModel:
    data = plant.model_dump(mode="json")
    for site in data["sites"]:
        for line in site["lines"]:
            for machine in line["machines"]:
                for signal in machine["signals"].values():
                    if signal["role"] == "power_kw":
                        signal["integration"] = integration
    return PlantModel.model_validate(data)


# -- the pure model -----------------------------------------------------------------------------------


def test_same_seed_gives_identical_updates_and_truth() -> None:
    a = PlantSimulation(demo(), seed=5, start=MONDAY_0800_HCM)
    b = PlantSimulation(demo(), seed=5, start=MONDAY_0800_HCM)
    c = PlantSimulation(demo(), seed=6, start=MONDAY_0800_HCM)
    ua_, ub, uc = (run_model(s, MONDAY_0800_HCM, 2) for s in (a, b, c))
    assert ua_ == ub
    assert a.truth() == b.truth()
    assert ua_ != uc


def test_updates_do_not_depend_on_how_often_the_model_is_stepped() -> None:
    once = PlantSimulation(demo(), seed=2, start=MONDAY_0800_HCM)
    one_step = once.step(MONDAY_0800_HCM + timedelta(hours=3))
    often = PlantSimulation(demo(), seed=2, start=MONDAY_0800_HCM)
    many_steps = run_model(often, MONDAY_0800_HCM, 3, step_s=0.5, seed=9)
    assert one_step == many_steps
    assert once.truth() == often.truth()
    # Every update is stamped when it happened, in order, not at the step's instant.
    stamps = [u.source_ts for u in one_step]
    assert stamps == sorted(stamps)
    assert len(set(stamps)) > 1000


def test_first_step_reports_every_tag_at_the_start_instant() -> None:
    sim = PlantSimulation(demo(), seed=1, start=MONDAY_0800_HCM)
    first = sim.step(MONDAY_0800_HCM)
    assert {(u.machine, u.signal) for u in first} == {(t.machine, t.signal) for t in sim.tags()}
    assert {u.source_ts for u in first} == {MONDAY_0800_HCM}
    assert sim.step(MONDAY_0800_HCM) == []
    assert sim.step(MONDAY_0800_HCM - timedelta(seconds=1)) == []  # time never goes back


def test_counters_are_cumulative_and_consistent_with_the_truth() -> None:
    start = datetime(2026, 3, 2, 8, tzinfo=UTC)
    sim = PlantSimulation(generic_plant(3), seed=11, start=start)
    updates = run_model(sim, start, 3)
    truth = sim.truth()["machines"]
    for machine in ("m1", "m2", "m3"):
        counters = {s: series(updates, machine, s) for s in ("total_count", "good_count", "reject_count")}
        for points in counters.values():
            values = [v for _, v in points]
            assert all(b - a == 1 for a, b in itertools.pairwise(values)), "one piece at a time"
        delta = {s: points[-1][1] - points[0][1] for s, points in counters.items()}
        expected = truth[machine]
        assert delta["good_count"] + delta["reject_count"] == delta["total_count"] == expected["total"]
        assert (delta["good_count"], delta["reject_count"]) == (expected["good"], expected["reject"])
        assert 0 < expected["reject"] < 0.1 * expected["total"]
        # good + reject == total at every instant, not just at the end.
        for ts, total in counters["total_count"][::97]:
            good = value_at(counters["good_count"], ts) - counters["good_count"][0][1]
            reject = value_at(counters["reject_count"], ts) - counters["reject_count"][0][1]
            assert good + reject == total - counters["total_count"][0][1]
        # Never faster than the ideal cycle time of 1 s.
        running_s = expected["state_s"]["running"]
        assert expected["total"] <= running_s + 1
        assert expected["total"] >= running_s / 1.3
        assert sum(expected["state_s"].values()) == pytest.approx(3 * 3600)


@pytest.mark.parametrize("integration", ["trapezoid", "hold"])
def test_energy_register_is_exactly_the_integral_of_the_reported_power(integration: str) -> None:
    start = datetime(2026, 3, 2, 8, tzinfo=UTC)
    sim = PlantSimulation(with_integration(generic_plant(2), integration), seed=4, start=start)
    updates = run_model(sim, start, 1.5)
    truth = sim.truth()["machines"]
    for machine in ("m1", "m2"):
        power = [(ts, Fraction(round(kw * 1000))) for ts, kw in series(updates, machine, "power_kw")]
        assert all(
            float(w) / 1000 == kw
            for (_, w), (_, kw) in zip(power, series(updates, machine, "power_kw"), strict=True)
        )
        register = series(updates, machine, "energy_kwh")
        assert len(register) > 5000
        start_kwh = Fraction(register[0][1])
        integral_w_us = Fraction(0)
        k = 0
        for ts, value in register[1:]:
            while k + 1 < len(power) and power[k + 1][0] <= ts:
                (t0, w0), (t1, w1) = power[k], power[k + 1]
                dt_us = (t1 - t0) // timedelta(microseconds=1)
                height = w0 if integration == "hold" else (w0 + w1) / 2
                integral_w_us += height * dt_us
                k += 1
            assert power[k][0] == ts, "the meter samples power and energy together"
            assert value == float(start_kwh + integral_w_us / 3_600_000_000_000)
        assert truth[machine]["energy_kwh"] == float(integral_w_us / 3_600_000_000_000)


def test_breaks_are_planned_stop_and_off_shift_is_off_in_the_site_time_zone() -> None:
    sim = PlantSimulation(demo(), seed=3, start=MONDAY_0800_HCM, meter_period_s=15)
    updates = run_model(sim, MONDAY_0800_HCM, 15)  # 08:00 to 23:00 local
    tea = (datetime(2026, 3, 2, 2, 0, tzinfo=UTC), datetime(2026, 3, 2, 2, 15, tzinfo=UTC))
    meal = (datetime(2026, 3, 2, 4, 30, tzinfo=UTC), datetime(2026, 3, 2, 5, 0, tzinfo=UTC))
    shift_end = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)  # 22:00 local
    for machine in ("press1", "cnc1", "packer1", "oven1"):
        states = series(updates, machine, "state")
        if machine == "press1":
            assert {v for _, v in states} <= set(PRESS_CODES)
            states = [(ts, PRESS_CODES[v]) for ts, v in states]
        for a, b in (tea, meal):
            assert (a, "planned_stop") in states, f"{machine}: no planned_stop at {a}"
            assert value_at(states, a - timedelta(microseconds=1)) != "planned_stop"
            assert value_at(states, a + (b - a) / 2) == "planned_stop"
            assert value_at(states, b) not in ("planned_stop", "off")
        assert (shift_end, "off") in states
        assert value_at(states, shift_end + timedelta(minutes=30)) == "off"
        # Two shifts, 4 breaks of 15 + 30 min: 90 min planned stop between 08:00 and 22:00.
        assert sim.truth()["machines"][machine]["state_s"]["planned_stop"] == 90 * 60


NIGHT_SHIFT = """
sites:
  - id: berlin
    timezone: Europe/Berlin
    country: DE
    calendar: three
    lines:
      - id: l1
        machines:
          - {id: m1, signals: {state: state}}
calendars:
  three:
    shifts:
      - {name: early, start: "06:00", end: "14:00", days: [mon, tue, wed, thu, fri],
         breaks: [{start: "09:00", end: "09:30"}]}
      - {name: night, start: "22:00", end: "06:00", days: [thu, fri, sat, sun],
         breaks: [{start: "01:30", end: "02:30"}, {start: "04:00", end: "04:15"}]}
    holidays: [2026-03-30]
    overtime: [{date: 2026-03-28, start: "10:00", end: "12:00"}]
"""


def test_calendar_agrees_with_the_pipelines_schedule_across_midnight_dst_and_holidays() -> None:
    model = parse_plant(NIGHT_SHIFT).model
    start = datetime(2026, 3, 26, 0, 0, tzinfo=UTC)  # Thursday; DST begins Sunday 29 March, 02:00
    sim = PlantSimulation(model, seed=1, start=start, meter_period_s=60)
    states = series(sim.step(start + timedelta(days=6)), "m1", "state")
    schedule = Schedule(model.calendars["three"], "Europe/Berlin")
    seen = set()
    instant = start
    while instant < start + timedelta(days=6):
        us = (instant - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
        profile = schedule.profile(us)
        state = value_at(states, instant)
        if profile.shift is None:
            expected = "off"
        elif profile.in_break:
            expected = "planned_stop"
        else:
            expected = "productive"
        seen.add(expected)
        if expected == "productive":
            assert state not in ("off", "planned_stop"), instant
        else:
            assert state == expected, instant
        instant += timedelta(minutes=5)
    assert seen == {"off", "planned_stop", "productive"}


def test_a_32_bit_wh_register_and_a_16_bit_counter_roll_over() -> None:
    sim = PlantSimulation(demo(), seed=8, start=MONDAY_0800_HCM)
    updates = run_model(sim, MONDAY_0800_HCM, 2)
    wh = [v for _, v in series(updates, "press1", "energy_wh")]
    assert wh[0] > 2**32 - 100_000, "starts close to the modulus"
    assert all(0 <= v < 2**32 and isinstance(v, int) for v in wh)
    wraps = sum(1 for a, b in itertools.pairwise(wh) if b < a)
    assert wraps == 1
    increase = sum((b - a) % 2**32 for a, b in itertools.pairwise(wh))
    assert abs(increase - sim.truth()["machines"]["press1"]["energy_kwh"] * 1000) < 1

    data = generic_plant(1).model_dump(mode="json")
    data["sites"][0]["lines"][0]["machines"][0]["signals"]["total_count"]["modulus"] = 65_536
    sim = PlantSimulation(PlantModel.model_validate(data), seed=8, start=MONDAY_0800_HCM)
    updates = run_model(sim, MONDAY_0800_HCM, 2)
    total = [v for _, v in series(updates, "m1", "total_count")]
    assert any(b < a for a, b in itertools.pairwise(total))
    assert all(0 <= v < 65_536 for v in total)
    counted = sum((b - a) % 65_536 for a, b in itertools.pairwise(total))
    assert counted == sim.truth()["machines"]["m1"]["total"]


def test_products_change_with_a_setup_and_the_oven_burns_gas() -> None:
    sim = PlantSimulation(demo(), seed=2, start=MONDAY_0800_HCM, meter_period_s=15)
    updates = run_model(sim, MONDAY_0800_HCM, 14, step_s=60)
    products = series(updates, "cnc1", "product")
    states = series(updates, "cnc1", "state")
    assert len(products) >= 3
    for ts, product in products[1:]:
        assert product in ("BRK-100", "BRK-200")
        assert (ts, "setup") in states, f"no setup when the product changed at {ts}"
    truth = sim.truth()["machines"]
    cnc = truth["cnc1"]
    assert set(cnc["by_product"]) == {"BRK-100", "BRK-200"}
    assert sum(p["total"] for p in cnc["by_product"].values()) == cnc["total"]
    assert cnc["state_s"]["setup"] > 0
    gas = [v for _, v in series(updates, "oven1", "gas_kg")]
    assert gas == sorted(gas)
    assert gas[-1] - gas[0] == pytest.approx(truth["oven1"]["fuel"]["gas_kg"], abs=1e-6)
    assert truth["oven1"]["fuel"]["gas_kg"] > 10  # a gas oven burns kilograms per hour


def test_generic_plant_and_options_validation() -> None:
    plant = generic_plant(3)
    assert [m.id for _, _, m in plant.machines()] == ["m1", "m2", "m3"]
    assert set(plant.machines()[0][2].signals) == {
        "state",
        "total_count",
        "good_count",
        "reject_count",
        "power_kw",
        "energy_kwh",
    }
    with pytest.raises(ValueError, match="at least 1"):
        generic_plant(0)
    with pytest.raises(ValueError, match="not both"):
        SimulatorOptions(plant=DEMO_PLANT, machines=2)
    with pytest.raises(ValueError, match="speed"):
        SimulatorOptions(speed=0)
    with pytest.raises(ValueError, match="mqtt"):
        SimulatorOptions(mqtt="http://broker")
    with pytest.raises(ValueError, match="time zone"):
        SimulatorOptions(start=datetime(2026, 3, 2, 8))  # noqa: DTZ001 - the point of the test
    with pytest.raises(ValueError, match=r"history must be 0\.\.1000000 values per tag, got -1"):
        SimulatorOptions(history=-1)
    with pytest.raises(ValueError, match="history must be 0"):
        SimulatorOptions(history=10**9)


# -- the OPC UA server --------------------------------------------------------------------------------


async def test_machine_tags_keep_their_newest_values_for_history_read() -> None:
    # Power is written every simulated second: at speed 60, 60 values a wall second, far more
    # than the 5 kept.
    options = SimulatorOptions(port=0, speed=60, seed=7, start=MONDAY_0800_HCM, history=5)
    async with SimulatorServer(options) as sim, Client(sim.endpoint, timeout=5) as client:
        power = await resolve(client, f"nsu={NAMESPACE_URI};s=cnc1.spindle_power_kw")
        assert (await power.read_attribute(ua.AttributeIds.Historizing)).Value.Value is True
        access = (await power.read_attribute(ua.AttributeIds.AccessLevel)).Value.Value
        assert access & ua.AccessLevel.HistoryRead.mask
        await asyncio.sleep(1.0)
        kept = await power.read_raw_history(MONDAY_0800_HCM, sim.simulated_now() + timedelta(hours=1))
        assert len(kept) == 5  # the count bound: the oldest went first
        stamps = [dv.SourceTimestamp for dv in kept]
        assert stamps == sorted(stamps)
        assert stamps[-1] > MONDAY_0800_HCM + timedelta(seconds=30)  # the newest, not the first
        current = await power.read_data_value()
        assert (kept[-1].Value.Value, kept[-1].SourceTimestamp) == (
            current.Value.Value,
            current.SourceTimestamp,
        )


async def test_without_history_the_tags_keep_none() -> None:
    options = SimulatorOptions(port=0, speed=60, seed=7, start=MONDAY_0800_HCM, history=0)
    async with SimulatorServer(options) as sim, Client(sim.endpoint, timeout=5) as client:
        power = await resolve(client, f"nsu={NAMESPACE_URI};s=cnc1.spindle_power_kw")
        assert (await power.read_attribute(ua.AttributeIds.Historizing)).Value.Value is False
        access = (await power.read_attribute(ua.AttributeIds.AccessLevel)).Value.Value
        assert not access & ua.AccessLevel.HistoryRead.mask


def expanded(node: str) -> tuple[str, str]:
    """Split ``nsu=<uri>;s=<id>`` into the namespace URI and the string id."""
    uri, _, ident = node.removeprefix("nsu=").partition(";s=")
    return uri, ident


async def resolve(client: Client, node: str) -> Any:
    uri, ident = expanded(node)
    return client.get_node(ua.NodeId(ident, await client.get_namespace_index(uri)))


async def test_server_serves_the_demo_line_with_simulated_source_timestamps() -> None:
    options = SimulatorOptions(port=0, speed=60, seed=7, start=MONDAY_0800_HCM)
    async with SimulatorServer(options) as sim, Client(sim.endpoint, timeout=5) as client:
        assert NAMESPACE_URI in await client.get_namespace_array()
        ns = await client.get_namespace_index(NAMESPACE_URI)
        # Every signal of the plant file, as nsu=...;s=<machine>.<signal>, with its type.
        types = {}
        for _, _, machine in demo().machines():
            folder = client.get_node(ua.NodeId(machine.id, ns))
            assert (await folder.read_browse_name()).Name == machine.id
            children = {(await c.read_browse_name()).Name for c in await folder.get_children()}
            assert children == set(machine.signals)
            for signal in machine.signals:
                node = await resolve(client, f"nsu={NAMESPACE_URI};s={machine.id}.{signal}")
                types[f"{machine.id}.{signal}"] = (await node.read_data_value()).Value.VariantType
        vt = ua.VariantType
        assert types["press1.state"] == vt.Int32
        assert types["cnc1.state"] == vt.String
        assert types["cnc1.product"] == vt.String
        assert types["press1.strokes_total"] == types["cnc1.good_count"] == vt.UInt32
        assert types["press1.energy_wh"] == vt.UInt32
        assert types["packer1.energy_kwh"] == types["oven1.gas_kg"] == vt.Double
        assert types["cnc1.spindle_power_kw"] == vt.Double

        energy = await resolve(client, f"nsu={NAMESPACE_URI};s=press1.energy_wh")
        power = await resolve(client, f"nsu={NAMESPACE_URI};s=cnc1.spindle_power_kw")
        before = await energy.read_data_value()
        await asyncio.sleep(1.5)
        after = await energy.read_data_value()
        wall = datetime.now(tz=UTC)
        sim_now = sim.sim_time
        assert after.Value.Value != before.Value.Value
        assert (after.Value.Value - before.Value.Value) % 2**32 > 100  # > 100 Wh in 90 s of pressing
        for dv in (after, await power.read_data_value()):
            assert MONDAY_0800_HCM < dv.SourceTimestamp <= sim_now
            assert dv.SourceTimestamp.microsecond == 0, "meters sample on whole simulated seconds"
            assert abs(dv.ServerTimestamp - wall) < timedelta(seconds=5)
        assert after.SourceTimestamp - before.SourceTimestamp >= timedelta(seconds=60)

        # The same seed and start give the same value at the same simulated instant.
        reference = PlantSimulation(demo(), seed=7, start=MONDAY_0800_HCM)
        expected = series(reference.step(after.SourceTimestamp), "press1", "energy_wh")[-1]
        assert expected == (after.SourceTimestamp, after.Value.Value)

        # The ground truth node holds the truth the server last published.
        truth_node = await resolve(client, f"nsu={NAMESPACE_URI};s=GroundTruth.Json")
        for _ in range(5):
            published = json.loads(await truth_node.read_value())
            if published == sim.published_truth:
                break
        assert published == sim.published_truth
        now = sim.truth()
        assert set(published["machines"]) == set(now["machines"]) == {"press1", "cnc1", "packer1", "oven1"}
        for machine, totals in published["machines"].items():
            assert totals["total"] <= now["machines"][machine]["total"]
            assert totals["energy_kwh"] <= now["machines"][machine]["energy_kwh"]
        assert datetime.fromisoformat(published["at"]) <= datetime.fromisoformat(now["at"])


async def test_a_timed_run_returns_the_exact_truth_and_publishes_meters_to_mqtt(broker: Broker) -> None:
    received: dict[str, list[dict[str, Any]]] = defaultdict(list)
    async with aiomqtt.Client("127.0.0.1", broker.port) as subscriber:
        await subscriber.subscribe("plant/+/+/meter", qos=1)
        options = SimulatorOptions(
            port=0, speed=120, seed=3, start=MONDAY_0800_HCM, duration=1.0, mqtt=broker.url
        )
        truth = await asyncio.wait_for(run(options), 30)

        async def collect() -> None:
            async for message in subscriber.messages:
                received[str(message.topic)].append(json.loads(bytes(message.payload)))
                if all(len(received[f"plant/line1/{m}/meter"]) >= 20 for m in ("press1", "oven1")):
                    return

        await asyncio.wait_for(collect(), 10)

    # The run ends exactly at start + speed × duration, with the truth of a model stepped there.
    reference = PlantSimulation(demo(), seed=3, start=MONDAY_0800_HCM)
    reference.step(MONDAY_0800_HCM + timedelta(seconds=120))
    assert truth == reference.truth()
    assert truth["at"] == "2026-03-02T01:02:00Z"

    assert set(received) == {f"plant/line1/{m}/meter" for m in ("press1", "cnc1", "packer1", "oven1")}
    press = received["plant/line1/press1/meter"]
    assert set(press[0]) == {"ts", "power_w", "energy_wh"}
    stamps = [datetime.fromisoformat(p["ts"]) for p in press]
    assert stamps[0] == MONDAY_0800_HCM
    assert all(b - a == timedelta(seconds=1) for a, b in itertools.pairwise(stamps))
    energy = [p["energy_wh"] for p in press]
    assert all(b > a for a, b in itertools.pairwise(energy))  # the JSON meter never rolls over
    assert energy[0] > 2**32 - 100_000
    assert all(p["power_w"] > 0 for p in press)


async def test_generic_machines_and_load_tags_run_until_stopped_with_the_broker_away() -> None:
    port = free_port()
    options = SimulatorOptions(
        machines=2, port=port, speed=60, tags=3, rate=20, mqtt=f"mqtt://127.0.0.1:{free_port()}"
    )
    ready, stop = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(run(options, ready=ready, stop=stop))
    await asyncio.wait_for(ready.wait(), 15)
    async with Client(f"opc.tcp://127.0.0.1:{port}", timeout=5) as client:
        ns = await client.get_namespace_index(NAMESPACE_URI)
        state = await client.get_node(ua.NodeId("m1.state", ns)).read_value()
        assert state in ("running", "idle", "down")
        tag = client.get_node(ua.NodeId("load.tag3", ns))
        first = await tag.read_data_value()
        total = client.get_node(ua.NodeId("m2.total_count", ns))
        count = await total.read_value()
        await asyncio.sleep(0.5)
        second = await tag.read_data_value()
        assert first.Value.Value != second.Value.Value
        assert second.Value.VariantType == ua.VariantType.Double
        assert await total.read_value() > count, "the OPC UA side goes on without a broker"
    stop.set()
    truth = await asyncio.wait_for(task, 10)
    assert set(truth["machines"]) == {"m1", "m2"}
    assert truth["machines"]["m2"]["total"] > 0


async def test_simulated_now_is_the_instant_the_served_source_timestamps_are_on() -> None:
    start = datetime(2026, 11, 30, 8, tzinfo=UTC)
    sim = SimulatorServer(SimulatorOptions(machines=1, port=0, start=start, tags=2, rate=20))
    with pytest.raises(RuntimeError, match="not been started"):
        sim.simulated_now()
    async with sim, Client(sim.endpoint, timeout=5) as client:
        ns = await client.get_namespace_index(NAMESPACE_URI)
        await asyncio.sleep(0.2)
        served = await client.get_node(ua.NodeId("load.tag1", ns)).read_data_value()
        now = sim.simulated_now()
        # The served value was stamped at an earlier simulated instant; the loop steps towards now.
        assert start <= served.SourceTimestamp.replace(tzinfo=UTC) <= now
        assert sim.sim_time <= now
