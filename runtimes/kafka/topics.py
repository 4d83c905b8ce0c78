"""What the three kafka roles share: topic creation, record keys and the dead-letter form."""

from __future__ import annotations

import contextlib
import logging
from datetime import UTC, datetime

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from plantstream.plant.schema import Kafka
from plantstream.records import DeadLetter

__all__ = [
    "PRODUCER_BATCH_BYTES",
    "STATE_RECORD_BYTES",
    "dead_letter",
    "ensure_compacted",
    "ensure_topics",
    "utf8",
]

_log = logging.getLogger("plantstream.kafka")

PRODUCER_BATCH_BYTES = 512 * 1024
"""The producers' batch size per partition (aiokafka's default is 16 KiB).

aiokafka keeps one open batch per partition and one request in flight per broker, and a send to a
partition whose batch is full waits until that batch has gone: a partition moves at most one
batch per round trip. At 16 KiB that is about 80 readings, or 8 machine states of ``process``;
when the broker is slow to answer (a busy machine), the roles then wait on round trips while the
CPU is idle (docs/benchmarks.md, the kafka roles). Below the broker's 1 MiB ``message.max.bytes``.
"""


STATE_RECORD_BYTES = 64 * 1024 * 1024
"""The largest state record (``process``'s machine and roll-up states) the roles write and read.

The roll-up state of one site holds every member machine's window parts: 1.4 MB for a site of
2 010 machines, over Kafka's default 1 MiB record limit. The state topics are created with this
``max.message.bytes`` and ``process`` produces and loads with this bound.
"""


async def ensure_topics(settings: Kafka) -> list[str]:
    """Create the readings, points, dead-letter and windows topics that are missing; return those created.

    Topics that exist are left as they are (their partition count is the operator's business:
    raising it moves machines to other partitions, see docs/kafka.md).
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.servers(), client_id="plantstream-admin")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        topics = settings.topics
        wanted = [topics.readings, topics.points, topics.deadletter, topics.windows]
        missing = [name for name in wanted if name not in existing]
        if missing:
            # Another role may create them at the same moment: that one is as good as ours.
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(
                    [NewTopic(name, settings.partitions, settings.replication) for name in missing]
                )
            _log.info(
                "created topics %s (%d partitions, replication %d)",
                ", ".join(missing),
                settings.partitions,
                settings.replication,
            )
        return missing
    finally:
        await admin.close()


async def ensure_compacted(settings: Kafka, name: str) -> None:
    """Create the compacted topic ``name`` (a state topic) unless it exists."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.servers(), client_id="plantstream-admin")
    await admin.start()
    try:
        if name in set(await admin.list_topics()):
            return
        topic = NewTopic(
            name,
            settings.partitions,
            settings.replication,
            topic_configs={"cleanup.policy": "compact", "max.message.bytes": str(STATE_RECORD_BYTES)},
        )
        with contextlib.suppress(TopicAlreadyExistsError):
            await admin.create_topics([topic])
    finally:
        await admin.close()


def utf8(raw: bytes | None) -> str:
    """Bytes of a record as text for a dead letter; bytes that are not UTF-8 are escaped."""
    if raw is None:
        return ""
    return raw.decode("utf-8", errors="backslashreplace")


def dead_letter(source: str, where: str, reason: str, error: str, raw: bytes | str | None) -> DeadLetter:
    """A dead letter stamped now; ``raw`` is kept as text."""
    text = raw if isinstance(raw, str) else utf8(raw)
    now = datetime.now(tz=UTC)
    return DeadLetter(ts=now, source=source, where=where, reason=reason, error=error, raw=text)
