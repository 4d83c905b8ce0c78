"""The HTTP endpoint names itself (``Server: plantstream/<version>``) and refuses a busy port;
``tail`` follows it, and nothing that does not name itself so."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from plantstream import __version__
from runtimes.http import HttpEndpoint, PortUnavailable, check_port
from runtimes.tail import Filters, NotAPipeline, follow


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
