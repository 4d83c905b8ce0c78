"""Where points go: the sinks of a plant file and the durable outbox in front of each."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, field_validator

from plantstream.plant.base import Identifier, _Strict
from plantstream.plant.numbers import Integer, Number

__all__ = ["InfluxDbSink", "OutboxSettings", "Precision", "Sink"]

Precision = Literal["s", "ms", "us", "ns"]


def _default_precision() -> dict[str, Precision]:
    return {"default": "s"}


class OutboxSettings(_Strict):
    """The durable outbox in front of a sink: its bound and what happens when it is full."""

    max_bytes: Integer = Field(default=1_073_741_824, gt=0, description="bytes of waiting lines (1 GiB)")
    when_full: Literal["block", "drop_oldest"] = Field(
        default="block", description="block back-pressures the pipeline; drop_oldest counts what it drops"
    )


class InfluxDbSink(_Strict):
    """InfluxDB through its v2 write API (InfluxDB 2.x and 3.x; 1.8+ accepts the same endpoint)."""

    type: Literal["influxdb"]
    id: Identifier = "influxdb"
    url: str = Field(description="http(s)://host[:port][/path]; ${VAR} allowed")
    org: str = Field(min_length=1)
    bucket: str = Field(min_length=1)
    token_env: str = Field(
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="name of the environment variable holding the token"
    )
    batch_size: Integer = Field(default=5_000, gt=0, le=1_000_000, description="lines per write")
    flush_interval_s: Number = Field(default=1.0, gt=0, description="longest wait before a partial batch")
    gzip: bool = Field(default=True, strict=True, description="compress request bodies")
    precision: dict[str, Precision] = Field(
        default_factory=_default_precision,
        description="time precision per measurement; `default` for the others",
    )
    outbox: OutboxSettings = Field(default_factory=OutboxSettings)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not re.fullmatch(r"https?://(\[[0-9A-Fa-f:.]+\]|[^/:\s\[\]]+)(:\d{1,5})?(/\S*)?", value):
            raise ValueError(f"{value!r} is not http(s)://host[:port][/path]")
        return value

    def precision_of(self, measurement: str) -> Precision:
        """The time precision of ``measurement``'s lines."""
        return self.precision.get(measurement) or self.precision.get("default") or "s"


Sink = Annotated[InfluxDbSink, Field(discriminator="type")]
