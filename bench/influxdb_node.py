"""InfluxDB OSS 1.12 on a loopback port: the v2 write API, Flux and InfluxQL, for tests and benches.

``scripts/build-influxd`` builds ``influxd`` once from its Go module into
``~/.cache/plantstream/influxdb-1.12.2/`` (scripts/test runs it); :class:`InfluxNode` starts it on
a free port with its own data directory and Flux on, with HTTP authentication off or on.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar
from urllib.error import HTTPError
from urllib.parse import urlencode
from urllib.request import Request, urlopen

from bench.common import start_child
from bench.kafka_node import free_port

__all__ = ["INFLUXD", "InfluxNode", "InfluxUnavailable", "QueryFailed"]

INFLUXD = Path.home() / ".cache" / "plantstream" / "influxdb-1.12.2" / "influxd"
"""InfluxDB OSS 1.12, built from its Go module by scripts/build-influxd (scripts/test runs it)."""


_FORM = "application/x-www-form-urlencoded"


class QueryFailed(RuntimeError):
    """The server answered a query or statement with an HTTP error (the message has its text)."""


class InfluxUnavailable(RuntimeError):
    """influxd is not built here, or did not start (the message says why)."""


@dataclass
class InfluxNode:
    """InfluxDB OSS 1.12 with the v2 compatibility API (``/api/v2/write``, Flux on ``/api/v2/query``).

    The bucket ``plantstream`` is the database ``plantstream`` (made at start) with its default
    retention policy; the organisation is ignored. With ``auth``, HTTP authentication is on and the
    token is ``user:password`` of the admin made at start; without it any token is accepted.
    """

    port: int
    directory: Path
    auth: bool = False
    process: subprocess.Popen[bytes] | None = None
    admin_made: bool = False

    USER: ClassVar[str] = "plantstream"
    PASSWORD: ClassVar[str] = "test-password"  # a throwaway server on loopback
    DATABASE: ClassVar[str] = "plantstream"

    @property
    def url(self) -> str:
        """The HTTP base URL."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def token(self) -> str:
        """The token a client sends (``Authorization: Token user:password``); anything without auth."""
        return f"{self.USER}:{self.PASSWORD}" if self.auth else "no-auth"

    def start(self) -> None:
        """Start it (again, on the same data, after :meth:`stop`) and make the admin and database."""
        if not INFLUXD.exists():
            raise InfluxUnavailable(f"{INFLUXD} is missing: scripts/build-influxd builds it")
        config = self.directory / "influxdb.conf"
        config.write_text(
            "reporting-disabled = true\n"
            f'bind-address = "127.0.0.1:{free_port()}"\n'  # the backup service's port
            f'[meta]\n  dir = "{self.directory / "influx-meta"}"\n'
            f'[data]\n  dir = "{self.directory / "influx-data"}"\n'
            f'  wal-dir = "{self.directory / "influx-wal"}"\n'
            "  query-log-enabled = false\n"
            "[http]\n"
            f'  bind-address = "127.0.0.1:{self.port}"\n'
            f"  auth-enabled = {'true' if self.auth else 'false'}\n"
            "  flux-enabled = true\n"
            "  log-enabled = false\n"
            "[monitor]\n  store-enabled = false\n"
            "[continuous_queries]\n  enabled = false\n",
            encoding="utf-8",
        )
        log = self.directory / "influxd.log"
        with log.open("ab") as out:
            self.process = start_child([str(INFLUXD), "-config", str(config)], stdout=out, stderr=out)
        deadline = time.monotonic() + 60
        while not self._answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise InfluxUnavailable(f"influxd did not start: {log.read_text()[-2000:]}")
            time.sleep(0.05)
        try:
            if not self.admin_made:
                # The first admin is made without credentials, even with authentication on.
                statement = f"CREATE USER {self.USER} WITH PASSWORD '{self.PASSWORD}' WITH ALL PRIVILEGES"
                self.influxql(statement, as_admin=False)
                self.admin_made = True
            self.influxql(f"CREATE DATABASE {self.DATABASE}")
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """A graceful stop; :meth:`start` again goes on with the same data."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)
        self.process = None

    def influxql(self, statement: str, *, as_admin: bool = True) -> dict[str, object]:
        """Run one InfluxQL statement on ``/query`` (as the admin when authentication is on).

        Raises:
            InfluxUnavailable: when the server answers with an error for the statement.
        """
        credentials = {"u": self.USER, "p": self.PASSWORD} if self.auth and as_admin else {}
        body = urlencode({"q": statement, **credentials}).encode()
        answer = dict(json.loads(self._request("/query", body, _FORM, as_admin, accept="application/json")))
        results = answer.get("results", [])
        errors = (
            [r["error"] for r in results if isinstance(r, dict) and "error" in r]
            if isinstance(results, list)
            else []
        )
        if errors:
            shown = statement.partition(" PASSWORD ")[0]  # never the password
            raise InfluxUnavailable(f"influxd refused {shown!r}: {errors[0]}")
        return answer

    def flux(self, query: str) -> list[dict[str, object]]:
        """The rows of a Flux query, each column -> value, typed by the CSV's datatype annotation.

        Numbers are floats, booleans bools, times and strings text; an empty cell is ``None``.
        """
        body = json.dumps({"query": query, "type": "flux", "dialect": {"annotations": ["datatype"]}})
        text = self._request("/api/v2/query", body.encode(), "application/json").decode()
        rows: list[dict[str, object]] = []
        types: list[str] = []
        header: list[str] | None = None
        for record in csv.reader(io.StringIO(text)):
            if not record or all(cell == "" for cell in record):
                header = None  # a blank line ends a table
            elif record[0] == "#datatype":
                types, header = record, None  # a new table: its types, then its header
            elif header is None:
                header = record
            else:
                cells = zip(header, record, types, strict=True)
                rows.append({name: _typed(value, kind) for name, value, kind in cells if name})
        return rows

    def _answers(self) -> bool:
        try:
            with urlopen(f"{self.url}/ping", timeout=5) as response:
                return int(response.status) == 204
        except OSError:
            return False

    def _request(
        self,
        path: str,
        body: bytes,
        content_type: str,
        as_admin: bool = True,
        accept: str = "application/csv",
    ) -> bytes:
        headers = {"Content-Type": content_type, "Accept": accept}
        if self.auth and as_admin:
            headers["Authorization"] = f"Token {self.token}"
        try:
            with urlopen(Request(f"{self.url}{path}", data=body, headers=headers), timeout=60) as response:
                return bytes(response.read())
        except HTTPError as exc:
            raise QueryFailed(
                f"HTTP {exc.code} from {path}: {exc.read().decode(errors='replace')[:2000]}"
            ) from None


def _typed(text: str, kind: str) -> object:
    """A cell of Flux's annotated CSV as a value of its datatype (``kind``)."""
    if text == "":
        return None
    if kind in ("long", "unsignedLong", "double"):
        return float(text)
    if kind == "boolean":
        return text == "true"
    return text
