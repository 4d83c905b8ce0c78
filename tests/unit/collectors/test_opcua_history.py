"""Reading an OPC UA server's history: batches, continuation points, and every kind of bad answer.

A fake client stands in for the server, so each answer is exactly what the test says.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from asyncua import ua

from collectors.opcua_history import HISTORY_READ, Batch, keeps_history, read_raw

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
NODE = ua.NodeId("press.good", 2)
Answer = Callable[[ua.HistoryReadParameters], Awaitable[ua.HistoryReadResult]]


def at(second: float) -> datetime:
    return T0 + timedelta(seconds=second)


def value(second: float, number: int | None = None) -> ua.DataValue:
    return ua.DataValue(ua.Variant(number if number is not None else int(second)), SourceTimestamp=at(second))


def result(values: list[ua.DataValue], point: bytes | None = None) -> ua.HistoryReadResult:
    answer = ua.HistoryReadResult()
    answer.HistoryData = ua.HistoryData()
    answer.HistoryData.DataValues = values
    answer.ContinuationPoint = point
    return answer


class FakeServer:
    """Answers HistoryRead with ``answer``; remembers every request, releases included."""

    def __init__(self, answer: Answer) -> None:
        self.requests: list[ua.HistoryReadParameters] = []
        self._answer = answer
        self.client: Any = SimpleNamespace(uaclient=SimpleNamespace(history_read=self._history_read))

    async def _history_read(self, params: ua.HistoryReadParameters) -> list[ua.HistoryReadResult]:
        self.requests.append(params)
        if params.ReleaseContinuationPoints:
            return [ua.HistoryReadResult()]
        return [await self._answer(params)]

    @property
    def released(self) -> list[bytes]:
        return [p.NodesToRead[0].ContinuationPoint for p in self.requests if p.ReleaseContinuationPoints]


def reason(batch: Batch) -> str | None:
    return batch.problem.reason if batch.problem is not None else None


async def read(server: FakeServer, start: float = 0, end: float = 100, **limits: Any) -> Batch:
    settings = {"per_request": 1_000, "max_values": 100_000, "values_per_s": 1e9, "timeout_s": 5.0}
    return await read_raw(server.client, NODE, at(start), at(end), **{**settings, **limits})


def numbers(batch: Batch) -> list[int]:
    return [v.Value.Value for v in batch.values]


async def test_continuation_points_are_followed_and_both_ends_are_exclusive() -> None:
    pages = {
        None: ([value(0), value(1), value(2)], b"p1"),
        b"p1": ([value(3), value(4)], b"p2"),
        b"p2": ([value(5), value(100)], None),
    }

    async def answer(params: ua.HistoryReadParameters) -> ua.HistoryReadResult:
        return result(*pages[params.NodesToRead[0].ContinuationPoint])

    server = FakeServer(answer)
    batch = await read(server)
    # 0 is the value last delivered and 100 the catch-up value: the range asked includes both.
    assert numbers(batch) == [1, 2, 3, 4, 5]
    assert (reason(batch), batch.outside, batch.truncated) == (None, 0, False)
    assert (len(server.requests), server.released) == (3, [])


async def test_a_server_that_cuts_an_answer_short_without_a_point_is_asked_again_from_its_last_time() -> None:
    held = [value(s) for s in range(1, 11)]  # 1 .. 10

    async def answer(params: ua.HistoryReadParameters) -> ua.HistoryReadResult:
        # As asyncua's in-memory history: from StartTime inclusive, at most NumValuesPerNode, no point.
        details = params.HistoryReadDetails
        chosen = [v for v in held if details.StartTime <= v.SourceTimestamp <= details.EndTime]
        return result(chosen[: details.NumValuesPerNode])

    server = FakeServer(answer)
    batch = await read(server, per_request=4)
    assert numbers(batch) == list(range(1, 11))  # none twice, none missed
    # 1-4; 4-7 (4 again, dropped); 7-10; 10 alone (fewer than asked: the end)
    assert [p.HistoryReadDetails.StartTime for p in server.requests] == [at(0), at(4), at(7), at(10)]


async def test_more_values_than_allowed_are_left_and_the_held_point_released() -> None:
    async def answer(params: ua.HistoryReadParameters) -> ua.HistoryReadResult:
        count = params.HistoryReadDetails.NumValuesPerNode
        first = len([p for p in server.requests if not p.ReleaseContinuationPoints])
        return result([value(first * 10 + k) for k in range(count)], b"more")

    server = FakeServer(answer)
    batch = await read(server, per_request=3, max_values=5)
    # 3 asked, then the 2 still allowed and one more (a server may send the first value again)
    assert [p.HistoryReadDetails.NumValuesPerNode for p in server.requests[:2]] == [3, 3]
    assert (len(batch.values), batch.truncated) == (5, True)
    assert server.released == [b"more"]


@pytest.mark.parametrize(
    ("answer_of", "expected"),
    [
        (lambda r: setattr(r, "StatusCode", ua.StatusCode(ua.StatusCodes.BadNoData)), "bad_status"),
        (lambda r: setattr(r, "HistoryData", ua.HistoryEvent()), "not_history_data"),
        (lambda r: r.HistoryData.DataValues.insert(0, ua.DataValue(ua.Variant(7))), "no_source_time"),
        (lambda r: r.HistoryData.DataValues.insert(0, "not a DataValue"), "no_source_time"),
    ],
)
async def test_a_bad_second_answer_keeps_the_first_and_gives_the_point_back(
    answer_of: Callable[[ua.HistoryReadResult], None], expected: str
) -> None:
    async def answer(params: ua.HistoryReadParameters) -> ua.HistoryReadResult:
        if params.NodesToRead[0].ContinuationPoint is None:
            return result([value(1), value(2)], b"first")
        bad = result([value(3)], b"second")
        answer_of(bad)
        return bad

    server = FakeServer(answer)
    batch = await read(server)
    assert reason(batch) == expected
    assert numbers(batch) == [1, 2]
    assert server.released == [b"second"]


async def test_values_outside_the_range_asked_for_are_dropped_and_counted() -> None:
    async def answer(params: ua.HistoryReadParameters) -> ua.HistoryReadResult:
        return result([value(-50), value(5), value(250), value(6)])

    batch = await read(FakeServer(answer))
    assert numbers(batch) == [5, 6]
    assert (batch.outside, reason(batch)) == (2, None)


async def test_a_server_that_never_answers_is_a_problem_not_a_hang() -> None:
    async def answer(params: ua.HistoryReadParameters) -> ua.HistoryReadResult:
        await asyncio.Event().wait()  # stalled for good
        raise AssertionError("unreachable")

    batch = await read(FakeServer(answer), timeout_s=0.05)
    assert reason(batch) == "no_answer"
    assert batch.values == []


async def test_a_client_error_is_a_problem_not_a_crash() -> None:
    async def answer(params: ua.HistoryReadParameters) -> ua.HistoryReadResult:
        raise ua.UaStatusCodeError(ua.StatusCodes.BadTooManyOperations)

    batch = await read(FakeServer(answer))
    assert reason(batch) == "error"


async def test_a_server_going_round_in_circles_is_stopped() -> None:
    async def answer(params: ua.HistoryReadParameters) -> ua.HistoryReadResult:
        return result([], b"again")  # never a value, always more to come

    server = FakeServer(answer)
    batch = await read(server)
    assert reason(batch) == "no_progress"
    assert len(server.requests) == 10 + 1  # ten empty answers, then the point given back
    assert server.released == [b"again"]


def attributes(*pairs: tuple[Any, Any]) -> list[ua.DataValue]:
    out = []
    for access, historizing in pairs:
        for answer in (access, historizing):
            out.append(answer if isinstance(answer, ua.DataValue) else ua.DataValue(ua.Variant(answer)))
    return out


async def test_which_nodes_keep_history_is_one_read_of_two_attributes_each() -> None:
    bad = ua.DataValue(StatusCode=ua.StatusCode(ua.StatusCodes.BadAttributeIdInvalid))
    answers = attributes(
        (ua.AccessLevel.CurrentRead.mask | HISTORY_READ, True),  # keeps history
        (ua.AccessLevel.CurrentRead.mask, True),  # historizing, but not readable: no
        (HISTORY_READ, False),  # readable, not historizing: no
        (True, True),  # an AccessLevel that is a Boolean: garbage, no
        (bad, True),  # no AccessLevel: no
        (HISTORY_READ, "yes"),  # Historizing that is not a Boolean: no
    )
    reads: list[ua.ReadParameters] = []

    async def read_attributes(params: ua.ReadParameters) -> list[ua.DataValue]:
        reads.append(params)
        return answers

    client: Any = SimpleNamespace(uaclient=SimpleNamespace(read=read_attributes))
    nodes = [ua.NodeId(k, 2) for k in range(6)]
    assert await keeps_history(client, nodes, 5.0) == ([True, False, False, False, False, False], None)
    assert [len(r.NodesToRead) for r in reads] == [12]


async def test_the_check_reads_at_most_so_many_nodes_at_a_time() -> None:
    reads: list[int] = []

    async def read_attributes(params: ua.ReadParameters) -> list[ua.DataValue]:
        reads.append(len(params.NodesToRead))
        return attributes(*[(HISTORY_READ, True)] * (len(params.NodesToRead) // 2))

    client: Any = SimpleNamespace(uaclient=SimpleNamespace(read=read_attributes))
    kept, problem = await keeps_history(client, [ua.NodeId(k, 2) for k in range(5)], 5.0, per_read=2)
    assert (kept, problem) == ([True] * 5, None)
    assert reads == [4, 4, 2]  # two attributes a node: 2 + 2 + 1 nodes


@pytest.mark.parametrize("failure", ["error", "short", "stall"])
async def test_a_failed_check_counts_as_no_history(failure: str) -> None:
    async def read_attributes(params: ua.ReadParameters) -> list[ua.DataValue]:
        if failure == "error":
            raise ua.UaStatusCodeError(ua.StatusCodes.BadTooManyOperations)
        if failure == "stall":
            await asyncio.Event().wait()
        return attributes((HISTORY_READ, True))  # one node's answers for two nodes

    client: Any = SimpleNamespace(uaclient=SimpleNamespace(read=read_attributes))
    kept, problem = await keeps_history(client, [ua.NodeId(1, 2), ua.NodeId(2, 2)], 0.05)
    assert kept == [False, False]
    assert problem is not None
    assert problem.reason == ("no_answer" if failure == "stall" else "error")
