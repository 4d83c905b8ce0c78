"""InfluxDB sink throughput against raw influxdb-client writes, and an outage, in one run.

What is measured (docs/benchmarks.md has the results and the command):

- **raw**: influxdb-client's synchronous write API (gzip on: the client compresses at level 9)
  writing precomputed line-protocol batches of ``--batch`` lines one after the other: HTTP, gzip
  and the server, nothing else. This is the reference of issue 6's target.
- **raw_l1**: the same lines sent as the sink sends them (joined, gzip level 1, through the
  client's write service): the stricter reference, the sink minus encoding and outbox.
- **sink**: :class:`sinks.influx.InfluxSink` with its outbox, fed the same points as
  :class:`~plantstream.records.Point` objects in groups of 1 000 (as the embedded runtime hands
  them over), timed from the first submit until the outbox is empty. It does more than raw: it
  encodes the points to line protocol, commits them to SQLite, reads them back and deletes them.

Both write to one server started by the script on a free loopback port: VictoriaMetrics (Debian
package; the default) or, with ``--server influxdb``, InfluxDB OSS 1.12 (bench/influxdb_node.py).
Each round writes its own measurement (``b000``, ``b001``, ...: same length, new series for both
sides) so neither side profits from series the other created. The three sides alternate
``--repeat`` times and the fastest round of each is kept; the results are ratios from the same
run, because the machine is shared. Each side's CPU time in this process (all threads) per point
is reported too: it is steadier than wall time on a loaded machine, where the sink's two threads
get more of the cores than raw's one. ``--profile N`` profiles one more sink round (the
pipeline's thread) and shows the N most expensive functions.

The points are ``reading`` points of ``--machines`` machines, four signals each, one sample per
signal per second (tags site, line, machine, signal; fields value and quality), which is what the
embedded runtime writes for raw readings.

``--outage-s T`` (0 to skip) then measures an outage: the server is stopped while points keep
coming at ``--rate`` per second for T seconds (they go into the outbox), peak RSS is noted, the
server is started again, and the backlog's drain rate is measured while the input goes on; the
ratio drain/input is reported.

Run: ``.venv/bin/python bench/influx.py --points 200000 --repeat 5 --profile 15``.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gzip
import logging
import os
import platform
import pstats
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple, cast

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from influxdb_client.client.influxdb_client import InfluxDBClient  # noqa: E402
from influxdb_client.client.write_api import SYNCHRONOUS  # noqa: E402
from influxdb_client.service.write_service import WriteService  # noqa: E402

from bench.common import start_child, stop_on_sigterm  # noqa: E402
from bench.influxdb_node import InfluxNode, InfluxUnavailable  # noqa: E402
from plantstream.plant.schema import InfluxDbSink  # noqa: E402
from plantstream.records import Point  # noqa: E402
from sinks.influx import InfluxSink  # noqa: E402
from sinks.lineprotocol import encode  # noqa: E402

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
SIGNALS = ("power_kw", "energy_kwh", "good_count", "state")
TOKEN = {"INFLUX_TOKEN": "bench"}
HAND_OVER = 1_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Victoria:
    """A VictoriaMetrics process on a free loopback port with its own storage."""

    def __init__(self, directory: Path) -> None:
        binary = shutil.which("victoria-metrics") or "/usr/bin/victoria-metrics"
        if not Path(binary).exists():
            sys.exit("victoria-metrics is not installed: apt-get install victoria-metrics")
        self.binary = binary
        self.directory = directory
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the server and wait until it answers /health."""
        log = (self.directory / "vm.log").open("ab")
        self.process = start_child(
            [
                self.binary,
                f"-httpListenAddr=127.0.0.1:{self.port}",
                f"-storageDataPath={self.directory / 'data'}",
                "-retentionPeriod=100y",
                "-dedup.minScrapeInterval=1ms",
            ],
            stdout=log,
            stderr=log,
        )
        log.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                    if response.read() == b"OK":
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("victoria-metrics did not start")

    def stop(self) -> None:
        """Stop it gracefully (it keeps its data for the next start)."""
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=60)
            self.process = None


def make_points(count: int, machines: int, measurement: str = "reading", start_s: int = 0) -> list[Point]:
    """``count`` raw-reading points: every machine's signals, one sample per second each."""
    out = []
    per_second = machines * len(SIGNALS)
    for i in range(count):
        second, rest = divmod(i, per_second)
        machine, signal = divmod(rest, len(SIGNALS))
        out.append(
            Point(
                measurement=measurement,
                tags={
                    "site": "demo",
                    "line": f"l{machine % 4 + 1}",
                    "machine": f"m{machine:03d}",
                    "signal": SIGNALS[signal],
                },
                fields={"value": float(i % 9973) / 7, "quality": "good"},
                time=T0 + timedelta(seconds=start_s + second),
            )
        )
    return out


def sink_settings(url: str, batch: int) -> InfluxDbSink:
    return InfluxDbSink.model_validate(
        {
            "type": "influxdb",
            "id": "bench",
            "url": url,
            "org": "bench",
            "bucket": InfluxNode.DATABASE,  # InfluxDB 1.x: the database must exist
            "token_env": "INFLUX_TOKEN",
            "batch_size": batch,
            "flush_interval_s": 1.0,
        }
    )


class Timing(NamedTuple):
    """One round: wall-clock seconds and this process's CPU seconds (all its threads)."""

    wall: float
    cpu: float


@contextmanager
def timed(out: list[Timing]) -> Iterator[None]:
    """Append the wall and CPU time of the block to ``out``."""
    wall, cpu = time.perf_counter(), time.process_time()
    yield
    out.append(Timing(time.perf_counter() - wall, time.process_time() - cpu))


def raw_round(url: str, points: list[Point], batch: int) -> Timing:
    """Write the points' lines with influxdb-client alone (its gzip, level 9), batch after batch."""
    lines = [encode(p, "s").encode() for p in points]
    out: list[Timing] = []
    with InfluxDBClient(url=url, token="bench", org="bench", enable_gzip=True, timeout=60_000) as client:
        write_api = client.write_api(write_options=SYNCHRONOUS)
        with timed(out):
            for at in range(0, len(lines), batch):
                write_api.write(
                    bucket=InfluxNode.DATABASE,
                    org="bench",
                    record=lines[at : at + batch],
                    write_precision=cast(Any, "s"),
                )
    return out[0]


def raw_level1_round(url: str, points: list[Point], batch: int) -> Timing:
    """The same lines as the sink sends them: joined, gzip level 1, through the client's write service."""
    lines = [encode(p, "s").encode() for p in points]
    out: list[Timing] = []
    with InfluxDBClient(url=url, token="bench", org="bench", enable_gzip=False, timeout=60_000) as client:
        service = WriteService(client.api_client)  # type: ignore[no-untyped-call]
        with timed(out):
            for at in range(0, len(lines), batch):
                service.post_write(  # type: ignore[no-untyped-call]
                    org="bench",
                    bucket=InfluxNode.DATABASE,
                    body=gzip.compress(b"\n".join(lines[at : at + batch]), compresslevel=1),
                    precision="s",
                    content_type="text/plain; charset=utf-8",
                    content_encoding="gzip",
                )
    return out[0]


async def sink_round(url: str, points: list[Point], batch: int, directory: Path) -> Timing:
    """From the first submit until the sink's outbox is empty."""
    sink = InfluxSink(sink_settings(url, batch), directory, on_dead_letter=print, environ=TOKEN, timeout_s=60)
    out: list[Timing] = []
    async with sink:
        with timed(out):
            for at in range(0, len(points), HAND_OVER):
                await sink.submit(points[at : at + HAND_OVER])
            if not await sink.drain(600):
                raise RuntimeError("the sink did not drain")
    if sink.health.written != len(points) or sink.health.dead_letters:
        raise RuntimeError(
            f"written {sink.health.written} of {len(points)}, dead letters {sink.health.dead_letters}"
        )
    return out[0]


def profile_sink_round(url: str, points: list[Point], batch: int, directory: Path, top: int) -> None:
    """One more sink round under cProfile (the pipeline's thread: the writer thread is not seen)."""
    profiler = cProfile.Profile()
    profiler.enable()
    timing = asyncio.run(sink_round(url, points, batch, directory))
    profiler.disable()
    print(f"profiled sink round: {len(points) / timing.wall:,.0f} points/s under the profiler")
    pstats.Stats(profiler).sort_stats("tottime").print_stats(top)


def rss_mib() -> float:
    """Resident set size now, in MiB (Linux /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def outage(
    vm: Victoria | InfluxNode, directory: Path, *, seconds: float, rate: int, machines: int, batch: int
) -> dict[str, float]:
    """Points at ``rate``/s while the server is down for ``seconds``, then the drain with input going on."""
    sink = InfluxSink(
        sink_settings(vm.url, batch), directory, on_dead_letter=print, environ=TOKEN, max_retry_s=2.0
    )
    per_tick = max(1, rate // 10)
    produced = 0
    peak_rss = rss_mib()
    stop_input = asyncio.Event()

    async def produce() -> None:
        nonlocal produced, peak_rss
        tick = 0
        loop = asyncio.get_running_loop()
        begin = loop.time()
        while not stop_input.is_set():
            # Each tick's points get their own seconds, so no two share an identity.
            points = make_points(
                per_tick, machines, "outage", start_s=tick * (per_tick // (machines * 4) + 1)
            )
            await sink.submit(points)
            produced += len(points)
            tick += 1
            peak_rss = max(peak_rss, rss_mib())
            await asyncio.sleep(max(0.0, begin + tick / 10 - loop.time()))

    async with sink:
        await asyncio.to_thread(vm.stop)
        producer = asyncio.create_task(produce())
        await asyncio.sleep(seconds)
        backlog = sink.outbox.lines
        await asyncio.to_thread(vm.start)
        written_before = sink.health.written
        started = time.perf_counter()
        while sink.outbox.lines > per_tick * 20:
            await asyncio.sleep(0.1)
        drain_s = time.perf_counter() - started
        drained = sink.health.written - written_before
        stop_input.set()
        await producer
        await sink.drain(600)
    return {
        "outage_s": seconds,
        "input_rate": rate,
        "backlog_lines": backlog,
        "peak_rss_mib": peak_rss,
        "drain_s": drain_s,
        "drain_rate": drained / drain_s if drain_s else 0.0,
        "produced": produced,
        "written": sink.health.written,
    }


@contextmanager
def workdir(keep: bool) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="bench-influx-"))
    try:
        yield path
    finally:
        if not keep:
            shutil.rmtree(path, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--points", type=int, default=200_000)
    parser.add_argument("--machines", type=int, default=100)
    parser.add_argument("--batch", type=int, default=5_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--outage-s", type=float, default=0.0, help="seconds of outage to measure (0: skip)")
    parser.add_argument("--rate", type=int, default=10_000, help="points/s during the outage measurement")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--profile", type=int, default=0, help="profile one more sink round; show N rows")
    parser.add_argument("--server", choices=("victoria-metrics", "influxdb"), default="victoria-metrics")
    args = parser.parse_args(argv)
    # The outage's retries would log a warning each; the counts are in the result instead.
    logging.getLogger("plantstream.sinks").setLevel(logging.ERROR)

    with workdir(args.keep) as work:
        vm: Victoria | InfluxNode = Victoria(work)
        if args.server == "influxdb":
            vm = InfluxNode(port=free_port(), directory=work)
        try:
            vm.start()
        except InfluxUnavailable as exc:
            sys.exit(str(exc))
        try:
            rounds: dict[str, list[Timing]] = {"raw": [], "raw_l1": [], "sink": []}
            for round_no in range(args.repeat):  # --repeat 0: the outage alone, in a fresh process
                # Each side writes its own measurement: new series for every round of every side.
                # The points are made per side (one side's points in memory at a time).
                def points(side: int, n: int = round_no) -> list[Point]:
                    return make_points(args.points, args.machines, f"b{3 * n + side:03d}")

                rounds["raw"].append(raw_round(vm.url, points(0), args.batch))
                rounds["raw_l1"].append(raw_level1_round(vm.url, points(1), args.batch))
                outbox = work / f"outbox{round_no}"
                rounds["sink"].append(asyncio.run(sink_round(vm.url, points(2), args.batch, outbox)))
                rates = (f"{side} {args.points / r[-1].wall:,.0f} points/s" for side, r in rounds.items())
                print(f"round {round_no + 1}: " + ", ".join(rates))
            if args.repeat:
                wall = {side: min(t.wall for t in r) for side, r in rounds.items()}
                cpu = {side: min(t.cpu for t in r) / args.points * 1e6 for side, r in rounds.items()}
                print(
                    f"best of {args.repeat}: "
                    + ", ".join(f"{side} {args.points / w:,.0f} points/s" for side, w in wall.items())
                    + f"; ratio sink/raw {wall['raw'] / wall['sink']:.2f}, "
                    f"sink/raw_l1 {wall['raw_l1'] / wall['sink']:.2f} "
                    f"({args.points} points, batches of {args.batch}, {platform.python_version()}, "
                    f"{platform.machine()}, {len(os.sched_getaffinity(0))} cores)"
                )
                print(
                    "CPU of this process per point (least of the rounds): "
                    + ", ".join(f"{side} {us:.2f} us" for side, us in cpu.items())
                )
            if args.profile:
                profile_sink_round(
                    vm.url,
                    make_points(args.points, args.machines, "bprof"),
                    args.batch,
                    work / "outbox-profile",
                    args.profile,
                )
            if args.outage_s > 0:
                result = asyncio.run(
                    outage(
                        vm,
                        work / "outage",
                        seconds=args.outage_s,
                        rate=args.rate,
                        machines=args.machines,
                        batch=args.batch,
                    )
                )
                drain, rate = result["drain_rate"], result["input_rate"]
                print(
                    f"outage {result['outage_s']:.0f} s at {rate:.0f} points/s: backlog "
                    f"{result['backlog_lines']:,.0f} lines, peak RSS {result['peak_rss_mib']:.0f} MiB; "
                    f"drained at {drain:,.0f} lines/s = {drain / rate:.1f}x "
                    f"the input in {result['drain_s']:.1f} s; produced {result['produced']:,}, "
                    f"written {result['written']:,}"
                )
            print(f"max RSS of the run {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
        finally:
            vm.stop()


if __name__ == "__main__":
    stop_on_sigterm()
    main()
