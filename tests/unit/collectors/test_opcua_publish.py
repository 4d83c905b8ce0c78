"""The fast Publish decoder against asyncua's own decoding, over generated messages.

Messages are built as asyncua's dataclasses and encoded by asyncua (``struct_to_binary``); the
fast decoder's output must equal asyncua's decoding of the same bytes (with the spec-order
DataValue decoder of collectors/opcua_binary.py installed, as in the collector), and every
message it does not take must be handed back (None).
"""

from __future__ import annotations

import math
import struct
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from asyncua import ua
from asyncua.common.utils import Buffer
from asyncua.ua.ua_binary import struct_from_binary, struct_to_binary
from hypothesis import given, settings
from hypothesis import strategies as st
from opcua_messages import assert_same, asyncua_view, publish_response

from collectors.opcua_publish import SCALAR_TYPES, decode_publish

VT = ua.VariantType
U32 = st.integers(0, 2**32 - 1)

# DateTimes the encoder turns into the edge ticks: 0 (1601 and before), the last representable
# second, beyond it (asyncua clamps, encoding MAX_INT64), and ordinary ones, naive or aware.
TIMES = st.one_of(
    st.sampled_from(
        [
            datetime(1601, 1, 1),  # noqa: DTZ001
            datetime(1, 1, 1),  # noqa: DTZ001
            datetime(1601, 1, 1, 0, 0, 0, 1, tzinfo=UTC),
            datetime(9999, 12, 31, 23, 59, 58, 999_999, tzinfo=UTC),
            datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC),
            datetime.max,  # noqa: DTZ901 (naive, as asyncua allows)
            datetime(1970, 1, 1, tzinfo=UTC),
        ]
    ),
    st.datetimes(min_value=datetime(1601, 1, 2), max_value=datetime(9999, 12, 30)),  # noqa: DTZ001
    st.datetimes(
        min_value=datetime(1700, 1, 1),  # noqa: DTZ001
        max_value=datetime(2200, 1, 1),  # noqa: DTZ001
        timezones=st.just(UTC) | st.just(timezone(timedelta(hours=9))),
    ),
)
CODES = st.one_of(
    st.sampled_from(
        [
            0,
            0x40000000,  # Uncertain
            0x408F0000,  # UncertainLastUsableValue
            0x80000000,  # Bad
            0x80340000,  # BadNodeIdUnknown
            0x808A0000,  # BadWaitingForInitialData
            0x00960000,  # GoodLocalOverride
        ]
    ),
    U32,
)
PICOSECONDS = st.none() | st.integers(0, 65535)


def _int(bits: int, signed: bool) -> st.SearchStrategy[int]:
    low, high = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    return st.integers(low, high) | st.sampled_from([low, high, 0])


# Every scalar Variant type the fast path takes, with edge values.
SCALARS: dict[VT, st.SearchStrategy[Any]] = {
    VT.Null: st.none(),
    VT.Boolean: st.booleans(),
    VT.SByte: _int(8, True),
    VT.Byte: _int(8, False),
    VT.Int16: _int(16, True),
    VT.UInt16: _int(16, False),
    VT.Int32: _int(32, True),
    VT.UInt32: _int(32, False),
    VT.Int64: _int(64, True),
    VT.UInt64: _int(64, False),
    VT.Float: st.floats(width=32),
    VT.Double: st.floats() | st.sampled_from([math.inf, -math.inf, math.nan, -0.0, 5e-324]),
    VT.String: st.none() | st.text(),
    VT.DateTime: TIMES,
    VT.ByteString: st.none() | st.binary(),
    VT.StatusCode: CODES.map(ua.StatusCode),
}
assert {t.value for t in SCALARS} == SCALAR_TYPES


@st.composite
def variants(draw: st.DrawFn) -> ua.Variant:
    vtype = draw(st.sampled_from(list(SCALARS)))
    return ua.Variant(draw(SCALARS[vtype]), vtype)


VARIANTS = variants()


@st.composite
def data_values(draw: st.DrawFn, variant: st.SearchStrategy[ua.Variant], may_omit: bool) -> ua.DataValue:
    """A DataValue with any combination of its six fields (the encoder sets the mask from them)."""
    value = ua.DataValue(
        Value=draw(variant),
        StatusCode=draw(st.none() | CODES.map(ua.StatusCode)),
        SourceTimestamp=draw(st.none() | TIMES),
        SourcePicoseconds=draw(PICOSECONDS),
        ServerTimestamp=draw(st.none() | TIMES),
        ServerPicoseconds=draw(PICOSECONDS),
    )
    if may_omit and draw(st.booleans()):
        object.__setattr__(value, "Value", None)  # no Value at all (not a Null Variant)
    return value


def data_changes(variant: st.SearchStrategy[ua.Variant] = VARIANTS) -> st.SearchStrategy[Any]:
    scalar = variant is VARIANTS
    items = st.builds(ua.MonitoredItemNotification, ClientHandle=U32, Value=data_values(variant, scalar))
    return st.builds(ua.DataChangeNotification, MonitoredItems=st.lists(items, max_size=6))


publish_responses = st.builds(
    publish_response,
    st.lists(data_changes(), max_size=4),
    subscription_id=U32,
    sequence_number=U32,
    available=st.lists(U32, max_size=5),
    more=st.booleans(),
    results=st.lists(CODES, max_size=5),
    stamp=st.none() | TIMES,
    handle=U32,
)


@settings(max_examples=400, deadline=None)
@given(publish_responses)
def test_the_fast_decoder_equals_asyncuas_decoding(data: bytes) -> None:
    assert_same(decode_publish(data), asyncua_view(data))


@settings(max_examples=100, deadline=None)
@given(publish_responses, st.binary(max_size=8))
def test_a_message_decodes_the_same_from_an_offset(data: bytes, before: bytes) -> None:
    # asyncua hands over its receive buffer and the position the message starts at.
    assert_same(decode_publish(before + data, len(before)), asyncua_view(data))


def test_a_keep_alive_has_no_data() -> None:
    message = decode_publish(publish_response([], sequence_number=5))
    assert message is not None
    assert message.data_changes == []
    assert message.sequence_number == 5


def test_null_arrays_decode_as_asyncua_decodes_them() -> None:
    # A server may send a null array (length -1) where asyncua sends an empty one.
    keep_alive = bytearray(publish_response([], available=[], results=[]))
    null = b"\xff\xff\xff\xff"
    # The last four arrays: NotificationData, Results, DiagnosticInfos (each empty, 0).
    assert keep_alive.endswith(bytes(12))
    data = bytes(keep_alive[:-12]) + null * 3
    assert_same(decode_publish(data), asyncua_view(data))
    assert asyncua_view(data).data_changes is None


@given(st.integers(-(2**63), 2**63 - 1))
def test_every_datetime_tick_count_decodes_as_asyncua_decodes_it(ticks: int) -> None:
    # Ticks the encoder never writes (before 1601, after 9999): asyncua clamps them.
    value = ua.DataValue(Value=ua.Variant(1.0, VT.Double), SourceTimestamp=datetime(2026, 1, 1, tzinfo=UTC))
    data = publish_response([ua.DataChangeNotification([ua.MonitoredItemNotification(1, value)])])
    encoded = struct.pack("<q", ua.datetime_to_win_epoch(datetime(2026, 1, 1, tzinfo=UTC)))
    assert data.count(encoded) == 1
    data = data.replace(encoded, struct.pack("<q", ticks))
    assert_same(decode_publish(data), asyncua_view(data))


# What goes to asyncua's decoding: arrays, matrices, other Variant types, other notifications,
# a bad ServiceResult, diagnostics.
ARRAYS = st.one_of(
    st.lists(st.floats(allow_nan=False), max_size=3).map(lambda v: ua.Variant(v, VT.Double)),
    st.lists(st.integers(0, 9), min_size=4, max_size=4).map(
        lambda v: ua.Variant([v[:2], v[2:]], VT.Byte, Dimensions=[2, 2])
    ),
    st.builds(lambda t: ua.Variant(ua.LocalizedText(t), VT.LocalizedText), st.text(max_size=3)),
    st.builds(lambda n: ua.Variant(ua.NodeId(n, 2), VT.NodeId), st.integers(0, 99)),
    st.just(ua.Variant(ua.Argument(Name="x"), VT.ExtensionObject)),
    st.just(ua.Variant(ua.DataValue(ua.Variant(1, VT.Int32)), VT.DataValue)),
)
OTHER_NOTIFICATIONS = st.one_of(
    st.builds(lambda c: ua.StatusChangeNotification(Status=ua.StatusCode(c)), CODES),
    st.just(
        ua.EventNotificationList(Events=[ua.EventFieldList(ClientHandle=3, EventFields=[ua.Variant(1)])])
    ),
)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(data_changes(), max_size=2),
    data_changes(ARRAYS).filter(lambda n: n.MonitoredItems) | OTHER_NOTIFICATIONS,
    st.lists(data_changes(), max_size=2),
)
def test_what_the_fast_path_does_not_take_goes_to_asyncua(
    before: list[Any], odd: Any, after: list[Any]
) -> None:
    data = publish_response([*before, odd, *after])
    assert decode_publish(data) is None
    struct_from_binary(ua.PublishResponse, Buffer(data))  # which asyncua decodes


def _response(**header: Any) -> bytes:
    value = ua.DataValue(Value=ua.Variant(2.5, VT.Double))
    response = ua.PublishResponse()
    for name, field in header.items():
        setattr(response.ResponseHeader, name, field)
    notification = ua.DataChangeNotification([ua.MonitoredItemNotification(1, value)])
    response.Parameters.NotificationMessage.NotificationData = [notification]
    return struct_to_binary(response)


def test_a_bad_service_result_diagnostics_or_a_string_table_go_to_asyncua() -> None:
    assert decode_publish(_response()) is not None
    assert (
        decode_publish(_response(ServiceResult=ua.StatusCode(ua.StatusCodes.BadTooManyPublishRequests)))
        is None
    )
    assert decode_publish(_response(ServiceDiagnostics=ua.DiagnosticInfo(SymbolicId=3))) is None
    assert decode_publish(_response(StringTable=["x"])) is None
    response = ua.PublishResponse()
    notification = ua.DataChangeNotification(
        [ua.MonitoredItemNotification(1, ua.DataValue(ua.Variant(1.0)))],
        DiagnosticInfos=[ua.DiagnosticInfo()],
    )
    response.Parameters.NotificationMessage.NotificationData = [notification]
    assert decode_publish(struct_to_binary(response)) is None
    response.Parameters.NotificationMessage.NotificationData = [ua.DataChangeNotification()]
    response.Parameters.DiagnosticInfos = [ua.DiagnosticInfo()]
    assert decode_publish(struct_to_binary(response)) is None


@given(publish_responses, st.data())
def test_a_truncated_message_goes_to_asyncua(data: bytes, draw: st.DataObject) -> None:
    cut = draw.draw(st.integers(0, len(data) - 1))
    assert decode_publish(data[:cut]) is None


def test_another_response_goes_to_asyncua() -> None:
    assert decode_publish(struct_to_binary(ua.ReadResponse())) is None
