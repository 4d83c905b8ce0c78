"""Real components the tests start themselves, on free loopback ports (imported as ``services``)."""

from __future__ import annotations

import getpass
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _mosquitto_binary() -> str:
    found = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
    )
    if found is None:
        pytest.fail(
            "mosquitto is not installed: apt-get install mosquitto mosquitto-clients (scripts/test does it)"
        )
    return found


@dataclass
class Broker:
    """A Mosquitto process we can stop and start again on the same port, keeping its persistence."""

    port: int
    directory: Path
    tls_port: int | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        config = self.directory / "mosquitto.conf"
        lines = [
            # As root, mosquitto would drop to its own user and could not read the test's files.
            f"user {getpass.getuser()}",
            "persistence true",
            f"persistence_location {self.directory}/",
            "autosave_interval 1",
            "max_queued_messages 100000",
            "allow_anonymous true",
            f"listener {self.port} 127.0.0.1",
        ]
        if self.tls_port is not None:
            lines += [
                f"listener {self.tls_port} 127.0.0.1",
                f"cafile {self.directory / 'ca.pem'}",
                f"certfile {self.directory / 'server.pem'}",
                f"keyfile {self.directory / 'server.key'}",
            ]
        config.write_text("\n".join(lines) + "\n")
        with (self.directory / "mosquitto.log").open("ab") as log:
            self.process = subprocess.Popen([_mosquitto_binary(), "-c", str(config)], stdout=log, stderr=log)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                if self.process.poll() is not None:
                    break
                time.sleep(0.05)
        raise RuntimeError(
            f"mosquitto did not start: {(self.directory / 'mosquitto.log').read_text()[-2000:]}"
        )

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None

    def publish(self, topic: str, payload: str, qos: int = 1) -> None:
        """Publish with the mosquitto_pub client (an independent publisher)."""
        client = shutil.which("mosquitto_pub")
        if client is None:
            pytest.fail("mosquitto_pub is not installed: apt-get install mosquitto-clients")
        subprocess.run(
            [client, "-h", "127.0.0.1", "-p", str(self.port), "-t", topic, "-m", payload, "-q", str(qos)],
            check=True,
            timeout=10,
        )


@dataclass
class OpcUaTestServer:
    """tests/opcua_test_server.py as a process: start, stop, restart on the same port, pause."""

    port: int
    late_node: bool = False
    secure_dir: Path | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"opc.tcp://127.0.0.1:{self.port}/"

    def start(self) -> None:
        import sys

        script = Path(__file__).with_name("opcua_test_server.py")
        args = [sys.executable, str(script), str(self.port)] + (["--late-node"] if self.late_node else [])
        if self.secure_dir is not None:
            args += ["--secure", str(self.secure_dir)]
        self.process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if b"ready" not in line:
            raise RuntimeError("the OPC UA test server did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        if self.process is not None and self.process.stdout is not None:
            self.process.stdout.close()
        self.process = None

    def pause(self) -> None:
        import signal

        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        import signal

        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)
