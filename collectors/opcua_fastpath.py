"""The hook that puts a subscription's Publish responses on the fast data path (asyncua 2).

asyncua keeps everything else: the session, security, browse, reads, and the publish loop with
its acknowledgements. The hook changes two things on one client:

1. :func:`install` replaces the session's ``publish`` (send a PublishRequest, decode the
   response) with one that decodes the response with
   :func:`collectors.opcua_publish.decode_publish` when it belongs to an attached subscription,
   and with asyncua's own ``struct_from_binary`` otherwise, as asyncua does.
2. :meth:`FastPath.attach` replaces the session's callback for one subscription by one that takes
   a fast message itself and hands anything else (a response the fast path declined, the status
   change asyncua sends its subscriptions when the connection is lost) to the subscription's
   ``publish_callback``, unchanged.

A fast message does to the subscription what ``publish_callback`` does to a decoded one: it stamps
``last_publish_at`` (a keep-alive too, for the collector's watchdog), sets
``last_sequence_number``, tells the client's observer how many events it produced, and hands
the values on as :data:`~collectors.opcua_publish.Value` tuples instead of ``DataChangeEvent`` objects,
each DataChangeNotification's in the order ``arrange`` gives; a value for a client handle the
subscription does not monitor is dropped with asyncua's warning. With a ``take`` (the
collector's), all of the response's values go to it as one list, and the publish loop awaits
what it returns: a consumer that must wait (a full queue under ``block``) holds the next Publish
request back, so the server keeps the values meanwhile. Without one, each value goes through the
subscription's ``_deliver`` (the iterator's queue and its overflow policy), as asyncua's events do.

Private asyncua attributes used (asyncua is pinned below 3; tests/unit/collectors/
test_opcua_fastpath.py fails when one of them changes): ``UaClient.session``; ``UaSession``'s
``publish`` (shadowed on the instance), ``_send_request`` and ``_subscription_callbacks``;
``Subscription``'s ``_monitored_items``, ``_deliver`` and ``_observe``; ``Buffer``'s ``_data``
and ``_cur_pos``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from asyncua import Client, ua
from asyncua.common.subscription import Subscription
from asyncua.ua.ua_binary import struct_from_binary
from asyncua.ua.uaerrors import UaStructParsingError

from collectors.opcua_publish import PublishMessage, Value, decode_publish

__all__ = ["Arrange", "FastPath", "Take", "install"]

Arrange = Callable[[list[Value]], list[Value]]
"""Puts the values of one DataChangeNotification in the order they are delivered."""

Take = Callable[[list[Value]], Awaitable[None] | None]
"""Takes the values of one Publish response, in order; the publish loop awaits what it returns."""


class _Fast:
    """A fast message dressed as the ``PublishResponse`` and ``PublishResult`` asyncua's loop reads."""

    __slots__ = ("message",)

    def __init__(self, message: PublishMessage) -> None:
        self.message = message

    @property
    def Parameters(self) -> _Fast:  # noqa: N802 (asyncua's names)
        return self

    @property
    def NotificationMessage(self) -> _Fast:  # noqa: N802
        return self

    @property
    def SubscriptionId(self) -> int:  # noqa: N802
        return self.message.subscription_id

    @property
    def SequenceNumber(self) -> int:  # noqa: N802
        return self.message.sequence_number

    @property
    def NotificationData(self) -> list[list[Value]] | None:  # noqa: N802
        # Only its truth matters to the loop: a message with notifications is acknowledged.
        return self.message.data_changes


class FastPath:
    """The fast data path of one client's session; see the module docstring."""

    def __init__(self, client: Client) -> None:
        """Hook into ``client``'s session (before its first subscription, or any time after)."""
        self._session = client.uaclient.session
        self._attached: set[int] = set()
        self._session.publish = self._publish

    def attach(self, sub: Subscription, arrange: Arrange, take: Take | None = None) -> None:
        """Decode ``sub``'s Publish responses fast; each notification's values go in ``arrange``'s order.

        With ``take``, each response's values go to it as one list; without, one by one into
        the subscription's iterator queue.
        """
        sid = sub.subscription_id
        callbacks: dict[int, Callable[[Any], Any]] = self._session._subscription_callbacks
        slow = callbacks[sid]

        def on_publish(result: Any) -> Any:
            if result.__class__ is _Fast:
                return _take(sub, result.message, arrange, take)
            return slow(result)

        callbacks[sid] = on_publish
        self._attached.add(sid)

    async def _publish(self, acks: list[ua.SubscriptionAcknowledgement]) -> Any:
        """Send a PublishRequest; its response, decoded fast when it can be, else by asyncua."""
        request = ua.PublishRequest()
        request.Parameters.SubscriptionAcknowledgements = acks if acks else []
        # No timeout: the server answers when it has something to publish (as asyncua's publish).
        data = await self._session._send_request(request, timeout=0)
        raw = data._data
        if raw.__class__ is bytes:
            message = decode_publish(raw, data._cur_pos)
            if message is not None and message.subscription_id in self._attached:
                return _Fast(message)
        try:
            return struct_from_binary(ua.PublishResponse, data)
        except Exception as ex:
            # What asyncua's publish does: its loop skips a response it cannot parse.
            self._session.logger.exception("Error parsing notification from server")
            raise UaStructParsingError from ex


def install(client: Client) -> FastPath:
    """Put ``client``'s session on the fast path; attach subscriptions to the result."""
    return FastPath(client)


def _take(sub: Subscription, message: PublishMessage, arrange: Arrange, take: Take | None) -> Any:
    """What ``Subscription.publish_callback`` does with a response, for a fast message."""
    sub.last_publish_at = time.monotonic()
    changes = message.data_changes
    if changes is None:
        return None
    sub.last_sequence_number = message.sequence_number
    monitored = sub._monitored_items
    batch: list[Value] = []
    for values in changes:
        known = []
        for value in values:
            item = monitored.get(value[0])
            if item is None or item.node is None:
                sub.logger.warning("Received a notification for unknown handle: %s", value[0])
            else:
                known.append(value)
        batch += arrange(known)
    result = None
    if take is None:
        deliver = sub._deliver
        for value in batch:
            deliver(value)
    elif batch:
        result = take(batch)
    produced = len(batch)
    sub._observe(lambda: sub.server.observer.on_notification(sub.subscription_id, produced))
    return result
