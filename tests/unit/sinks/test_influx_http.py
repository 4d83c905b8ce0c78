"""The v2 write request (sinks/influx_http.py) against a local server that answers well and badly."""

from __future__ import annotations

import gzip
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar
from urllib.parse import parse_qs, urlsplit

import pytest
import urllib3.exceptions

from plantstream.plant.schema import InfluxDbSink
from plantstream.records import DeadLetter, Point
from sinks.influx import InfluxSink
from sinks.influx_http import WriteApi, WriteRefused, message_of

Answer = Callable[["_Handler"], None]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as InfluxDB answers
    answer: ClassVar[Answer]
    requests: ClassVar[list[tuple[str, dict[str, list[str]], dict[str, str], bytes]]]
    connections: ClassVar[set[int]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        parts = urlsplit(self.path)
        headers = {key.lower(): value for key, value in self.headers.items()}
        self.requests.append((parts.path, parse_qs(parts.query), headers, body))
        self.connections.add(id(self.connection))
        type(self).answer(self)

    def reply(self, status: int, body: bytes = b"", **headers: str) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, *_: object) -> None:
        pass  # the client closing a half-read answer is what a test wants, not a failure


@pytest.fixture
def server() -> Iterator[tuple[str, type[_Handler]]]:
    handler: type[_Handler] = type("Handler", (_Handler,), {"requests": [], "connections": set()})
    handler.answer = lambda request: request.reply(204)
    httpd = _QuietServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", handler
    httpd.shutdown()
    httpd.server_close()


def api(url: str, *, compress: bool = True, timeout_s: float = 10.0) -> WriteApi:
    return WriteApi(url, "s3cret", "plant", "raw data", timeout_s=timeout_s, compress=compress)


def test_a_write_posts_the_lines_gzipped_with_token_org_bucket_and_precision(
    server: tuple[str, type[_Handler]],
) -> None:
    url, handler = server
    write = api(url + "/influx/")  # a path prefix (a reverse proxy) is kept; the trailing / is not doubled
    write(b"m v=1 1\nm v=2 2", "s")
    write(b"m v=3 3", "ms")
    write.close()
    (path, query, headers, body), second = handler.requests
    assert path == "/influx/api/v2/write"
    assert query == {"org": ["plant"], "bucket": ["raw data"], "precision": ["s"]}
    assert headers["authorization"] == "Token s3cret"
    assert headers["content-encoding"] == "gzip"
    assert headers["content-type"] == "text/plain; charset=utf-8"
    assert gzip.decompress(body) == b"m v=1 1\nm v=2 2"
    assert second[1]["precision"] == ["ms"]
    assert len(handler.connections) == 1  # the connection is kept alive between writes


def test_without_compression_the_body_goes_as_it_is(server: tuple[str, type[_Handler]]) -> None:
    url, handler = server
    write = api(url, compress=False)
    write(b"m v=1 1", "ns")
    write.close()
    _, _, headers, body = handler.requests[0]
    assert "content-encoding" not in headers
    assert body == b"m v=1 1"


def test_a_refusal_carries_status_the_json_message_and_retry_after(
    server: tuple[str, type[_Handler]],
) -> None:
    url, handler = server
    handler.answer = lambda request: request.reply(
        429, b'{"code":"too many requests","message":"slow\\n  down"}', Retry_After="7"
    )
    write = api(url)
    with pytest.raises(WriteRefused) as refused:
        write(b"m v=1 1", "s")
    write.close()
    assert (refused.value.status, refused.value.message, refused.value.retry_after) == (429, "slow down", "7")
    assert str(refused.value) == "HTTP 429: slow down"


def test_a_huge_error_body_is_read_only_in_part_and_the_next_write_gets_a_fresh_connection(
    server: tuple[str, type[_Handler]],
) -> None:
    url, handler = server
    handler.answer = lambda request: request.reply(400, b"x" * 4_000_000)
    write = api(url)
    with pytest.raises(WriteRefused) as refused:
        write(b"m v=1 1", "s")
    assert refused.value.message == "x" * 1_000
    handler.answer = lambda request: request.reply(204)
    write(b"m v=1 1", "s")  # the half-read answer's connection was closed, not reused
    write.close()
    assert len(handler.connections) == 2


def test_a_redirect_is_not_followed_and_says_where_it_points(server: tuple[str, type[_Handler]]) -> None:
    url, handler = server
    handler.answer = lambda request: request.reply(307, Location="https://elsewhere:8086/api/v2/write")
    write = api(url)
    with pytest.raises(WriteRefused) as refused:
        write(b"m v=1 1", "s")
    write.close()
    assert refused.value.status == 307
    assert "redirected to https://elsewhere:8086/api/v2/write" in refused.value.message
    assert len(handler.requests) == 1


def test_a_server_that_stalls_times_out_and_one_that_answers_garbage_is_a_protocol_error() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    accepted: list[socket.socket] = []

    def serve(reply: bytes | None) -> None:
        peer, _ = listener.accept()
        accepted.append(peer)
        peer.recv(65536)
        if reply is not None:
            peer.sendall(reply)
            peer.close()

    for reply, error in (
        (None, urllib3.exceptions.ReadTimeoutError),  # reads the request, never answers
        (b"\x00\xffnot http at all\r\n\r\n", urllib3.exceptions.ProtocolError),
    ):
        thread = threading.Thread(target=serve, args=(reply,))
        thread.start()
        write = api(url, timeout_s=0.2)
        with pytest.raises(error):
            write(b"m v=1 1", "s")
        write.close()
        thread.join()
    for peer in accepted:
        peer.close()
    listener.close()


def test_a_refused_connection_is_an_os_level_error() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
    write = api(f"http://127.0.0.1:{port}")
    with pytest.raises((urllib3.exceptions.HTTPError, OSError)):
        write(b"m v=1 1", "s")
    write.close()


@pytest.mark.parametrize(
    ("body", "reason", "expected"),
    [
        (b'{"code":"invalid","message":"unable to parse \'m v=\'"}', "Bad Request", "unable to parse 'm v='"),
        (b"<html>proxy\r\nerror</html>", "Bad Gateway", "<html>proxy error</html>"),
        (b'{"code":"invalid"}', "Bad Request", '{"code":"invalid"}'),
        (b'["a list"]', "Bad Request", '["a list"]'),
        (b"", "Service Unavailable", "Service Unavailable"),
        (b"\xff\xfe broken utf-8", "", "\ufffd\ufffd broken utf-8"),
    ],
)
def test_the_message_of_a_refusal(body: bytes, reason: str, expected: str) -> None:
    assert message_of(body, reason) == expected


async def test_a_redirect_keeps_the_lines_for_a_fixed_url_instead_of_dead_lettering_them(
    server: tuple[str, type[_Handler]], tmp_path: Path
) -> None:
    url, handler = server
    handler.answer = lambda request: request.reply(301, Location="https://influx.example/")
    letters: list[DeadLetter] = []
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 2:
            handler.answer = lambda request: request.reply(204)

    settings = InfluxDbSink(type="influxdb", url=url, org="plant", bucket="b", token_env="TOKEN")
    sink = InfluxSink(settings, tmp_path, on_dead_letter=letters.append, environ={"TOKEN": "t"}, sleep=sleep)
    async with sink:
        await sink.submit(
            [Point(measurement="m", tags={}, fields={"v": 1}, time=datetime(2026, 3, 2, tzinfo=UTC))]
        )
        assert await sink.drain(30)
    assert letters == []
    assert dict(sink.health.errors) == {"config": 2}
    assert sink.health.written == 1
    assert len(handler.requests) == 3


def test_the_pipeline_does_not_import_influxdb_client() -> None:
    # Its import alone cost the running pipeline about 9.5 MiB and 500 modules (issue 18).
    probe = (
        "import sys, runtimes.embedded, runtimes.kafka.sink; "
        "print(sorted({name.split('.')[0] for name in sys.modules}))"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert "'sinks'" in loaded
    assert "influxdb_client" not in loaded
