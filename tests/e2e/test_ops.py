"""Process-level safety through the installed command: one pipeline per state directory, a busy
HTTP port stops ``run`` at start, ``tail`` follows only a plantstream pipeline."""

from __future__ import annotations

import http.server
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from services import free_port

from plantstream import __version__
from runtimes.statedir import LOCK_FILE

ROOT = Path(__file__).resolve().parents[2]
MINIMAL = ROOT / "examples" / "minimal.yaml"
pytestmark = pytest.mark.e2e


def exe() -> str:
    found = shutil.which("plantstream", path=str(Path(sys.executable).parent))
    assert found, "the plantstream console script is not installed in this environment"
    return found


def plantstream(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([exe(), *args], capture_output=True, text=True, check=False, timeout=120)


def wait_for_lock_holder(state: Path, process: subprocess.Popen[str]) -> None:
    """Until the first process has written its PID into the lock file (it holds the lock then)."""
    deadline = time.monotonic() + 60
    lock = state / LOCK_FILE
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[1]
        if lock.exists() and lock.read_text().strip() == str(process.pid):
            return
        time.sleep(0.05)
    raise AssertionError("the first pipeline never took the state directory's lock")


def start_run(state: Path) -> subprocess.Popen[str]:
    """A `plantstream run` of examples/minimal.yaml (no sources) on ``state``, holding its lock."""
    process = subprocess.Popen(
        [exe(), "run", "-c", str(MINIMAL), "--state-dir", str(state), "--http-port", "0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_lock_holder(state, process)
    except BaseException:
        process.kill()
        process.communicate(timeout=60)
        raise
    return process


@pytest.fixture
def first_run(tmp_path: Path) -> Iterator[tuple[Path, subprocess.Popen[str]]]:
    """A `plantstream run` of examples/minimal.yaml (no sources) holding tmp_path/state."""
    state = tmp_path / "state"
    process = start_run(state)
    try:
        yield state, process
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=60)


def test_a_second_pipeline_on_the_same_state_directory_exits_2_naming_it_and_the_holder(
    first_run: tuple[Path, subprocess.Popen[str]],
) -> None:
    state, first = first_run
    second = plantstream("run", "-c", str(MINIMAL), "--state-dir", str(state), "--http-port", "0")
    assert second.returncode == 2, second.stderr
    assert f"{state} is in use by another plantstream (PID {first.pid})" in second.stderr
    assert len(second.stderr.strip().splitlines()) == 1
    # replay --state-dir writes a CBAM ledger there: refused the same way, before reading anything.
    steel = ROOT / "examples" / "steel-cbam.yaml"
    replay = plantstream("replay", "-c", str(steel), "--readings", "-", "--state-dir", str(state))
    assert replay.returncode == 2
    assert f"PID {first.pid}" in replay.stderr


def test_the_state_directory_is_free_again_once_its_pipeline_has_stopped(tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = start_run(state)
    first.kill()  # the kernel releases the lock however the holder ends: no stale lock
    first.communicate(timeout=60)
    second = start_run(state)  # it takes the lock
    second.send_signal(signal.SIGTERM)
    second.communicate(timeout=60)


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A loopback port held by a plain listening socket."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        yield busy.getsockname()[1]


def test_a_busy_http_port_stops_run_at_start_naming_the_port_and_both_settings(
    tmp_path: Path, busy_port: int
) -> None:
    state = tmp_path / "state"
    result = plantstream("run", "-c", str(MINIMAL), "--state-dir", str(state), "--http-port", str(busy_port))
    assert result.returncode == 2, result.stderr
    assert f"port {busy_port} for /healthz, /metrics and /stream" in result.stderr
    assert "--http-port N or http: {port: N} in the plant file" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (state / "checkpoint.json").exists()


def test_the_plant_files_http_port_is_used_when_no_option_is_given(tmp_path: Path, busy_port: int) -> None:
    plant = tmp_path / "plant.yaml"
    plant.write_text(MINIMAL.read_text() + f"\nhttp: {{port: {busy_port}}}\n")
    result = plantstream("run", "-c", str(plant), "--state-dir", str(tmp_path / "state"))
    assert result.returncode == 2, result.stderr
    assert f"port {busy_port} for /healthz" in result.stderr


class _Other(http.server.BaseHTTPRequestHandler):
    """Some other web server: answers 200 with a JSON line, as a stream would."""

    def do_GET(self) -> None:
        body = b'{"ts": "2026-01-01T00:00:00Z", "machine": "m1", "signal": "state", "value": "running"}\n'
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def other_server() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Other)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("mode", [[], ["--json"], ["--table"]])
def test_tail_prints_nothing_from_a_server_that_is_not_a_pipeline(other_server: int, mode: list[str]) -> None:
    url = f"http://127.0.0.1:{other_server}/stream"
    result = plantstream("tail", "--url", url, "--count", "1", *mode)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert f"{url} is not a plantstream pipeline" in result.stderr
    assert "Server: BaseHTTP" in result.stderr
    assert "Traceback" not in result.stderr


def test_tail_refuses_a_server_that_does_not_speak_http() -> None:
    """A socket that answers with another protocol's greeting: exit 2, not a hang or a traceback."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]

        def answer_garbage() -> None:
            connection, _ = silent.accept()
            with connection:
                connection.sendall(b"SSH-2.0-OpenSSH_9.6\r\n")

        threading.Thread(target=answer_garbage, daemon=True).start()
        result = plantstream("tail", "--url", f"http://127.0.0.1:{port}/stream", "--count", "1")
    assert result.returncode == 2, result.stderr
    assert "does not speak HTTP" in result.stderr
    assert result.stdout == ""


BOUND = ("--dead-letter-max-mb", "1")


def test_run_names_itself_and_reports_the_dead_letter_bound_it_was_given(tmp_path: Path) -> None:
    state = tmp_path / "state"
    port = free_port()
    process = subprocess.Popen(
        [exe(), "run", "-c", str(MINIMAL), "--state-dir", str(state), "--http-port", str(port), *BOUND],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_lock_holder(state, process)
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
                    server, metrics = answer.headers["Server"], answer.read().decode()
                break
            except OSError:
                assert time.monotonic() < deadline, "the pipeline never served /metrics"
                time.sleep(0.1)
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=60)
    assert server == f"plantstream/{__version__}"
    assert "plantstream_dead_letter_folder_max_bytes 1048576" in metrics  # 1 MiB = 1024 * 1024 bytes
    assert 'plantstream_dead_letters_dropped_total{policy="drop_oldest"} 0' in metrics
