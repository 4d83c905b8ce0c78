"""Every panel and variable of the five Grafana dashboards, run on InfluxDB 1.12 holding real points.

The data: shift A of the demonstration line (docker/plant.yaml, the plant compose runs) as the
simulator makes it, through ``replay --to-sinks``; then a minute of the live pipeline (``simulate``
and ``run``, both real processes) for the pipeline's health points and raw readings. Each query is
sent the way Grafana's Flux data source sends it: ``v.timeRangeStart``, ``v.timeRangeStop``,
``v.windowPeriod`` and ``v.defaultBucket`` replaced by literals, and the dashboard variables by
their values (``${machine:regex}`` as an alternation of every machine, like "All"), the variables
themselves filled from their own queries first.

A panel passes when its query returns rows with the columns it is drawn from: those its last
``keep`` or record-building ``map`` names, or a ``_value`` otherwise. The line OEE panel must show
the shift OEE that ``replay`` computed for the same readings.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from services import Broker, InfluxDB, free_port

from plantstream.plant import load_plant
from runtimes.simulator.model import PlantSimulation

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = ROOT / "docker" / "grafana" / "provisioning" / "dashboards" / "json"
PLANT = ROOT / "docker" / "plant.yaml"
SHIFT_A = datetime(2026, 3, 2, 6, 0, tzinfo=ZoneInfo("Asia/Ho_Chi_Minh"))
"""Monday 2 March 2026, 06:00 in Ho Chi Minh City: the start of shift A (to 14:00)."""
SEED = 3
LIVE_TIMEOUT_S = 180


def plantstream_exe() -> str:
    exe = shutil.which("plantstream", path=str(Path(sys.executable).parent))
    assert exe, "the plantstream console script is not installed in this environment"
    return exe


def environment(
    influx: InfluxDB, opcua_port: int = 4840, mqtt_url: str = "mqtt://127.0.0.1:1883"
) -> dict[str, str]:
    """What docker/plant.yaml reads from the environment (Kafka is named but not used here)."""
    return {
        **os.environ,
        "INFLUX_URL": influx.url,
        "INFLUX_ORG": "plant",
        "INFLUX_BUCKET": InfluxDB.DATABASE,
        "INFLUX_TOKEN": influx.token,
        "OPCUA_ENDPOINT": f"opc.tcp://127.0.0.1:{opcua_port}/",
        "MQTT_URL": mqtt_url,
        "KAFKA_BOOTSTRAP": "127.0.0.1:9",
    }


def write_shift_a(path: Path) -> None:
    """The simulated line's readings from 06:00 to 14:05 (the watermark passes the shift's end).

    Every signal as the simulator serves it over OPC UA (its meters' power and energy included,
    which the live plant reads over MQTT: the same values).
    """
    model = load_plant(PLANT, environ=environment(InfluxDB(port=0, directory=path.parent))).model
    simulation = PlantSimulation(model, SEED, start=SHIFT_A)
    updates = simulation.step(SHIFT_A + timedelta(hours=8, minutes=5))
    with path.open("w", encoding="utf-8") as out:
        for u in updates:
            ts = u.source_ts.astimezone(UTC).isoformat().replace("+00:00", "Z")
            out.write(
                json.dumps({"ts": ts, "machine": u.machine, "signal": u.signal, "value": u.value}) + "\n"
            )


@dataclass
class Loaded:
    """InfluxDB with the points of shift A and of a live minute, and what the pipeline said of them."""

    influx: InfluxDB
    replayed: list[dict]
    live_from: datetime
    live_to: datetime


def run_live(influx: InfluxDB, directory: Path) -> tuple[datetime, datetime]:
    """Simulator (OPC UA, and meters over a real Mosquitto) and pipeline as processes until
    InfluxDB holds health points of the sources and the sink and raw readings of every machine;
    the wall-clock span they cover."""
    broker = Broker(port=free_port(), directory=directory)
    broker.start()
    try:
        return _live(influx, directory, broker)
    finally:
        broker.stop()


def _live(influx: InfluxDB, directory: Path, broker: Broker) -> tuple[datetime, datetime]:
    port = free_port()
    env = environment(influx, port, broker.url)
    exe = plantstream_exe()
    started = datetime.now(tz=UTC)
    log = (directory / "live.log").open("ab")
    simulator = subprocess.Popen(
        [exe, "simulate", "-c", str(PLANT), "--port", str(port), "--seed", str(SEED), "--mqtt", broker.url],
        stdout=log,
        stderr=log,
        env=env,
    )
    pipeline = subprocess.Popen(
        [exe, "run", "-c", str(PLANT), "--state-dir", str(directory / "live-state"), "--http-port", "0"],
        stdout=subprocess.DEVNULL,
        stderr=log,
        env=env,
    )
    log.close()

    def enough() -> bool:
        rows = influx.flux(
            f'from(bucket: "{InfluxDB.DATABASE}") |> range(start: {started.isoformat()})'
            ' |> filter(fn: (r) => (r._measurement == "health" and r._field == "readings")'
            ' or (r._measurement == "health" and r._field == "outbox_lines")'
            ' or (r._measurement == "reading" and r._field == "quality"))'
            ' |> keep(columns: ["_measurement", "source", "sink", "machine"]) |> group()'
        )
        health = [r for r in rows if r["_measurement"] == "health"]
        machines = {r.get("machine") for r in rows if r["_measurement"] == "reading"}
        # Two health points of each: the per-interval panels take differences.
        sources = [r.get("source") for r in health if r.get("source")]
        return (
            all(sources.count(source) >= 2 for source in ("line1-plc", "meters"))
            and sum(1 for r in health if r.get("sink")) >= 2
            and {"press1", "cnc1", "packer1", "oven1"} <= machines
        )

    try:
        deadline = time.monotonic() + LIVE_TIMEOUT_S
        while not enough():
            assert pipeline.poll() is None, (directory / "live.log").read_text()[-3000:]
            assert simulator.poll() is None, (directory / "live.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the live pipeline wrote too little to InfluxDB"
            time.sleep(1)
    finally:
        for process in (pipeline, simulator):
            process.send_signal(signal.SIGTERM)
        for process in (pipeline, simulator):
            process.wait(timeout=60)
    return started, datetime.now(tz=UTC)


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loaded]:
    directory = tmp_path_factory.mktemp("dashboards")
    influx = InfluxDB(port=free_port(), directory=directory)
    influx.start()
    try:
        readings = directory / "shift-a.jsonl"
        write_shift_a(readings)
        points = directory / "points.jsonl"
        replay = subprocess.run(
            [plantstream_exe(), "replay", "-c", str(PLANT), "--readings", str(readings), "--to-sinks",
             "--state-dir", str(directory / "replay-state"), "--out", str(points)],
            capture_output=True, text=True, check=False, timeout=600, env=environment(influx),
        )  # fmt: skip
        assert replay.returncode == 0, replay.stderr
        replayed = [json.loads(line) for line in points.read_text().splitlines()]
        live_from, live_to = run_live(influx, directory)
        yield Loaded(influx, replayed, live_from, live_to)
    finally:
        influx.stop()


def dashboards() -> list[dict]:
    return [json.loads(path.read_text()) for path in sorted(DASHBOARDS.glob("*.json"))]


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def as_grafana_sends(query: str, variables: dict[str, list[str]], start: datetime, stop: datetime) -> str:
    """``query`` with Grafana's Flux macros and the dashboard variables replaced, as Grafana does."""
    text = (
        query.replace("v.timeRangeStart", rfc3339(start))
        .replace("v.timeRangeStop", rfc3339(stop))
        .replace("v.windowPeriod", "1m")
        .replace("v.defaultBucket", f'"{InfluxDB.DATABASE}"')
    )
    for name, values in variables.items():
        text = text.replace(f"${{{name}:regex}}", "(" + "|".join(re.escape(v) for v in values) + ")")
        text = text.replace(f"${{{name}}}", values[0])
    unresolved = re.findall(r"\$\{?\w+", text)
    assert not unresolved, f"variables left in the query: {unresolved}"
    return text


def fill_variables(
    influx: InfluxDB, dashboard: dict, start: datetime, stop: datetime
) -> dict[str, list[str]]:
    """Each variable's values from its own query, in order (a later one may use an earlier one)."""
    values: dict[str, list[str]] = {}
    for var in dashboard["templating"]["list"]:
        rows = influx.flux(as_grafana_sends(var["query"], values, start, stop))
        found = sorted({str(row["_value"]) for row in rows})
        assert found, f"{dashboard['title']}: variable ${var['name']} has no values"
        default = var.get("current", {}).get("value")
        if var.get("multi"):
            values[var["name"]] = found  # "All"
        elif default is not None:
            assert default in found, (
                f"{dashboard['title']}: ${var['name']} default {default!r} not in {found}"
            )
            values[var["name"]] = [default]
        else:
            values[var["name"]] = found[:1]
    return values


def columns_drawn(query: str) -> set[str]:
    """The columns a panel is drawn from: its last ``keep``, else its last record-building map."""
    keeps = re.findall(r"keep\(columns: \[([^\]]*)\]\)", query)
    if keeps:
        return set(re.findall(r'"(\w+)"', keeps[-1]))
    records = re.findall(r"map\(fn: \(r\) => \(\{\s*(?!r with)(.*?)\}\)\)", query, flags=re.DOTALL)
    if records:
        body = records[-1]
        while re.search(r"\([^()]*\)", body):  # drop the arguments of calls: their names are not columns
            body = re.sub(r"\([^()]*\)", "", body)
        return set(re.findall(r"(\w+):", body))
    if "pivot(" in query:
        return {"_time"}
    return {"_value"}


def time_range(loaded: Loaded, dashboard: dict) -> tuple[datetime, datetime]:
    if dashboard["uid"] == "plantstream-pipeline":
        return loaded.live_from - timedelta(minutes=1), loaded.live_to + timedelta(minutes=1)
    # Shift A alone: shift B's points are stamped 14:00, the range's end (excluded).
    return SHIFT_A, SHIFT_A + timedelta(hours=8)


@pytest.mark.parametrize("dashboard", dashboards(), ids=lambda d: d["uid"])
def test_every_panel_returns_the_columns_it_is_drawn_from(loaded: Loaded, dashboard: dict) -> None:
    start, stop = time_range(loaded, dashboard)
    variables = fill_variables(loaded.influx, dashboard, start, stop)
    problems = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            query = as_grafana_sends(target["query"], variables, start, stop)
            rows = loaded.influx.flux(query)
            wanted = columns_drawn(target["query"])
            if not rows:
                problems.append(f"{panel['title']}: no rows")
                continue
            missing = wanted - set().union(*(row.keys() for row in rows))
            if missing:
                problems.append(f"{panel['title']}: no column {sorted(missing)} in {sorted(rows[0])}")
            values = [row[c] for row in rows for c in wanted if isinstance(row.get(c), float)]
            if any(not math.isfinite(v) for v in values):  # type: ignore[arg-type]
                problems.append(f"{panel['title']}: a value that is not finite")
    assert not problems, "\n".join(problems)


def test_the_line_oee_panel_shows_the_shift_oee_replay_computed(loaded: Loaded) -> None:
    [overview] = [d for d in dashboards() if d["uid"] == "plantstream-line"]
    [panel] = [p for p in overview["panels"] if p["title"].startswith("Line OEE")]
    start, stop = time_range(loaded, overview)
    variables = fill_variables(loaded.influx, overview, start, stop)
    assert variables["site"] == ["hcm"]
    assert variables["line"] == ["line1"]
    assert variables["machine"] == ["cnc1", "oven1", "packer1", "press1"]
    [row] = loaded.influx.flux(as_grafana_sends(panel["targets"][0]["query"], variables, start, stop))
    [line_shift] = [
        p["fields"]
        for p in loaded.replayed
        if p["measurement"] == "oee"
        and p["tags"].get("line") == "line1"
        and "machine" not in p["tags"]
        and p["tags"].get("window") == "shift"
        and p["tags"].get("shift") == "A"
    ]
    for ratio in ("availability", "performance", "quality", "oee"):
        assert math.isclose(row[ratio], line_shift[ratio], rel_tol=1e-9), ratio  # type: ignore[arg-type]
    assert 0 < line_shift["oee"] < 1


def test_a_stop_whose_reason_was_corrected_counts_once_under_its_latest_reason(tmp_path: Path) -> None:
    # A late reason rewrites the stop (revision + 1) under its new `reason` tag, and InfluxDB keeps
    # the first series beside it (docs/points.md): the stop panels must count the latest only.
    start = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
    tags = "stop,category=down,line=line1,machine=press1,site=hcm"
    first, second = int(start.timestamp()), int(start.timestamp()) + 600
    body = "\n".join(
        [
            f"{tags},reason=unassigned,reason_group=unassigned duration_s=120.0,revision=0i {first}",
            f"{tags},reason=film\\ break,reason_group=material duration_s=120.0,revision=1i {first}",
            f"{tags},reason=film\\ break,reason_group=material duration_s=30.0,revision=0i {second}",
        ]
    ).encode()
    influx = InfluxDB(port=free_port(), directory=tmp_path)
    influx.start()
    try:
        request = urllib.request.Request(
            f"{influx.url}/api/v2/write?bucket={InfluxDB.DATABASE}&precision=s", data=body, method="POST"
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            assert answer.status == 204
        [losses] = [d for d in dashboards() if d["uid"] == "plantstream-losses"]
        panels = {p["title"]: p["targets"][0]["query"] for p in losses["panels"]}
        variables = {"site": ["hcm"], "line": ["line1"], "machine": ["press1"], "window": ["1m"]}

        def rows(title: str) -> list[dict[str, object]]:
            query = as_grafana_sends(panels[title], variables, start, start + timedelta(hours=1))
            return influx.flux(query)

        by_time = rows("Stop time by reason (minutes in range)")
        assert [(r["reason"], r["minutes"]) for r in by_time] == [("film break", (120.0 + 30.0) / 60)]
        by_count = rows("Stops by reason (count)")
        assert [(r["reason"], r["stops"]) for r in by_count] == [("film break", 2)]
        log = rows("Stop log")
        assert [(r["reason"], r["duration_s"]) for r in log] == [("film break", 30.0), ("film break", 120.0)]
    finally:
        influx.stop()
