"""InfluxSink with a scripted writer in place of HTTP: batching, retries, splitting, back-pressure.

The real client against real servers is tested in tests/component/test_influx.py; here one class
is driven through every branch with answers chosen per request.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from plantstream.plant.schema import InfluxDbSink
from plantstream.records import DeadLetter, Point
from sinks.influx import InfluxSink, SinkConfigError, retry_after_s
from sinks.influx_http import WriteRefused

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
ENV = {"INFLUX_TOKEN": "secret"}


def settings(**overrides: object) -> InfluxDbSink:
    base: dict[str, object] = {
        "type": "influxdb",
        "id": "influx",
        "url": "http://127.0.0.1:1",
        "org": "o",
        "bucket": "b",
        "token_env": "INFLUX_TOKEN",
        "batch_size": 3,
        "flush_interval_s": 0.05,
    }
    return InfluxDbSink.model_validate(base | overrides)


def points(n: int, measurement: str = "oee", start: int = 0) -> list[Point]:
    return [
        Point(
            measurement=measurement, tags={"machine": "m1"}, fields={"v": i}, time=T0 + timedelta(minutes=i)
        )
        for i in range(start, start + n)
    ]


def http_error(status: int, message: str = "no", retry_after: str | None = None) -> WriteRefused:
    return WriteRefused(status, message, retry_after)


class Script:
    """A writer whose answer to each request is chosen by ``answer(lines)``; records every request."""

    def __init__(self, answer: Callable[[list[bytes]], Exception | None] = lambda _: None) -> None:
        self.answer = answer
        self.requests: list[tuple[str, list[bytes]]] = []
        self.accepted: list[bytes] = []

    def __call__(self, body: bytes, precision: str) -> None:
        lines = body.split(b"\n")
        self.requests.append((precision, lines))
        error = self.answer(lines)
        if error is not None:
            raise error
        self.accepted.extend(lines)


def make(
    tmp_path: Path, script: Script, **overrides: object
) -> tuple[InfluxSink, list[DeadLetter], list[float]]:
    letters: list[DeadLetter] = []
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        await asyncio.sleep(0)

    sink = InfluxSink(
        settings(**overrides),
        tmp_path,
        on_dead_letter=letters.append,
        environ=ENV,
        writer=script,
        sleep=sleep,
        rng=random.Random(1),
    )
    return sink, letters, waits


async def until(condition: Callable[[], bool]) -> None:
    for _ in range(2000):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition not reached")


async def test_full_batches_go_at_once_and_the_rest_after_the_interval(tmp_path: Path) -> None:
    script = Script()
    sink, _, _ = make(tmp_path, script)
    async with sink:
        await sink.submit(points(7))
        await until(lambda: len(script.accepted) == 7)
    assert [len(lines) for _, lines in script.requests] == [3, 3, 1]
    assert script.requests[0] == (
        "s",
        [f"oee,machine=m1 v={i}i {1772438400 + 60 * i}".encode() for i in range(3)],
    )
    assert sink.health.written == 7
    assert sink.outbox.lines == 0


async def test_each_measurement_is_sent_at_its_precision(tmp_path: Path) -> None:
    script = Script()
    sink, _, _ = make(tmp_path, script, precision={"default": "s", "reading": "ms"}, batch_size=10)
    async with sink:
        await sink.submit(points(1, "reading") + points(1, "oee") + points(1, "reading", start=1))
        await until(lambda: len(script.accepted) == 3)
    assert sorted((p, len(lines)) for p, lines in script.requests) == [("ms", 2), ("s", 1)]
    [(_, ms_lines)] = [r for r in script.requests if r[0] == "ms"]
    assert ms_lines[0].endswith(b" 1772438400000")


async def test_outages_are_retried_with_growing_waits_and_retry_after_is_honoured(tmp_path: Path) -> None:
    answers: list[Exception | None] = [
        OSError("connection refused"),
        http_error(503, "unavailable"),
        http_error(429, "slow down", retry_after="7"),
        http_error(500, "oops"),
        None,
    ]
    script = Script(lambda _: answers.pop(0))
    sink, letters, waits = make(tmp_path, script, batch_size=2)
    async with sink:
        await sink.submit(points(2))
        await until(lambda: len(script.accepted) == 2)
    assert len(script.requests) == 5
    assert waits[2] == 7.0  # the Retry-After value itself
    # Back-off without Retry-After: equal jitter in [c/2, c] with c = 0.5, 1, (7: Retry-After), 4 s.
    assert 0.25 <= waits[0] <= 0.5
    assert 0.5 <= waits[1] <= 1.0
    assert 2.0 <= waits[3] <= 4.0
    assert dict(sink.health.errors) == {"connection": 1, "server": 2, "throttled": 1}
    assert letters == []
    assert sink.health.connected


async def test_a_bad_token_keeps_the_data_and_retries(tmp_path: Path) -> None:
    answers: list[Exception | None] = [
        http_error(401, "unauthorized"),
        http_error(404, "bucket not found"),
        None,
    ]
    script = Script(lambda _: answers.pop(0))
    sink, letters, _ = make(tmp_path, script, batch_size=1)
    async with sink:
        await sink.submit(points(1))
        await until(lambda: len(script.accepted) == 1)
    assert letters == []
    assert sink.health.errors["config"] == 2


async def test_rejected_lines_are_isolated_and_dead_lettered_the_rest_delivered(tmp_path: Path) -> None:
    def answer(lines: list[bytes]) -> Exception | None:
        bad = [line for line in lines if b" v=3i " in line or b" v=6i " in line]
        return http_error(400, f"unable to parse '{bad[0].decode()}'") if bad else None

    script = Script(answer)
    sink, letters, _ = make(tmp_path, script, batch_size=8)
    async with sink:
        await sink.submit(points(8))
        await until(lambda: sink.outbox.lines == 0)
    assert sorted(script.accepted) == sorted(
        line for line in sink_lines(points(8)) if b" v=3i " not in line and b" v=6i " not in line
    )
    assert [letter.raw for letter in letters] == [
        sink_lines(points(8))[3].decode(),
        sink_lines(points(8))[6].decode(),
    ]
    assert letters[0].reason == "rejected"
    assert letters[0].source == "sink:influx"
    assert letters[0].error.startswith("HTTP 400: unable to parse 'oee,machine=m1 v=3i")
    assert sink.health.dead_letters == 2
    # 8 lines, 2 bad: the whole batch, 2 halves, 4 quarters, 2 single lines of the bad quarters.
    assert len(script.requests) == 1 + 2 + 4 + 4


async def test_the_accept_hook_sees_exactly_the_accepted_bodies_with_their_precision(tmp_path: Path) -> None:
    def answer(lines: list[bytes]) -> Exception | None:
        return http_error(400, "unable to parse") if any(b" v=3i " in line for line in lines) else None

    script = Script(answer)
    sink, _, _ = make(tmp_path, script, batch_size=8)
    seen: list[tuple[bytes, str, float]] = []
    sink.on_accepted = lambda body, precision, wall: seen.append((body, precision, wall))
    async with sink:
        await sink.submit(points(8))
        await until(lambda: sink.outbox.lines == 0)
    hooked = [line for body, _, _ in seen for line in body.split(b"\n")]
    assert sorted(hooked) == sorted(script.accepted)  # the rejected line (v=3) never reaches it
    assert len(hooked) == 7
    assert {precision for _, precision, _ in seen} == {"s"}
    assert all(wall > 0 for _, _, wall in seen)


async def test_a_rejected_line_is_isolated_across_chunks_of_a_batch(tmp_path: Path) -> None:
    def answer(lines: list[bytes]) -> Exception | None:
        return http_error(400, "bad") if any(b" v=5i " in line for line in lines) else None

    script = Script(answer)
    sink, letters, _ = make(tmp_path, script, batch_size=8)
    # Three submits of 3 lines: three chunks, of which the first two (6 lines) make one batch.
    await sink.submit(points(3))
    await sink.submit(points(3, start=3))
    await sink.submit(points(3, start=6))
    assert [c.lines for c in sink.outbox.peek(8)] == [3, 3]
    async with sink:
        await until(lambda: sink.outbox.lines == 0)
    expected = sink_lines(points(9))
    assert [letter.raw for letter in letters] == [expected[5].decode()]
    assert sorted(script.accepted) == sorted(expected[:5] + expected[6:])
    # The batch of 6 lines, its halves of 3 (0-2 good, 3-5 bad), 1 + 2 lines, 1 + 1 lines; then 6-8.
    assert [len(lines) for _, lines in script.requests] == [6, 3, 3, 1, 2, 1, 1, 3]


async def test_a_submit_larger_than_a_batch_is_stored_in_chunks_of_a_batch(tmp_path: Path) -> None:
    script = Script()
    sink, _, _ = make(tmp_path, script, batch_size=3)
    await sink.submit(points(7))
    assert [c.lines for c in sink.outbox.peek(100)] == [3, 3, 1]
    async with sink:
        await until(lambda: len(script.accepted) == 7)
    assert script.accepted == sink_lines(points(7))
    assert [len(lines) for _, lines in script.requests] == [3, 3, 1]


def sink_lines(pts: list[Point]) -> list[bytes]:
    return [f"oee,machine=m1 v={p.fields['v']}i {int(p.time.timestamp())}".encode() for p in pts]


async def test_unencodable_points_are_dead_lettered_before_the_outbox(tmp_path: Path) -> None:
    script = Script()
    sink, letters, _ = make(tmp_path, script, batch_size=1)
    bad = Point(measurement="oee", tags={}, fields={"v": float("nan")}, time=T0)
    async with sink:
        await sink.submit([bad, *points(1)])
        await until(lambda: len(script.accepted) == 1)
    [letter] = letters
    assert (letter.reason, letter.error) == ("unencodable", "field 'v': nan is not a finite number")
    assert letter.raw.startswith('{"measurement":"oee"')


async def test_a_full_outbox_makes_the_caller_wait_until_lines_are_delivered(tmp_path: Path) -> None:
    release = asyncio.Event()
    loop = asyncio.get_running_loop()

    def held(_: list[bytes]) -> None:
        # Runs in the sink's worker thread: the write "takes" until the test releases it.
        asyncio.run_coroutine_threadsafe(release.wait(), loop).result()

    script = Script(held)
    one = len(sink_lines(points(1))[0])
    sink, _, _ = make(tmp_path, script, batch_size=2, outbox={"max_bytes": 2 * one})
    async with sink:
        await sink.submit(points(2))
        blocked = asyncio.create_task(sink.submit(points(2, start=2)))
        await until(lambda: sink.health.waits_for_room == 1)
        assert not blocked.done()
        release.set()
        await blocked
        await until(lambda: len(script.accepted) == 4)
    assert sink.outbox.dropped == 0


async def test_drop_oldest_counts_what_it_drops(tmp_path: Path) -> None:
    one = len(sink_lines(points(1))[0])
    sink, _, _ = make(
        tmp_path, Script(), batch_size=100, outbox={"max_bytes": 2 * one, "when_full": "drop_oldest"}
    )
    # Not started: nothing is delivered. Each submit is one chunk; whole chunks are dropped.
    await sink.submit(points(1))
    await sink.submit(points(1, start=1))
    await sink.submit(points(1, start=2))
    assert (sink.outbox.lines, sink.outbox.dropped) == (2, 1)
    await sink.submit(points(2, start=3))  # needs the room of both waiting chunks
    assert (sink.outbox.lines, sink.outbox.dropped) == (2, 3)
    assert [c.body for c in sink.outbox.peek(10)] == [b"\n".join(sink_lines(points(2, start=3)))]
    await sink.close(flush_timeout_s=0)


async def test_close_leaves_what_it_could_not_deliver_for_the_next_start(tmp_path: Path) -> None:
    down = Script(lambda _: OSError("refused"))
    sink, _, _ = make(tmp_path, down, batch_size=2)
    sink.start()
    await sink.submit(points(5))
    await sink.close(flush_timeout_s=0.05)
    assert down.accepted == []
    up = Script()
    again, _, _ = make(tmp_path, up, batch_size=2)
    assert again.outbox.lines == 5
    async with again:
        assert await again.drain(10)
    assert sorted(up.accepted) == sorted(sink_lines(points(5)))


async def test_a_missing_token_variable_names_the_sink_and_the_variable(tmp_path: Path) -> None:
    with pytest.raises(SinkConfigError) as caught:
        InfluxSink(settings(), tmp_path, on_dead_letter=lambda _: None, environ={})
    assert str(caught.value).startswith(
        "sink influx: environment variable INFLUX_TOKEN (token_env) is not set"
    )


def test_retry_after_forms() -> None:
    now = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    assert retry_after_s("120") == 120.0
    assert retry_after_s(" 3 ") == 3.0
    assert retry_after_s("Mon, 02 Mar 2026 08:00:30 GMT", now) == 30.0
    assert retry_after_s("Mon, 02 Mar 2026 07:00:00 GMT", now) == 0.0
    assert retry_after_s("soon") is None
    assert retry_after_s(None) is None


async def test_an_unexpected_client_error_is_retried_not_fatal(tmp_path: Path) -> None:
    answers: list[Exception | None] = [KeyError("surprise"), None]
    script = Script(lambda _: answers.pop(0))
    sink, letters, _ = make(tmp_path, script, batch_size=1)
    async with sink:
        await sink.submit(points(1))
        await until(lambda: len(script.accepted) == 1)
    assert sink.health.errors["other"] == 1
    assert letters == []
