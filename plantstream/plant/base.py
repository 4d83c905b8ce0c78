"""What every plant-file model shares: unknown keys refused, values frozen, ids in one form."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Identifier"]

_ID = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"


Identifier = Annotated[str, Field(pattern=_ID, max_length=64)]
"""Ids end up as InfluxDB tags and Kafka keys: letters, digits, ``_``, ``.``, ``-``."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
