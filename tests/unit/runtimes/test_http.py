"""The HTTP endpoint names itself (``Server: plantstream/<version>``) and refuses a busy port;
``tail`` follows it, and nothing that does not name itself so."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

import pytest

from plantstream import __version__
from runtimes.http import HttpEndpoint, PortUnavailable, check_port
from runtimes.tail import Filters, NotAPipeline, follow
from streams.operator_reason import ReasonRefused, parse_request


def endpoint(port: int = 0) -> HttpEndpoint:
    return HttpEndpoint(lambda: (True, {"status": "ok"}), lambda: "m 1\n", port=port)


async def head(port: int, path: str) -> list[str]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\n\r\n".encode())
    lines = []
    while (line := await reader.readline()) not in (b"\r\n", b""):
        lines.append(line.decode().strip())
    writer.close()
    return lines


@pytest.mark.parametrize("path", ["/healthz", "/metrics", "/stream", "/elsewhere"])
async def test_every_answer_names_plantstream_and_its_version(path: str) -> None:
    async with endpoint() as http:
        lines = await head(http.port, path)
    assert f"Server: plantstream/{__version__}" in lines


async def test_a_busy_port_is_refused_with_the_port_and_the_reason() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(PortUnavailable) as refused:
            async with endpoint(port):
                pass
    assert refused.value.port == port
    assert "in use" in refused.value.reason


def test_the_first_look_at_the_port_calls_a_listening_port_busy_and_a_free_one_free() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(PortUnavailable, match=f"cannot serve on 127.0.0.1:{port}"):
            check_port(port)
    check_port(port)  # closed: free again
    check_port(0)  # any free port: nothing to look at


async def test_tail_follows_the_pipelines_stream() -> None:
    shown: list[dict[str, Any]] = []
    async with endpoint() as http:
        task = asyncio.create_task(
            follow(
                f"http://127.0.0.1:{http.port}/stream",
                Filters(),
                count=1,
                show=lambda record, _text: shown.append(record),
            )
        )
        while not http.listening:
            await asyncio.sleep(0.01)
        http.publish('{"ts": "2026-11-28T08:00:00Z", "machine": "m1", "signal": "state", "value": "idle"}')
        await asyncio.wait_for(task, 10)
    assert shown == [{"ts": "2026-11-28T08:00:00Z", "machine": "m1", "signal": "state", "value": "idle"}]


async def test_tail_shows_nothing_from_a_server_without_the_plantstream_name() -> None:
    async def other(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        writer.write(b'HTTP/1.1 200 OK\r\nServer: nginx\r\n\r\n{"ts": "2026-11-28T08:00:00Z"}\n')
        await writer.drain()
        writer.close()

    shown: list[str] = []
    entered: list[bool] = []

    class Display:
        async def __aenter__(self) -> None:
            entered.append(True)

        async def __aexit__(self, *_: object) -> None:
            pass

    server = await asyncio.start_server(other, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        with pytest.raises(NotAPipeline, match="Server: nginx, not Server: plantstream"):
            await follow(
                f"http://127.0.0.1:{port}/stream",
                Filters(),
                count=1,
                show=lambda _record, text: shown.append(text),
                around=Display,
            )
    assert shown == []
    assert entered == []  # a live table is not even drawn


async def post(port: int, head: str, body: bytes = b"") -> tuple[str, dict[str, Any]]:
    """Send a raw request; the status line and the JSON answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head.encode() + b"\r\n" + body)
    await writer.drain()
    status = (await reader.readline()).decode().strip()
    while (await reader.readline()) not in (b"\r\n", b""):
        pass
    answer = json.loads(await reader.read())
    writer.close()
    return status, answer


async def test_post_reason_takes_a_bounded_body_and_counts_every_answer() -> None:
    taken: list[bytes] = []

    async def on_reason(body: bytes) -> tuple[int, dict[str, Any]]:
        try:
            request = parse_request(body)
        except ReasonRefused as exc:
            return 400, {"error": exc.reason, "message": str(exc)}
        taken.append(body)
        return 202, {"machine": request.machine}

    good = b'{"machine": "m1", "at": "2026-03-02T08:01:30Z", "reason": 12}'
    async with HttpEndpoint(lambda: (True, {}), lambda: "", port=0, on_reason=on_reason) as http:
        cases = [
            (f"POST /reason HTTP/1.1\r\nContent-Length: {len(good)}\r\n", good, "202", None),
            ("POST /reason HTTP/1.1\r\nContent-Length: 9\r\n", b"not json!", "400", "bad_json"),
            ("POST /reason HTTP/1.1\r\nContent-Length: 2\r\n", b"[]", "400", "bad_json"),
            ("POST /reason HTTP/1.1\r\n", b"{}", "411", "no_length"),
            ("POST /reason HTTP/1.1\r\nContent-Length: -1\r\n", b"{}", "411", "no_length"),
            (
                "POST /reason HTTP/1.1\r\nTransfer-Encoding: chunked\r\n",
                b"2\r\n{}\r\n0\r\n\r\n",
                "411",
                "no_length",
            ),
            ("POST /reason HTTP/1.1\r\nContent-Length: 4097\r\n", b"", "413", "too_large"),
        ]
        for head_text, body, status, error in cases:
            line, answer = await post(http.port, head_text, body)
            assert f" {status} " in f"{line} ", (head_text, line)
            assert answer.get("error") == error
        # A GET of /reason is no reason: the paths of GET are unchanged.
        assert " 404 " in (await head(http.port, "/reason"))[0]
    assert taken == [good]
    assert http.posts == {"accepted": 1, "bad_json": 2, "no_length": 3, "too_large": 1}


async def test_without_a_handler_a_post_is_refused_as_before() -> None:
    async with endpoint() as http:
        reader, writer = await asyncio.open_connection("127.0.0.1", http.port)
        writer.write(b"POST /reason HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}")
        status = (await reader.readline()).decode()
        writer.close()
    assert " 405 " in status
    assert http.posts == {}
