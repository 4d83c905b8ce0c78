"""The OPC UA collector's value and time normalisation, which lets it skip Reading's validation."""

from __future__ import annotations

import enum
from datetime import UTC, datetime, timedelta, timezone

import pytest

from collectors.opcua_values import _aware, _plain
from plantstream.records import Quality, Reading


class _Mode(enum.IntEnum):
    AUTO = 3


class _Name(str, enum.Enum):  # noqa: UP042 (an enum of a generated OPC UA type)
    RUN = "run"


@pytest.mark.parametrize(
    ("value", "expected"),
    [(_Mode.AUTO, 3), (_Name.RUN, "run"), (True, True)],
)
def test_a_subclass_value_becomes_its_plain_type(value: object, expected: object) -> None:
    plain = _plain(value)  # type: ignore[arg-type]
    assert plain == expected
    assert type(plain) is type(expected)


def test_times_become_utc_and_the_opc_ua_null_time_is_none() -> None:
    seoul = timezone(timedelta(hours=9))
    local = datetime(2026, 11, 28, 18, 0, tzinfo=seoul)
    assert _aware(local) == datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
    assert _aware(local).tzinfo is UTC  # type: ignore[union-attr]
    assert _aware(datetime(2026, 11, 28, 9, 0)).tzinfo is UTC  # type: ignore[union-attr]  # noqa: DTZ001
    assert _aware(datetime(1601, 1, 1)) is None  # noqa: DTZ001
    assert _aware(None) is None


def test_what_the_collector_builds_equals_a_validated_reading() -> None:
    moment = _aware(datetime(2026, 11, 28, 18, 0, tzinfo=timezone(timedelta(hours=9))))
    assert moment is not None
    fields = {
        "ts": moment, "machine": "m1", "signal": "mode", "value": _plain(_Mode.AUTO),
        "quality": Quality.UNCERTAIN, "status_code": 0x40000000, "server_ts": moment,
        "ingest_ts": moment, "source": "plc", "seq": 1,
    }  # fmt: skip
    assert Reading.trusted(**fields) == Reading(**fields)  # type: ignore[arg-type]
