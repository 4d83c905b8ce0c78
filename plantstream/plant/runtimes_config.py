"""The runtimes' own settings: the kafka runtime, the embedded one's HTTP port, the points files."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field, field_validator, model_validator

from plantstream.plant.base import _Strict
from plantstream.plant.numbers import Integer

__all__ = ["Files", "Http", "Kafka", "KafkaTopics", "TopicName"]

_TOPIC = re.compile(r"[A-Za-z0-9._-]{1,249}")


_HOST_PORT = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):(\d{1,5})")


def _topic_name(value: str) -> str:
    if not _TOPIC.fullmatch(value) or value in {".", ".."}:
        raise ValueError(f"{value!r} is not a Kafka topic name (letters, digits, '.', '_', '-'; at most 249)")
    return value


TopicName = Annotated[str, AfterValidator(_topic_name)]


class KafkaTopics(_Strict):
    """The versioned topics of the kafka runtime (docs/kafka.md)."""

    readings: TopicName = Field(default="plantstream.readings.v1", description="Readings, keyed by machine")
    points: TopicName = Field(
        default="plantstream.points.v1", description="Points, keyed by machine (roll-ups: line or site)"
    )
    deadletter: TopicName = Field(
        default="plantstream.deadletter.v1", description="refused input with its reason"
    )
    windows: TopicName = Field(
        default="plantstream.windows.v1",
        description="closed machine windows and watermarks for the roll-ups, keyed by site",
    )

    @model_validator(mode="after")
    def _distinct(self) -> KafkaTopics:
        names = [self.readings, self.points, self.deadletter]
        if len(set(names)) != len(names):
            raise ValueError("readings, points and deadletter must be three different topics")
        if self.windows in names:
            raise ValueError("windows must be a topic of its own, not readings, points or deadletter")
        return self


class Kafka(_Strict):
    """The kafka runtime: where the broker is, the topics, and how they are created."""

    bootstrap: str = Field(
        default="127.0.0.1:9092", description="host:port[,host:port...]; ${KAFKA_BOOTSTRAP} allowed"
    )
    topics: KafkaTopics = Field(default_factory=KafkaTopics)
    partitions: Integer = Field(default=6, ge=1, le=10_000, description="bounds the parallelism of `process`")
    replication: Integer = Field(default=1, ge=1, le=32, description="replication factor of created topics")
    group: str = Field(default="plantstream", min_length=1, pattern=r"^[A-Za-z0-9._-]+$")

    @field_validator("bootstrap")
    @classmethod
    def _host_ports(cls, value: str) -> str:
        servers = [item.strip() for item in value.split(",")]
        for server in servers:
            match = _HOST_PORT.fullmatch(server)
            if match is None or not 0 < int(match.group(2)) < 65536:
                raise ValueError(f"{server!r} is not host:port (a list is comma-separated)")
        return ",".join(servers)

    def servers(self) -> list[str]:
        """The bootstrap servers as a list."""
        return self.bootstrap.split(",")


class Http(_Strict):
    """The embedded runtime's loopback endpoint: ``/healthz``, ``/metrics``, ``/stream``."""

    port: int = Field(
        default=8765, ge=0, le=65535, description="loopback port (0: any free one); --http-port overrides it"
    )


class Files(_Strict):
    """The points files of the state directory (``points/YYYY-MM-DD.jsonl``), of ``run`` and ``sink``.

    Every point goes there by default, raw readings included: at 2 000 tags x 10 Hz that is about
    3 MB a second, some 290 GB a day (docs/operations.md). A plant with a database sink can keep
    the raw readings out (``readings: false``; the sinks still get them) and bound the days kept.
    """

    readings: bool = Field(
        default=True,
        description="also write the raw `reading` points there (false: only the plant's sinks get them)",
    )
    keep_days: Integer | None = Field(
        default=None,
        ge=1,
        le=36_500,
        description="delete day files this many UTC days older than today (null: keep every day)",
    )
