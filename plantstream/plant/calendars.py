"""Shift calendars: shifts and their breaks by weekday, holidays, overtime."""

from __future__ import annotations

from datetime import date, time
from enum import StrEnum

from pydantic import Field

from plantstream.plant.base import Identifier, _Strict

__all__ = ["Break", "Calendar", "Overtime", "Shift", "Weekday"]


class Break(_Strict):
    """A planned break inside a shift (planned downtime), in local time."""

    start: time
    end: time
    name: str | None = None


class Weekday(StrEnum):
    """Days a shift runs on."""

    MON = "mon"
    TUE = "tue"
    WED = "wed"
    THU = "thu"
    FRI = "fri"
    SAT = "sat"
    SUN = "sun"


class Shift(_Strict):
    """A shift in local time; an ``end`` at or before ``start`` ends on the next day."""

    name: Identifier
    start: time
    end: time
    days: list[Weekday] = Field(default_factory=lambda: list(Weekday), min_length=1)
    breaks: list[Break] = Field(default_factory=list)


class Overtime(_Strict):
    """Extra planned operating time on one date (a calendar exception that enlarges POT)."""

    date: date
    start: time
    end: time
    name: Identifier = "overtime"


class Calendar(_Strict):
    """Shifts, holidays and overtime: where planned operating time comes from."""

    shifts: list[Shift] = Field(min_length=1)
    holidays: list[date] = Field(default_factory=list)
    overtime: list[Overtime] = Field(default_factory=list)
