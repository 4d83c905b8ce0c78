"""The installed ``plantstream`` command end to end: ``check`` and ``replay`` on the shipped examples."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from services import free_port

ROOT = Path(__file__).resolve().parents[2]
MINIMAL = ROOT / "examples" / "minimal.yaml"
SHIFT = ROOT / "examples" / "minimal-shift.jsonl"
pytestmark = pytest.mark.e2e


def plantstream(
    *args: str, stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("plantstream", path=str(Path(sys.executable).parent))
    assert exe, "the plantstream console script is not installed in this environment"
    return subprocess.run(
        [exe, *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


# The variables the examples' comments say to set; all on this machine, so no security warning.
EXAMPLE_ENV = {
    "MQTT_URL": "mqtt://127.0.0.1:1883",
    "INFLUX_URL": "http://127.0.0.1:8086",
    "INFLUX_ORG": "plant",
    "INFLUX_BUCKET": "plantstream",
}


@pytest.mark.parametrize("path", sorted((ROOT / "examples").glob("*.yaml")), ids=lambda p: p.name)
def test_check_accepts_every_shipped_example_without_warnings(path: Path) -> None:
    result = plantstream("check", "-c", str(path), env=EXAMPLE_ENV)
    assert result.returncode == 0, result.stderr
    assert "valid" in result.stdout
    assert "warning" not in result.stderr


def test_check_rejects_a_typo_with_file_line_and_key(tmp_path: Path) -> None:
    bad = tmp_path / "plant.yaml"
    bad.write_text(
        MINIMAL.read_text()
        .replace("ideal_cycle_s: 1.0", "ideal_cycle_s: 0")
        .replace("timezone:", "time_zone:")
    )
    result = plantstream("check", "-c", str(bad))
    assert result.returncode == 2
    assert "plant.yaml:6 sites[0].time_zone: unknown key (did you mean 'timezone'?)" in result.stderr
    assert "sites[0].lines[0].machines[0].ideal_cycle_s: must be > 0" in result.stderr


def test_replay_tv_oee_1_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "points.jsonl"
    result = plantstream("replay", "-c", str(MINIMAL), "--readings", str(SHIFT), "--out", str(out))
    assert result.returncode == 0, result.stderr
    points = [json.loads(line) for line in out.read_text().splitlines()]
    [shift] = [p for p in points if p["measurement"] == "oee" and p["tags"]["window"] == "shift"]
    assert shift["tags"] == {"site": "demo", "line": "l1", "machine": "m1", "window": "shift", "shift": "day"}
    assert shift["time"] == "2026-03-02T08:00:00Z"
    # TV-OEE-1 [VORNE-WS]: A 88.81 %, P 86.11 %, Q 97.80 %, OEE 74.79 %.
    f = shift["fields"]
    for key, value in {
        "availability": 0.8881,
        "performance": 0.8611,
        "quality": 0.9780,
        "oee": 0.7479,
    }.items():
        assert f[key] == pytest.approx(value, abs=0.0005), key
    assert (f["planned_busy_s"], f["run_s"], f["good_count"]) == (420 * 60, 373 * 60, 18_848)
    [energy] = [p for p in points if p["measurement"] == "energy" and p["tags"]["window"] == "shift"]
    [carbon] = [p for p in points if p["measurement"] == "carbon" and p["tags"]["window"] == "shift"]
    assert carbon["fields"]["co2e_kg"] == pytest.approx(energy["fields"]["kwh"] * 0.6592)
    assert "74.79%" in result.stderr


def test_replay_is_deterministic_and_reads_stdin() -> None:
    first = plantstream("replay", "-c", str(MINIMAL), "--readings", str(SHIFT), "-q")
    second = plantstream("replay", "-c", str(MINIMAL), "--readings", "-", "-q", stdin=SHIFT.read_text())
    assert first.returncode == second.returncode == 0
    assert first.stdout == second.stdout
    assert first.stdout.count("\n") > 1_000


def test_replay_skips_bad_lines_with_their_number_and_reason(tmp_path: Path) -> None:
    lines = SHIFT.read_text().splitlines()
    lines.insert(2, "{not json")
    lines.insert(
        5, json.dumps({"ts": "2026-03-02T08:00:00", "machine": "m1", "signal": "state", "value": "running"})
    )
    lines.insert(
        7, json.dumps({"ts": "2026-03-02T08:00:01Z", "machine": "m7", "signal": "state", "value": 1})
    )
    readings = tmp_path / "readings.jsonl"
    readings.write_text("\n".join(lines) + "\n")
    dead = tmp_path / "dead.jsonl"
    result = plantstream(
        "replay", "-c", str(MINIMAL), "--readings", str(readings), "--dead-letter", str(dead), "-q"
    )
    assert result.returncode == 0, result.stderr
    assert "readings.jsonl:3: malformed" in result.stderr
    assert "readings.jsonl:6: malformed: ts: " in result.stderr
    assert "time zone" in result.stderr
    assert "readings.jsonl:8: unknown_machine" in result.stderr
    refused = [json.loads(line) for line in dead.read_text().splitlines()]
    assert [(r["line"], r["reason"]) for r in refused] == [
        (3, "malformed"),
        (6, "malformed"),
        (8, "unknown_machine"),
    ]
    # Nothing else was lost: the shift's OEE is the same as without the bad lines.
    clean = plantstream("replay", "-c", str(MINIMAL), "--readings", str(SHIFT), "-q")
    assert result.stdout == clean.stdout


def test_replay_strict_stops_at_the_first_bad_line(tmp_path: Path) -> None:
    readings = tmp_path / "readings.jsonl"
    readings.write_text(SHIFT.read_text().splitlines()[0] + "\n[1, 2]\n")
    result = plantstream("replay", "-c", str(MINIMAL), "--readings", str(readings), "--strict", "-q")
    assert result.returncode == 1
    assert "readings.jsonl:2: malformed" in result.stderr


def test_replay_of_an_invalid_plant_exits_2_before_reading(tmp_path: Path) -> None:
    result = plantstream("replay", "-c", str(tmp_path / "missing.yaml"), "--readings", str(SHIFT))
    assert result.returncode == 2
    assert "missing.yaml" in result.stderr


NOT_UTF8 = b'{"ts": "2026-03-02T08:00:00Z", "machine": "m\xff1", "signal": "state", "value": 1}\n'


def plantstream_bytes(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    exe = shutil.which("plantstream", path=str(Path(sys.executable).parent))
    assert exe
    return subprocess.run([exe, *args], input=stdin, capture_output=True, check=False, timeout=120)


def test_a_line_that_is_not_utf8_is_skipped_with_its_number_from_a_file_or_stdin(tmp_path: Path) -> None:
    lines = SHIFT.read_bytes().splitlines(keepends=True)
    readings = tmp_path / "readings.jsonl"
    readings.write_bytes(b"".join([*lines[:3], NOT_UTF8, *lines[3:]]))
    clean = plantstream("replay", "-c", str(MINIMAL), "--readings", str(SHIFT), "-q")
    from_file = plantstream_bytes("replay", "-c", str(MINIMAL), "--readings", str(readings))
    from_stdin = plantstream_bytes(
        "replay", "-c", str(MINIMAL), "--readings", "-", stdin=readings.read_bytes()
    )
    for result, name in ((from_file, str(readings)), (from_stdin, "stdin")):
        stderr = result.stderr.decode()
        assert result.returncode == 0, stderr
        assert f"{name}:4: malformed: not UTF-8 (byte 0xff at column 45)" in stderr
        assert "Traceback" not in stderr
        assert result.stdout.decode() == clean.stdout


def test_a_failed_replay_leaves_no_output_file_and_no_temporary(tmp_path: Path) -> None:
    readings = tmp_path / "readings.jsonl"
    readings.write_bytes(SHIFT.read_bytes() + NOT_UTF8)
    out, dead = tmp_path / "points.jsonl", tmp_path / "refused.jsonl"
    args = ("--readings", str(readings), "--out", str(out), "--dead-letter", str(dead), "--strict")
    result = plantstream("replay", "-c", str(MINIMAL), *args)
    assert result.returncode == 1
    # The last line is the bad one: every point had been computed, and none is left behind.
    assert f"readings.jsonl:{SHIFT.read_text().count(chr(10)) + 1}: malformed" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["readings.jsonl"]


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_an_interrupted_replay_leaves_no_output_file(tmp_path: Path, signum: int, code: int) -> None:
    exe = shutil.which("plantstream", path=str(Path(sys.executable).parent))
    assert exe
    out = tmp_path / "points.jsonl"
    with subprocess.Popen(
        [exe, "replay", "-c", str(MINIMAL), "--readings", "-", "--out", str(out)],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # Ctrl-C as at a terminal: a suite started in the background (nohup ... &) passes SIGINT
        # on ignored, and Python then leaves it ignored, as a background job's should be.
        preexec_fn=_default_sigint,  # noqa: PLW1509 - nothing else runs in the child before exec
    ) as replay:
        assert replay.stdin is not None
        assert replay.stderr is not None
        try:
            # A bad line, then a good one, and the input stays open: the replay is mid-way when
            # it has reported the bad line.
            replay.stdin.write("{not json\n" + SHIFT.read_text().splitlines()[0] + "\n")
            replay.stdin.flush()
            assert "stdin:1: malformed" in replay.stderr.readline()
            replay.send_signal(signum)
            assert replay.wait(timeout=60) == code
            assert "interrupted; nothing written to" in replay.stderr.read()
        finally:
            replay.kill()
    assert list(tmp_path.iterdir()) == []


def test_the_summary_counts_refused_lines_apart_from_readings(tmp_path: Path) -> None:
    readings = tmp_path / "readings.jsonl"
    lines = SHIFT.read_text().splitlines()
    unknown = json.dumps({"ts": "2026-03-02T08:00:01Z", "machine": "m7", "signal": "state", "value": 1})
    readings.write_text("\n".join([*lines, "", "{not json", unknown]) + "\n")
    result = plantstream("replay", "-c", str(MINIMAL), "--readings", str(readings), "--out", os.devnull)
    assert result.returncode == 0, result.stderr
    # len(lines) + 3 lines: one blank, two refused; the recorded shift's lines are the readings.
    expected = f"{len(lines)} readings from {len(lines) + 3} lines, 1 blank; rejected 2: malformed 1, "
    assert expected + "unknown_machine 1;" in result.stderr


def test_off_a_terminal_the_shift_table_is_not_cut_to_80_columns() -> None:
    result = plantstream("replay", "-c", str(MINIMAL), "--readings", str(SHIFT), "--out", os.devnull)
    assert result.returncode == 0, result.stderr
    [row] = [line for line in result.stderr.splitlines() if " m1 " in line]
    assert row.startswith("2026-03-02 08:00 ")
    assert "74.79%" in row
    assert "373 min" in row


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_simulate_writes_the_truth_when_stopped_by_a_signal(tmp_path: Path, signum: int) -> None:
    from services import free_port

    exe = shutil.which("plantstream", path=str(Path(sys.executable).parent))
    assert exe
    port, truth = free_port(), tmp_path / "truth.json"
    args = ["simulate", "--port", str(port), "--start", "2026-03-02T08:00:00+00:00", "--truth", str(truth)]
    with subprocess.Popen([exe, *args], stderr=subprocess.PIPE, text=True) as simulator:
        try:
            # It listens once it runs; from then on the signal handlers are in place.
            for _ in range(600):
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.1):
                    break
                assert simulator.poll() is None, simulator.communicate()[1]
                time.sleep(0.1)
            simulator.send_signal(signum)
            _, stderr = simulator.communicate(timeout=60)
        finally:
            simulator.kill()
    assert simulator.returncode == 0, stderr
    assert f"ground truth written to {truth}" in stderr
    written = json.loads(truth.read_text())
    assert written["at"].startswith("2026-03-02T08:")
    assert written["seed"] == 1
    assert {"press1", "cnc1", "packer1"} <= written["machines"].keys()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["truth.json"]


def test_simulate_refuses_a_truth_file_in_a_missing_folder_before_it_starts(tmp_path: Path) -> None:
    truth = tmp_path / "missing" / "truth.json"
    result = plantstream("simulate", "--duration", "0", "--truth", str(truth))
    assert result.returncode == 2
    assert f"--truth {truth}: the folder {truth.parent} does not exist" in result.stderr
    assert "simulating" not in result.stderr


def test_replay_to_sinks_with_the_server_down_says_once_what_is_pending(tmp_path: Path) -> None:
    from services import free_port

    exe = shutil.which("plantstream", path=str(Path(sys.executable).parent))
    assert exe
    points = plantstream("replay", "-c", str(MINIMAL), "--readings", str(SHIFT), "-q").stdout.count("\n")
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    env = {**os.environ, "INFLUX_URL": url, "INFLUX_ORG": "o", "INFLUX_BUCKET": "b", "INFLUX_TOKEN": "t"}
    state = tmp_path / "state"
    out = tmp_path / "points.jsonl"
    args = [
        "--readings",
        str(SHIFT),
        "--to-sinks",
        "--state-dir",
        str(state),
        "--timeout",
        "1",
        "--out",
        str(out),
    ]
    result = subprocess.run(
        [exe, "replay", "-c", str(ROOT / "examples" / "influx.yaml"), *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 1
    assert f"{points} points written to {out} and put in the outbox of sink(s) influx" in result.stderr
    [pending] = [line for line in result.stderr.splitlines() if "not delivered" in line]
    assert f"sink influx: 0 line(s) delivered to {url}, {points} not delivered within 1 s" in pending
    assert f"they stay in {state / 'outbox' / 'influx.sqlite'}" in pending
    assert "written to the sinks" not in result.stderr
    # The points file is whole although the sink could not take them: the replay itself succeeded.
    assert out.read_text().count("\n") == points


# --- hostile and mistaken plant files (issue rows 6, 7, 8, 11) ---------------------------------------

DEMO = ROOT / "examples" / "demo-line.yaml"


def test_check_refuses_deep_nesting_and_billion_laughs_quickly(tmp_path: Path) -> None:
    deep = tmp_path / "deep.yaml"
    deep.write_text("sites:\n" + "".join(" " * (2 * level) + "- k:\n" for level in range(1, 1_000)))
    laughs = tmp_path / "laughs.yaml"
    # Each level holds 9 aliases of the one before: 9**9 = 387,420,489 strings once expanded.
    laughs.write_text(
        "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
        + "".join(
            f"{name}: &{name} [{', '.join([f'*{prev}'] * 9)}]\n"
            for prev, name in zip("abcdefgh", "bcdefghi", strict=True)
        )
    )
    result = plantstream("check", "-c", str(deep))
    assert result.returncode == 2
    # Line 1 opens the document's mapping (level 1); line n > 1 opens a list and a mapping
    # (levels 2n - 2 and 2n - 1), so level 65 opens on line 33.
    assert "deep.yaml:33 (file): nested deeper than 64 levels" in result.stderr
    assert "Traceback" not in result.stderr
    result = plantstream("check", "-c", str(laughs))
    assert result.returncode == 2
    assert "laughs.yaml:1 (file): YAML anchor &a: anchors and aliases are not accepted" in result.stderr
    assert "Traceback" not in result.stderr


def test_check_refuses_binary_and_non_utf8_with_a_located_message(tmp_path: Path) -> None:
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"sites:\n  - id: \x00\x01\x02\n")
    result = plantstream("check", "-c", str(binary))
    assert result.returncode == 2
    assert "binary.yaml:2 (file): a NUL byte" in result.stderr


def test_check_refuses_numbers_that_are_not_finite_booleans_and_huge_integers(tmp_path: Path) -> None:
    bad = tmp_path / "plant.yaml"
    bad.write_text(
        DEMO.read_text()
        .replace("ideal_cycle_s: 2.4", "ideal_cycle_s: .inf", 1)
        .replace("  micro_stop_max_s: 30", "  micro_stop_max_s: true")
        .replace("    watchdog_s: 30\n", "    watchdog_s: 30\n    queue: {size: 99999999999999999999999}\n")
    )
    result = plantstream("check", "-c", str(bad))
    assert result.returncode == 2, result.stdout
    # All three in one run.
    assert "ideal_cycle_s: must be a finite number (.inf and .nan are not accepted)" in result.stderr
    assert "production.micro_stop_max_s: must be a number, not true or false" in result.stderr
    assert "sources[0].queue.size: must be <= 10000000" in result.stderr
    assert "3 problem(s)" in result.stderr


def test_check_refuses_a_tag_for_a_machine_the_plant_lacks(tmp_path: Path) -> None:
    bad = tmp_path / "plant.yaml"
    text = DEMO.read_text().replace(
        "machine: packer1, signal: cases_total", "machine: packer, signal: cases_total"
    )
    bad.write_text(text)
    result = plantstream("check", "-c", str(bad))
    assert result.returncode == 2
    line = text[: text.index("machine: packer,")].count("\n") + 1
    assert (
        f"plant.yaml:{line} sources[0].groups[0].tags[10].machine: tag "
        "nsu=urn:plantstream:simulator;s=packer1.cases_total: machine 'packer' is not in the plant "
        "(did you mean 'packer1'?)"
    ) in result.stderr


def test_check_warns_of_insecure_transport_and_literal_passwords_but_accepts(tmp_path: Path) -> None:
    risky = tmp_path / "plant.yaml"
    risky.write_text(
        DEMO.read_text().replace(
            "security: {mode: None, allow_insecure: true}",
            "security: {mode: None, allow_insecure: true, username: operator, password: hunter2}",
        )
    )
    result = plantstream("check", "-c", str(risky), env={"OPCUA_ENDPOINT": "opc.tcp://10.20.30.40:4840/"})
    assert result.returncode == 0, result.stderr
    assert "valid" in result.stdout
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning")]
    assert len(warnings) == 2, result.stderr
    assert "sources[0].security.mode: source line1-plc: OPC UA security None to 10.20.30.40" in warnings[0]
    assert "sources[0].security.password: password is written literally" in warnings[1]


def test_run_logs_the_security_warnings_at_start(tmp_path: Path) -> None:
    plant = tmp_path / "plant.yaml"
    plant.write_text(
        DEMO.read_text().replace(
            "security: {mode: None, allow_insecure: true}",
            "security: {mode: None, allow_insecure: true, username: operator, password: hunter2}",
        )
    )
    exe = shutil.which("plantstream", path=str(Path(sys.executable).parent))
    assert exe
    log = tmp_path / "stderr.log"
    # Nothing listens on the endpoint: the pipeline starts, logs, and keeps reconnecting until stopped.
    env = {**os.environ, "OPCUA_ENDPOINT": f"opc.tcp://127.0.0.1:{free_port()}/"}
    command = [
        exe,
        "run",
        "-c",
        str(plant),
        "--state-dir",
        str(tmp_path / "state"),
        "--http-port",
        str(free_port()),
    ]
    with log.open("w") as stderr:
        run = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr, env=env)
        try:
            seen = _wait_for_text(log, "password is written literally", run)
        finally:
            run.send_signal(signal.SIGTERM)
            run.wait(timeout=60)
    assert seen, log.read_text()
    assert "WARNING plantstream.plant: plant.yaml:" in log.read_text()
    assert "sources[0].security.password: password is written literally" in log.read_text()


def _wait_for_text(path: Path, text: str, process: subprocess.Popen[bytes]) -> bool:
    """Whether ``text`` appears in ``path`` while ``process`` runs (60 s at most, a safety net)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        if text in path.read_text():
            return True
        time.sleep(0.1)
    return text in path.read_text()


def stderr_on_a_terminal(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    """Run plantstream with stderr on a pseudo-terminal (stdout to /dev/null); its code and stderr."""
    import fcntl
    import pty
    import select
    import struct
    import termios

    exe = shutil.which("plantstream", path=str(Path(sys.executable).parent))
    assert exe
    controller, terminal = pty.openpty()
    # 40 rows of 200 columns: room for the bar's every column beside a long path.
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 200, 0, 0))
    # The terminal's own size, not one inherited from the test runner's environment.
    env = {k: v for k, v in (env or os.environ).items() if k not in ("COLUMNS", "LINES")}
    with subprocess.Popen(
        [exe, *args], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=terminal, env=env
    ) as process:
        os.close(terminal)
        chunks = []
        try:
            while select.select([controller], [], [], 120)[0]:
                try:
                    chunk = os.read(controller, 65536)
                except OSError:  # EIO: the command has ended and closed the terminal
                    break
                if not chunk:
                    break
                chunks.append(chunk)
        finally:
            os.close(controller)
            code = process.wait(timeout=60)
    return code, b"".join(chunks).decode(errors="replace")


def test_on_a_terminal_replay_shows_a_progress_bar_on_stderr() -> None:
    code, stderr = stderr_on_a_terminal(
        "replay", "-c", str(MINIMAL), "--readings", str(SHIFT), "--out", os.devnull
    )
    assert code == 0, stderr
    assert f"replay {SHIFT}" in stderr
    # The share done, of the file's size: 472,991 bytes, shown in kB with one decimal.
    assert SHIFT.stat().st_size == 472_991
    assert "/473.0 kB" in stderr
    assert "74.79%" in stderr  # the summary follows the bar
    quiet_code, quiet = stderr_on_a_terminal(
        "replay", "-c", str(MINIMAL), "--readings", str(SHIFT), "--out", os.devnull, "-q"
    )
    assert quiet_code == 0, quiet
    assert quiet == ""  # -q: neither a summary nor a bar


def test_off_a_terminal_replay_shows_no_progress_bar() -> None:
    result = plantstream("replay", "-c", str(MINIMAL), "--readings", str(SHIFT), "--out", os.devnull)
    assert result.returncode == 0, result.stderr
    assert f"replay {SHIFT}" not in result.stderr
    assert "\r" not in result.stderr
    assert "\x1b[" not in result.stderr


def test_on_a_terminal_report_cbam_shows_its_steps_and_off_one_its_table_is_whole(tmp_path: Path) -> None:
    steel = ROOT / "examples" / "steel-cbam.yaml"
    # Two days of hourly cumulative readings of the steel example's furnace and mill, from local
    # midnight of 2026-01-01 (17:00 UTC the day before, Asia/Ho_Chi_Minh).
    start = datetime(2025, 12, 31, 17, tzinfo=UTC)
    lines = [
        json.dumps({"ts": f"{start:%Y-%m-%dT%H:%M:%SZ}", "machine": m, "signal": "state", "value": "running"})
        for m in ("furnace", "mill")
    ]
    for hour in range(49):
        ts = f"{start + timedelta(hours=hour):%Y-%m-%dT%H:%M:%SZ}"
        for machine, signal_name, per_hour in (
            ("furnace", "gas", 300.0),
            ("furnace", "kwh", 50.0),
            ("mill", "good", 10),
            ("mill", "kwh", 800.0),
        ):
            value = per_hour * hour
            lines.append(json.dumps({"ts": ts, "machine": machine, "signal": signal_name, "value": value}))
    readings = tmp_path / "two-days.jsonl"
    readings.write_text("\n".join(lines) + "\n")
    state = tmp_path / "state"
    fed = plantstream(
        "replay",
        "-c",
        str(steel),
        "--readings",
        str(readings),
        "--out",
        os.devnull,
        "--state-dir",
        str(state),
    )
    assert fed.returncode == 0, fed.stderr
    # Two days of the year: under the completeness threshold, so reported as partial.
    args = (
        "report",
        "cbam",
        "-c",
        str(steel),
        "--year",
        "2026",
        "--state-dir",
        str(state),
        "--allow-partial",
    )
    code, stderr = stderr_on_a_terminal(*args, "--out", str(tmp_path / "on-a-terminal"))
    assert code == 0, stderr
    assert "report cbam 2026: reading the ledger" in stderr
    assert "report cbam 2026: signing" in stderr
    result = plantstream(*args, "--out", str(tmp_path / "in-a-pipe"))
    assert result.returncode == 0, result.stderr
    assert "report cbam 2026" not in result.stderr
    # Off a terminal the table is as wide as its rows: the good's name is not wrapped at 80 columns.
    [table_row] = [line for line in result.stdout.splitlines() if "73063077" in line]
    assert "Welded tube, circular, stainless excluded" in table_row


def test_replay_to_sinks_stopped_by_sigterm_keeps_the_outbox_and_leaves_no_output_file(
    tmp_path: Path,
) -> None:
    from services import free_port

    exe = shutil.which("plantstream", path=str(Path(sys.executable).parent))
    assert exe
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there: the sink retries
    env = {**os.environ, "INFLUX_URL": url, "INFLUX_ORG": "o", "INFLUX_BUCKET": "b", "INFLUX_TOKEN": "t"}
    state, out = tmp_path / "state", tmp_path / "points.jsonl"
    args = ["--readings", str(SHIFT), "--to-sinks", "--state-dir", str(state), "--out", str(out)]
    with subprocess.Popen(
        [exe, "replay", "-c", str(ROOT / "examples" / "influx.yaml"), *args, "--timeout", "600"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    ) as replay:
        assert replay.stderr is not None
        try:
            # The sink's first failed attempt: the replay is running, its handlers in place.
            assert "retrying" in replay.stderr.readline()
            replay.send_signal(signal.SIGTERM)
            assert replay.wait(timeout=60) == 143
            stderr = replay.stderr.read()
        finally:
            replay.kill()
    assert f"interrupted; nothing written to {out}; the points already handed to the sinks" in stderr
    assert not out.exists()
    assert (state / "outbox" / "influx.sqlite").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["state"]


def test_on_a_terminal_replay_to_sinks_says_how_many_lines_wait_while_it_delivers(tmp_path: Path) -> None:
    from services import free_port

    points = plantstream("replay", "-c", str(MINIMAL), "--readings", str(SHIFT), "-q").stdout.count("\n")
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there: every line waits
    env = {**os.environ, "INFLUX_URL": url, "INFLUX_ORG": "o", "INFLUX_BUCKET": "b", "INFLUX_TOKEN": "t"}
    args = ["--readings", str(SHIFT), "--to-sinks", "--state-dir", str(tmp_path), "--timeout", "1"]
    code, stderr = stderr_on_a_terminal(
        "replay", "-c", str(ROOT / "examples" / "influx.yaml"), *args, env=env
    )
    assert code == 1
    assert f"replay {SHIFT}: delivering, {points:,} line(s) waiting in the outbox" in stderr


def test_replay_refuses_a_reading_a_year_ahead_or_in_1970_and_writes_the_same_points(tmp_path: Path) -> None:
    # Row 1 of issue 13: one reading a year ahead made the engine fill every window in between
    # (1.2 million points, 1.5 GB). Now it is refused as a clock jump, the 1970 one as a bad time,
    # and the points are byte for byte those of the file without them.
    lines = SHIFT.read_text().splitlines()
    ahead = json.loads(lines[100]) | {"ts": "2027-03-02T08:05:00Z"}
    epoch = json.loads(lines[200]) | {"ts": "1970-01-01T00:00:00Z"}
    lines.insert(100, json.dumps(ahead))
    lines.insert(200, json.dumps(epoch))
    readings = tmp_path / "readings.jsonl"
    readings.write_text("\n".join(lines) + "\n")
    dead = tmp_path / "dead.jsonl"
    result = plantstream(
        "replay", "-c", str(MINIMAL), "--readings", str(readings), "--dead-letter", str(dead), "-q"
    )
    assert result.returncode == 0, result.stderr
    assert "readings.jsonl:101: clock_jump" in result.stderr
    assert "readings.jsonl:201: bad_time" in result.stderr
    refused = [json.loads(line) for line in dead.read_text().splitlines()]
    assert sorted((r["line"], r["reason"]) for r in refused) == [(101, "clock_jump"), (201, "bad_time")]
    clean = plantstream("replay", "-c", str(MINIMAL), "--readings", str(SHIFT), "-q")
    assert result.stdout == clean.stdout
