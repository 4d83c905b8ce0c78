"""``process``'s save points, completed in the background: the order that makes a crash safe.

Points acknowledged before the states that say they were made, states acknowledged before the
offsets that say the records were taken, and save points one after another. The broker is a fake
here (futures the test resolves); tests/component/test_kafka.py kills real workers. The heap trim
after each save point is off here: it runs in a worker thread, and these tests step the loop a
fixed number of times (tests/unit/runtimes/test_heap_trim.py tests the trim).
"""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import TopicPartition

from runtimes.kafka.process import ProcessStats, _SavePoint, _Saver

TP = TopicPartition("readings", 0)


class FakeStates:
    """Stands in for the state topics' RecordBatches: each flush returns a future the test resolves."""

    def __init__(self, log: list[str]) -> None:
        self.log = log
        self.pending: list[asyncio.Future[object]] = []
        self._added: list[bytes] = []

    async def add(self, topic: str, key: bytes, value: bytes, partition: int) -> None:
        self._added.append(key)

    async def flush(self) -> list[asyncio.Future[object]]:
        self.log.append("states sent: " + ",".join(k.decode() for k in self._added))
        self._added = []
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        self.pending.append(future)
        return [future]


class FakeConsumer:
    def __init__(self, log: list[str], fail: Exception | None = None) -> None:
        self.log = log
        self.fail = fail

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        if self.fail is not None:
            raise self.fail
        self.log.append(f"commit {offsets[TP]}")


def point(sent: list[asyncio.Future[object]], machine: str, offset: int) -> _SavePoint:
    return _SavePoint(sent, [("state", machine.encode(), b"{}", 0)], {TP: offset})


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_states_wait_for_the_points_and_the_commit_for_the_states() -> None:
    log: list[str] = []
    states = FakeStates(log)
    stats = ProcessStats()
    saver = _Saver(FakeConsumer(log), states, stats, trim=False)  # type: ignore[arg-type]
    points: asyncio.Future[object] = asyncio.get_running_loop().create_future()
    saver.start(point([points], "m1", 10))
    await settle()
    assert log == []
    assert not saver.idle()
    points.set_result(None)
    await settle()
    assert log == ["states sent: m1"]  # the state is out, not yet acknowledged: no commit
    states.pending[0].set_result(None)
    await settle()
    assert log == ["states sent: m1", "commit 10"]
    assert saver.idle()
    assert stats.saves == 1


async def test_save_points_complete_one_after_another() -> None:
    log: list[str] = []
    states = FakeStates(log)
    saver = _Saver(FakeConsumer(log), states, ProcessStats(), trim=False)  # type: ignore[arg-type]
    loop = asyncio.get_running_loop()
    first, second = loop.create_future(), loop.create_future()
    saver.start(point([first], "m1", 10))
    saver.start(point([second], "m2", 20))
    second.set_result(None)  # the later save point's points are acknowledged first...
    await settle()
    assert log == []  # ... and still it waits for the earlier one
    first.set_result(None)
    await settle()
    states.pending[0].set_result(None)
    await settle()
    states.pending[1].set_result(None)
    await settle()
    assert log == ["states sent: m1", "commit 10", "states sent: m2", "commit 20"]


async def test_a_refused_send_is_raised_and_nothing_is_committed() -> None:
    log: list[str] = []
    saver = _Saver(FakeConsumer(log), FakeStates(log), ProcessStats(), trim=False)  # type: ignore[arg-type]
    refused: asyncio.Future[object] = asyncio.get_running_loop().create_future()
    refused.set_exception(ConnectionError("broker refused the batch"))
    saver.start(point([refused], "m1", 10))
    await settle()
    with pytest.raises(ConnectionError, match="refused"):
        saver.raise_failure()
    assert log == []


async def test_a_commit_refused_after_a_rebalance_is_left_to_the_new_owner() -> None:
    from aiokafka.errors import CommitFailedError

    log: list[str] = []
    states = FakeStates(log)
    stats = ProcessStats()
    saver = _Saver(FakeConsumer(log, CommitFailedError("rebalanced")), states, stats, trim=False)  # type: ignore[arg-type]
    done: asyncio.Future[object] = asyncio.get_running_loop().create_future()
    done.set_result(None)
    finishing = asyncio.create_task(saver.until_done(point([done], "m1", 10)))
    await settle()
    states.pending[0].set_result(None)
    await finishing  # no error: the partitions' new owner repeats the records from the saved states
    assert stats.saves == 0
