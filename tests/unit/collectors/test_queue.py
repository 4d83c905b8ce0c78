"""The bounded queue's lists: a whole list in or out in one call, with the policy and its count per item."""

from __future__ import annotations

import asyncio

import pytest

from collectors.queue import BoundedQueue


async def test_drop_oldest_keeps_the_newest_of_queue_and_list_and_counts_the_rest() -> None:
    queue: BoundedQueue[int] = BoundedQueue(5, "drop_oldest")
    await queue.put_many([0, 1, 2])
    await queue.put_many([3, 4, 5, 6])  # 3 + 4 = 7 items for 5 places: the 2 oldest go
    assert queue.dropped == 7 - 5
    assert queue.get_nowait() == 2
    assert await queue.get_many(10) == [3, 4, 5, 6]


async def test_drop_oldest_with_a_list_longer_than_the_queue_keeps_the_lists_newest() -> None:
    queue: BoundedQueue[int] = BoundedQueue(3, "drop_oldest")
    await queue.put_many([0, 1])
    await queue.put_many([10, 11, 12, 13, 14])  # 2 + 5 = 7 for 3 places: both queued and 10, 11 go
    assert queue.dropped == 7 - 3
    assert await queue.get_many(10) == [12, 13, 14]


async def test_drop_newest_keeps_what_waits_and_the_lists_oldest() -> None:
    queue: BoundedQueue[int] = BoundedQueue(5, "drop_newest")
    await queue.put_many([0, 1, 2])
    await queue.put_many([3, 4, 5, 6])  # room for 2 of the 4: 5 and 6 go
    assert queue.dropped == 4 - 2
    await queue.put_many([7])  # full: the whole list goes
    assert queue.dropped == 2 + 1
    assert await queue.get_many(10) == [0, 1, 2, 3, 4]


async def test_one_at_a_time_and_lists_count_drops_alike() -> None:
    lists: BoundedQueue[int] = BoundedQueue(4, "drop_oldest")
    single: BoundedQueue[int] = BoundedQueue(4, "drop_oldest")
    await lists.put_many(list(range(10)))
    for i in range(10):
        single.put_nowait(i)
    assert lists.dropped == single.dropped == 10 - 4
    assert await lists.get_many(10) == await single.get_many(10) == [6, 7, 8, 9]


async def test_block_puts_what_fits_and_waits_for_room_for_the_rest_in_order() -> None:
    queue: BoundedQueue[int] = BoundedQueue(3, "block")
    putting = asyncio.create_task(queue.put_many([0, 1, 2, 3, 4, 5, 6]))
    await asyncio.sleep(0)
    assert not putting.done()  # 3 in, 4 waiting for room
    assert queue.qsize() == 3
    taken: list[int] = []
    while len(taken) < 7:
        taken += await queue.get_many(2)
    await asyncio.wait_for(putting, 5)
    assert taken == [0, 1, 2, 3, 4, 5, 6]
    assert queue.dropped == 0


async def test_block_refuses_a_list_that_does_not_fit_without_waiting() -> None:
    queue: BoundedQueue[int] = BoundedQueue(3, "block")
    queue.put_many_nowait([0, 1])
    with pytest.raises(asyncio.QueueFull):
        queue.put_many_nowait([2, 3])
    assert await queue.get_many(10) == [0, 1]  # nothing of the refused list went in


async def test_get_many_waits_for_an_item_and_takes_at_most_its_limit() -> None:
    queue: BoundedQueue[str] = BoundedQueue(10, "block")
    waiting = asyncio.create_task(queue.get_many(3))
    await asyncio.sleep(0)
    assert not waiting.done()
    await queue.put_many(["a", "b", "c", "d", "e"])
    assert await asyncio.wait_for(waiting, 5) == ["a", "b", "c"]
    assert await queue.get_many(3) == ["d", "e"]
    assert queue.qsize() == 0


async def test_a_dropping_queue_lets_its_reader_run_before_a_list_would_overflow() -> None:
    queue: BoundedQueue[int] = BoundedQueue(10, "drop_oldest")
    taken: list[int] = []

    async def reader() -> None:
        while len(taken) < 60:
            taken.extend(await queue.get_many(100))

    task = asyncio.create_task(reader())
    await asyncio.sleep(0)
    for first in range(0, 60, 6):  # a producer that never waits for anything else
        await queue.put_many(list(range(first, first + 6)))
    await asyncio.wait_for(task, 5)
    assert taken == list(range(60))
    assert queue.dropped == 0


def test_a_queue_holds_at_least_one_item() -> None:
    with pytest.raises(ValueError, match="at least one"):
        BoundedQueue(0, "block")


async def test_a_list_longer_than_a_dropping_queue_flows_in_parts_while_the_reader_takes() -> None:
    queue: BoundedQueue[int] = BoundedQueue(10, "drop_oldest")
    taken: list[int] = []

    async def reader() -> None:
        while len(taken) < 35:
            taken.extend(await queue.get_many(4))  # a reader slower than the list: 4 a turn

    task = asyncio.create_task(reader())
    await asyncio.sleep(0)
    await queue.put_many(list(range(35)))  # 3.5 queues' worth in one list
    await asyncio.wait_for(task, 5)
    assert taken == list(range(35))
    assert queue.dropped == 0


async def test_with_no_reader_a_long_list_is_left_to_the_policy_after_one_turn() -> None:
    oldest: BoundedQueue[int] = BoundedQueue(10, "drop_oldest")
    newest: BoundedQueue[int] = BoundedQueue(10, "drop_newest")
    await oldest.put_many(list(range(25)))
    await newest.put_many(list(range(25)))
    assert oldest.dropped == newest.dropped == 25 - 10
    assert await oldest.get_many(100) == list(range(15, 25))
    assert await newest.get_many(100) == list(range(10))
