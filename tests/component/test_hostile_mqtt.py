"""Issue 13 rows 1, 2 and 4 through Mosquitto: hostile meter messages never stop the embedded pipeline.

A 1970 stamp, a stamp a year ahead, a -0.5 kWh register dip and a 1.23e35 kWh spike, among the
ordinary messages of two meters: each is dead-lettered with its reason, the pipeline runs on, and
every point (both machines, the line and the site) equals what the same engine makes of the
ordinary readings alone.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiomqtt
from services import Broker

from plantstream.plant import load_plant
from plantstream.records import Reading
from runtimes.embedded import CHECKPOINT, EmbeddedPipeline
from streams.config import build_spec
from streams.engine import Engine, ReadingRejected

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def stamp(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def messages() -> tuple[list[tuple[str, dict]], set[tuple[str, str, str]]]:
    """Every 10 s for 10 min: 36 kW and a register rising 100 Wh; the hostile messages of m1 among them.

    Returns the messages in publishing order, and (machine, ts, signal) of every reading that must
    be refused.
    """
    out: list[tuple[str, dict]] = []
    bad: set[tuple[str, str, str]] = set()
    for i in range(61):
        at = T0 + timedelta(seconds=10 * i)
        for machine in ("m1", "m2"):
            out.append((machine, {"ts": stamp(at), "power_w": 36_000, "energy_wh": 100 * i}))
        if i == 20:  # 1970 and a year ahead: both readings of each message are refused
            for when in (datetime(1970, 1, 1, tzinfo=UTC), at + timedelta(days=365)):
                out.append(("m1", {"ts": stamp(when), "power_w": 36_000, "energy_wh": 100 * i}))
                bad |= {("m1", stamp(when), "power_kw"), ("m1", stamp(when), "energy_kwh")}
        if i in (30, 40):  # 5 s later: the register dips 0.5 kWh, or spikes to 1.23e35 kWh
            at_5 = at + timedelta(seconds=5)
            wh = 100 * i - 500 if i == 30 else 1.23e38
            out.append(("m1", {"ts": stamp(at_5), "power_w": 36_000, "energy_wh": wh}))
            bad.add(("m1", stamp(at_5), "energy_kwh"))
    return out, bad


def identities(points: list) -> dict[tuple[str, str, str], dict]:
    return {(p.measurement, json.dumps(p.tags, sort_keys=True), stamp(p.time)): p.fields for p in points}


async def test_hostile_meter_messages_are_dead_lettered_and_change_no_point(
    broker: Broker, tmp_path: Path
) -> None:
    plant = load_plant(ROOT / "examples" / "mqtt-meters.yaml", environ={"MQTT_URL": broker.url})
    spec = build_spec(plant.model)
    seen: list[Reading] = []
    pipeline = EmbeddedPipeline(plant, spec, tmp_path / "state", on_reading=seen.append)
    stop = asyncio.Event()
    task = asyncio.create_task(pipeline.run(stop))
    sent, bad = messages()
    async with asyncio.timeout(60):
        while not all(c.health.connected for c in pipeline.collectors):
            await asyncio.sleep(0.05)
        async with aiomqtt.Client("127.0.0.1", port=broker.port) as client:
            for machine, body in sent:
                await client.publish(f"plant/l1/{machine}/meter", json.dumps(body), qos=1)
        while len(seen) < 2 * len(sent):
            await asyncio.sleep(0.05)
    stop.set()
    stats = await task
    assert stats.rejected == {"bad_time": 2, "future": 2, "implausible": 2}
    # What the file sink has, with what the final checkpoint still holds open.
    emitted = {}
    for file in sorted((tmp_path / "state" / "points").glob("*.jsonl")):
        for line in file.read_text().splitlines():
            p = json.loads(line)
            emitted[(p["measurement"], json.dumps(p["tags"], sort_keys=True), p["time"])] = p["fields"]
    rest = Engine(spec)
    rest.restore(json.loads((tmp_path / "state" / CHECKPOINT).read_text()))
    rest.flush()
    emitted |= identities(rest.take_points())
    # Raw readings and the pipeline's own health are not computed from the readings.
    computed = {key: fields for key, fields in emitted.items() if key[0] not in ("reading", "health")}
    # The same engine on the ordinary readings alone.
    clean = Engine(spec)
    for r in seen:
        if (r.machine, stamp(r.ts), r.signal) not in bad:
            try:
                clean.push(r)
            except ReadingRejected as exc:  # pragma: no cover - would fail the comparison anyway
                raise AssertionError(f"an ordinary reading was refused: {exc}") from None
    clean.flush()
    assert computed == identities(clean.take_points())
