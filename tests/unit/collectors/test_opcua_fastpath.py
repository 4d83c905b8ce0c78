"""The fast path's hook into asyncua, driven through asyncua's own publish loop with no server.

The session's ``_send_request`` is replaced by a script of encoded Publish responses; asyncua's
``_publish_loop`` sends the requests (with their acknowledgements) and calls the callbacks. This
pins every private asyncua attribute the hook relies on (collectors/opcua_fastpath.py lists them):
a rename in asyncua fails here.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

from asyncua import Client, ua
from asyncua.common.subscription import (
    DataChangeEvent,
    StatusChangeEvent,
    Subscription,
    SubscriptionItemData,
)
from asyncua.common.utils import Buffer
from opcua_messages import publish_response

from collectors import opcua_fastpath
from collectors.opcua_publish import Value

SID = 42
MOMENT = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)


def change(*values: tuple[int, Any, datetime]) -> ua.DataChangeNotification:
    return ua.DataChangeNotification(
        [
            ua.MonitoredItemNotification(handle, ua.DataValue(ua.Variant(value), SourceTimestamp=moment))
            for handle, value, moment in values
        ]
    )


class Script:
    """Stands in for the session's ``_send_request``: records requests, answers from a list."""

    def __init__(self, responses: list[bytes]) -> None:
        self.responses = list(responses)
        self.requests: list[Any] = []
        self.done = asyncio.Event()

    async def __call__(self, request: Any, timeout: float | None = None, *_: Any) -> Buffer:
        self.requests.append(request)
        if not self.responses:
            self.done.set()
            await asyncio.Event().wait()  # the server has nothing more to say
        # asyncua's receive buffer: the response after some other bytes, read from its position.
        return Buffer(b"\x00" * 3 + self.responses.pop(0), start_pos=3)


async def run(
    responses: list[bytes] | Script,
    arrange: opcua_fastpath.Arrange = list,
    take: opcua_fastpath.Take | None = None,
) -> tuple[Subscription, Script]:
    client = Client("opc.tcp://127.0.0.1:4840")
    session = client.uaclient.session
    fast = opcua_fastpath.install(client)
    script = responses if isinstance(responses, Script) else Script(responses)
    session._send_request = script
    sub = Subscription(session, ua.CreateSubscriptionParameters(), queue_maxsize=100)
    sub.subscription_id = SID
    for handle in (1, 2, 3):
        item = SubscriptionItemData()
        item.node = client.get_node(ua.NodeId(handle, 2))
        item.client_handle = handle
        sub._monitored_items[handle] = item
    session._subscription_callbacks[SID] = sub.publish_callback  # as create_subscription does
    fast.attach(sub, arrange, take)
    loop = asyncio.create_task(session._publish_loop())
    try:
        await asyncio.wait_for(script.done.wait(), 5)
    finally:
        loop.cancel()
    return sub, script


def events(sub: Subscription) -> list[Any]:
    assert sub._event_queue is not None
    out = []
    while not sub._event_queue.empty():
        out.append(sub._event_queue.get_nowait())
    return out


def acks(request: Any) -> list[tuple[int, int]]:
    return [(a.SubscriptionId, a.SequenceNumber) for a in request.Parameters.SubscriptionAcknowledgements]


async def test_values_come_as_tuples_and_each_message_with_data_is_acknowledged() -> None:
    before = time.monotonic()
    sub, script = await run(
        [
            publish_response(
                [change((1, 1.5, MOMENT), (2, 7, MOMENT))], subscription_id=SID, sequence_number=10
            ),
            publish_response([], subscription_id=SID, sequence_number=11),  # a keep-alive
            publish_response(
                [change((3, "x", MOMENT)), change((1, True, MOMENT))], subscription_id=SID, sequence_number=12
            ),
        ]
    )
    assert events(sub) == [
        (1, 1.5, 0, MOMENT, None, None, None),
        (2, 7, 0, MOMENT, None, None, None),
        (3, "x", 0, MOMENT, None, None, None),
        (1, True, 0, MOMENT, None, None, None),
    ]
    # Each request acknowledges what the response before it carried; a keep-alive is not acknowledged.
    assert [acks(r) for r in script.requests] == [[], [(SID, 10)], [], [(SID, 12)]]
    assert sub.last_publish_at is not None
    assert sub.last_publish_at >= before
    assert sub.last_sequence_number == 12


async def test_a_keep_alive_alone_tells_the_watchdog_the_subscription_lives() -> None:
    sub, _ = await run([publish_response([], subscription_id=SID, sequence_number=3)])
    assert sub.last_publish_at is not None
    assert events(sub) == []


async def test_the_values_of_each_notification_are_arranged_and_unknown_handles_dropped() -> None:
    late, early = MOMENT.replace(second=9), MOMENT.replace(second=1)

    def by_time(values: list[Value]) -> list[Value]:
        return sorted(values, key=lambda v: v[3] or MOMENT)

    sub, _ = await run(
        [
            publish_response(
                [change((1, 1, late), (9, 0, early), (2, 2, early)), change((3, 3, late), (1, 4, early))],
                subscription_id=SID,
            )
        ],
        by_time,
    )
    assert [(e[0], e[1]) for e in events(sub)] == [(2, 2), (1, 1), (1, 4), (3, 3)]


async def test_what_the_fast_path_declines_reaches_the_subscription_as_asyncua_decodes_it() -> None:
    status = ua.StatusChangeNotification(Status=ua.StatusCode(ua.StatusCodes.BadTimeout))
    array = ua.DataChangeNotification(
        [ua.MonitoredItemNotification(2, ua.DataValue(ua.Variant([1.0, 2.0], ua.VariantType.Double)))]
    )
    sub, script = await run(
        [
            publish_response([status], subscription_id=SID, sequence_number=1),
            publish_response([array], subscription_id=SID, sequence_number=2),
            publish_response([change((1, 5, MOMENT))], subscription_id=SID, sequence_number=3),
        ]
    )
    first, second, third = events(sub)
    assert isinstance(first, StatusChangeEvent)
    assert first.notification.Status.value == ua.StatusCodes.BadTimeout
    assert isinstance(second, DataChangeEvent)
    assert second.value == [1.0, 2.0]
    assert third == (1, 5, 0, MOMENT, None, None, None)
    assert [acks(r) for r in script.requests] == [[], [(SID, 1)], [(SID, 2)], [(SID, 3)]]


async def test_a_subscription_not_attached_gets_asyncuas_decoding() -> None:
    client = Client("opc.tcp://127.0.0.1:4840")
    session = client.uaclient.session
    opcua_fastpath.install(client)
    script = Script([publish_response([change((1, 5, MOMENT))], subscription_id=7)])
    session._send_request = script
    response = await session.publish([])
    assert isinstance(response, ua.PublishResponse)


async def test_the_overflow_policy_applies_to_fast_values() -> None:
    client = Client("opc.tcp://127.0.0.1:4840")
    session = client.uaclient.session
    fast = opcua_fastpath.install(client)
    sub = Subscription(session, ua.CreateSubscriptionParameters(), queue_maxsize=2)
    sub.subscription_id = SID
    item = SubscriptionItemData()
    item.node = client.get_node(ua.NodeId(1, 2))
    sub._monitored_items[1] = item
    dropped: list[Any] = []
    overflow = sub._handle_overflow
    sub._handle_overflow = lambda event: (dropped.append(event), overflow(event))
    session._subscription_callbacks[SID] = sub.publish_callback
    fast.attach(sub, list)
    script = Script([publish_response([change(*((1, n, MOMENT) for n in range(5)))], subscription_id=SID)])
    session._send_request = script
    # As the publish loop does: the callback with the response's parameters (a fast one returns None).
    assert session._subscription_callbacks[SID]((await session.publish([])).Parameters) is None
    assert [e[1] for e in events(sub)] == [3, 4]  # drop oldest
    assert len(dropped) == 3


async def test_with_a_take_each_responses_values_go_as_one_list_and_the_loop_waits_for_it() -> None:
    late, early = MOMENT.replace(second=9), MOMENT.replace(second=1)
    script = Script(
        [
            publish_response(
                [change((1, 1, late), (9, 0, early), (2, 2, early)), change((3, 3, late), (1, 4, early))],
                subscription_id=SID,
                sequence_number=5,
            ),
            publish_response([], subscription_id=SID, sequence_number=6),  # a keep-alive: no take
            publish_response([change((2, 5, MOMENT))], subscription_id=SID, sequence_number=7),
        ]
    )
    taken: list[list[Value]] = []
    sent: list[tuple[int, int]] = []  # requests sent when a take starts and when it ends

    async def take(values: list[Value]) -> None:
        before = len(script.requests)
        await asyncio.sleep(0.01)  # a take that waits (a full queue): the loop must wait with it
        sent.append((before, len(script.requests)))
        taken.append(values)

    def by_time(values: list[Value]) -> list[Value]:
        return sorted(values, key=lambda v: v[3] or MOMENT)

    sub, _ = await run(script, by_time, take)
    # Each notification arranged on its own, the response's values in one list; unknown handle 9 dropped.
    assert [[(v[0], v[1]) for v in values] for values in taken] == [
        [(2, 2), (1, 1), (1, 4), (3, 3)],
        [(2, 5)],
    ]
    # Requests 1 and 3 brought the two responses with data; no request went out during their takes.
    assert sent == [(1, 1), (3, 3)]
    assert [acks(r) for r in script.requests] == [[], [(SID, 5)], [], [(SID, 7)]]
    assert events(sub) == []  # nothing went through asyncua's iterator queue
    assert sub.last_sequence_number == 7
