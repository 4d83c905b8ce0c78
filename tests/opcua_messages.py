"""OPC UA Publish responses for tests: built with asyncua's encoder, and asyncua's decoding of them.

The fast decoder's tests (tests/unit/collectors/test_opcua_publish.py, and the captured responses
of tests/component/test_opcua_peer.py) compare :func:`collectors.opcua_publish.decode_publish`
with :func:`asyncua_view` through :func:`assert_same`.
"""

from __future__ import annotations

import struct
from datetime import UTC, datetime
from typing import Any

from asyncua import ua
from asyncua.common.utils import Buffer
from asyncua.ua.ua_binary import struct_from_binary, struct_to_binary

from collectors import opcua_binary
from collectors.opcua_publish import PublishMessage

# As in the collector: DataValues in the field order of the specification.
opcua_binary.install()


def publish_response(
    notifications: list[Any],
    *,
    subscription_id: int = 1,
    sequence_number: int = 1,
    available: list[int] | None = None,
    more: bool = False,
    results: list[int] | None = None,
    stamp: datetime | None = None,
    handle: int = 7,
) -> bytes:
    response = ua.PublishResponse()
    response.ResponseHeader.Timestamp = stamp or datetime(2026, 12, 2, tzinfo=UTC)
    response.ResponseHeader.RequestHandle = handle
    result = response.Parameters
    result.SubscriptionId = subscription_id
    result.AvailableSequenceNumbers = available or []
    result.MoreNotifications = more
    result.NotificationMessage.SequenceNumber = sequence_number
    result.NotificationMessage.PublishTime = stamp or datetime(2026, 12, 2, 0, 0, 1, tzinfo=UTC)
    result.NotificationMessage.NotificationData = notifications
    result.Results = [ua.StatusCode(code) for code in results or []]
    return struct_to_binary(response)


def comparable(value: Any) -> Any:
    """Type and value, NaN equal to itself by its bits."""
    if isinstance(value, float):
        return float, struct.pack("<d", value)
    return type(value), value


def asyncua_view(data: bytes) -> PublishMessage:
    """asyncua's decoding of ``data``, in the fast decoder's shape."""
    response = struct_from_binary(ua.PublishResponse, Buffer(data))
    result = response.Parameters
    message = result.NotificationMessage
    changes = None
    if message.NotificationData is not None:
        changes = []
        for notification in message.NotificationData:
            assert isinstance(notification, ua.DataChangeNotification)
            changes.append(
                [
                    (
                        item.ClientHandle,
                        item.Value.Value.Value if item.Value.Value is not None else None,
                        item.Value.StatusCode.value if item.Value.StatusCode is not None else 0,
                        item.Value.SourceTimestamp,
                        item.Value.SourcePicoseconds,
                        item.Value.ServerTimestamp,
                        item.Value.ServerPicoseconds,
                    )
                    for item in notification.MonitoredItems
                ]
            )
    return PublishMessage(
        response_time=response.ResponseHeader.Timestamp,
        request_handle=response.ResponseHeader.RequestHandle,
        subscription_id=result.SubscriptionId,
        available_sequence_numbers=result.AvailableSequenceNumbers,
        more_notifications=result.MoreNotifications,
        sequence_number=message.SequenceNumber,
        publish_time=message.PublishTime,
        data_changes=changes,
        results=None if result.Results is None else [code.value for code in result.Results],
    )


def assert_same(fast: PublishMessage | None, slow: PublishMessage) -> None:
    assert fast is not None
    for name in PublishMessage.__slots__:
        if name != "data_changes":
            assert getattr(fast, name) == getattr(slow, name), name
    assert (fast.data_changes is None) == (slow.data_changes is None)
    for ours, theirs in zip(fast.data_changes or [], slow.data_changes or [], strict=True):
        assert len(ours) == len(theirs)
        for mine, expected in zip(ours, theirs, strict=True):
            assert [comparable(field) for field in mine] == [comparable(field) for field in expected]
