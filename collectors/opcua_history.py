"""An OPC UA server's history, for the backfill after an outage: which nodes keep it, and their values.

OPC UA Part 11 (Historical Access) and Part 3 [OPC-UA-11]: a Variable whose AccessLevel has the HistoryRead
bit (Part 3, 8.57: bit 2) and whose ``Historizing`` attribute is true keeps its values. HistoryRead
with ReadRawModifiedDetails (Part 11, 6.4.3) returns the raw values of a time range, at most
NumValuesPerNode per call, and hands back a ContinuationPoint while more remain; a client that
stops early releases it with ReleaseContinuationPoints (Part 4, 5.10.3), or the server holds it
until the session ends.

Everything a server can get wrong here (a bad status, a result that is not HistoryData, values
without a source time or outside the range asked, no answer in time) ends the read of that node
with a :class:`Problem`, keeping the good values read before it; the collector counts and logs
it and its session goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from asyncua import Client, ua

__all__ = ["HISTORY_READ", "Batch", "Problem", "keeps_history", "read_raw"]

HISTORY_READ = 0x04
"""The HistoryRead bit of AccessLevel (OPC UA Part 3, 8.57: bit 2)."""

_TRANSIENT = (OSError, TimeoutError, ConnectionError, ua.UaError)
# A server may answer a batch with no values and a continuation point (a time limit of its own);
# this many in a row is a server going round in circles.
_EMPTY_BATCHES = 10


@dataclass
class Problem:
    """Why the history of one node was not (wholly) read: a reason key and the detail."""

    reason: str
    detail: str


@dataclass
class Batch:
    """The raw history of one node in a range: the values taken, and what went wrong, if anything."""

    values: list[ua.DataValue] = field(default_factory=list)
    outside: int = 0
    """Values the server sent outside the range asked for (dropped)."""
    problem: Problem | None = None
    truncated: bool = False
    """The range held more than ``max_values``: the newest ones were left."""


async def keeps_history(
    client: Client, nodes: list[ua.NodeId], timeout_s: float, per_read: int = 500
) -> tuple[list[bool], Problem | None]:
    """Whether each node keeps history: AccessLevel has HistoryRead and ``Historizing`` is true.

    Both attributes of every node, ``per_read`` nodes to a Read: the one check per node and
    session. A node the server answers badly for counts as keeping none; so do the nodes of a
    Read that fails, which is also returned as the problem (the first, if several).
    """
    kept: list[bool] = []
    problem: Problem | None = None
    for first in range(0, len(nodes), per_read):
        chunk = nodes[first : first + per_read]
        flags, failed = await _keeps_history(client, chunk, timeout_s)
        kept.extend(flags)
        problem = problem or failed
    return kept, problem


async def _keeps_history(
    client: Client, nodes: list[ua.NodeId], timeout_s: float
) -> tuple[list[bool], Problem | None]:
    params = ua.ReadParameters()
    for node in nodes:
        for attribute in (ua.AttributeIds.AccessLevel, ua.AttributeIds.Historizing):
            target = ua.ReadValueId()
            target.NodeId = node
            target.AttributeId = attribute
            params.NodesToRead.append(target)
    params.TimestampsToReturn = ua.TimestampsToReturn.Neither
    none = [False] * len(nodes)
    try:
        answers: list[ua.DataValue] = await asyncio.wait_for(client.uaclient.read(params), timeout_s)
    except TimeoutError:
        return none, Problem("no_answer", "the check of AccessLevel and Historizing got no answer in time")
    except _TRANSIENT as exc:
        return none, Problem("error", f"the check of AccessLevel and Historizing failed: {exc}")
    if len(answers) != 2 * len(nodes):
        return none, Problem("error", f"{len(answers)} answers to a Read of {2 * len(nodes)} attributes")
    return [_keeps(answers[2 * i], answers[2 * i + 1]) for i in range(len(nodes))], None


def _keeps(access: ua.DataValue, historizing: ua.DataValue) -> bool:
    level = _attribute(access)
    # bool is an int too: an AccessLevel sent as a Boolean is garbage, not bit 0
    return type(level) is int and bool(level & HISTORY_READ) and _attribute(historizing) is True


def _attribute(data: ua.DataValue) -> Any:
    if data.StatusCode is not None and not data.StatusCode.is_good():
        return None
    return data.Value.Value if data.Value is not None else None


async def read_raw(
    client: Client,
    node: ua.NodeId,
    start: datetime,
    end: datetime,
    *,
    per_request: int,
    max_values: int,
    values_per_s: float,
    timeout_s: float,
) -> Batch:
    """The raw values of ``node`` with a SourceTimestamp in ``(start, end)``, oldest first.

    Read in the server's batches (NumValuesPerNode ``per_request``, following continuation
    points), at most ``max_values`` (the newest are then left and ``truncated`` set) and at most
    ``values_per_s`` (a pause after each batch). A server that truncates a batch without a
    continuation point (asyncua's in-memory history does) is asked again from the last time it
    sent (values at that very instant not in its batch are then missed: a server that keeps
    several values at one instant should hand out continuation points). Both ends are exclusive:
    the value at ``start`` has been delivered, the one at ``end`` is the first live one.
    """
    batch = Batch()
    since = start
    point: bytes | None = None
    empty = 0  # batches in a row with nothing but a continuation point
    try:
        while True:
            # One more than still allowed: a server answering from ``since`` inclusive sends the
            # value there again, which is not taken (and one too many is cut below).
            wanted = min(per_request, max_values - len(batch.values) + 1)
            result = await asyncio.wait_for(_history_read(client, node, since, end, wanted, point), timeout_s)
            point = result.ContinuationPoint or None
            problem = _check(result)
            if problem is not None:
                batch.problem = problem
                return batch
            data: list[ua.DataValue] = list(result.HistoryData.DataValues or [])
            newest = since
            for value in data:
                moment = _source_time(value)
                if moment is None:
                    batch.problem = Problem("no_source_time", "a history value without a SourceTimestamp")
                    return batch
                if moment < start or moment > end:
                    batch.outside += 1
                    continue
                newest = max(newest, moment)
                # Both ends are inclusive on the wire; a value at ``since`` was taken already.
                if since < moment < end:
                    batch.values.append(value)
            if data:
                await asyncio.sleep(len(data) / values_per_s)
            if len(batch.values) >= max_values:
                batch.truncated = len(batch.values) > max_values or point is not None or len(data) == wanted
                del batch.values[max_values:]
                return batch
            if point is not None:
                empty = 0 if data else empty + 1
                if empty >= _EMPTY_BATCHES:
                    batch.problem = Problem("no_progress", f"{empty} empty batches in a row")
                    return batch
                continue
            if len(data) < wanted or newest <= since:
                return batch  # all of it (or a server that makes no progress: stop, never loop)
            since = newest  # truncated without a continuation point: go on after the last one sent
    except (TimeoutError, *_TRANSIENT) as exc:
        batch.problem = Problem(
            "no_answer" if isinstance(exc, TimeoutError) else "error", str(exc) or type(exc).__name__
        )
        return batch
    except BaseException:
        point = None  # cancelled: the session is going, and closing it frees the point
        raise
    finally:
        if point is not None:
            await _release(client, node, point, timeout_s)


def _check(result: ua.HistoryReadResult) -> Problem | None:
    status = result.StatusCode
    if status is not None and not status.is_good():
        return Problem("bad_status", status.name)
    if not isinstance(result.HistoryData, ua.HistoryData):
        return Problem("not_history_data", f"a {type(result.HistoryData).__name__} instead of HistoryData")
    return None


def _source_time(value: Any) -> datetime | None:
    if not isinstance(value, ua.DataValue):
        return None
    moment: datetime | None = value.SourceTimestamp
    if moment is None or moment.year < 1601 + 1:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _request(
    node: ua.NodeId, start: datetime, end: datetime, count: int, point: bytes | None, release: bool = False
) -> ua.HistoryReadParameters:
    details = ua.ReadRawModifiedDetails()
    details.IsReadModified = False
    details.StartTime = start
    details.EndTime = end
    details.NumValuesPerNode = count
    details.ReturnBounds = False
    target = ua.HistoryReadValueId()
    target.NodeId = node
    target.ContinuationPoint = point
    params = ua.HistoryReadParameters()
    params.HistoryReadDetails = details
    params.TimestampsToReturn = ua.TimestampsToReturn.Both
    params.ReleaseContinuationPoints = release
    params.NodesToRead = [target]
    return params


async def _history_read(
    client: Client, node: ua.NodeId, start: datetime, end: datetime, count: int, point: bytes | None
) -> ua.HistoryReadResult:
    results = await client.uaclient.history_read(_request(node, start, end, count, point))
    if len(results) != 1:
        raise ua.UaError(f"{len(results)} history results for one node")
    result: ua.HistoryReadResult = results[0]
    return result


async def _release(client: Client, node: ua.NodeId, point: bytes, timeout_s: float) -> None:
    """Give a continuation point back (best effort, bounded): the server may hold only a few."""
    now = datetime.now(tz=UTC)
    with contextlib.suppress(TimeoutError, *_TRANSIENT):
        await asyncio.wait_for(
            client.uaclient.history_read(_request(node, now, now, 0, point, release=True)), timeout_s
        )
