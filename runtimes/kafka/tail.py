"""``plantstream tail --kafka``: follow the readings and points topics instead of ``/stream``."""

from __future__ import annotations

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from runtimes.tail import Filters, Show

__all__ = ["follow_topics"]


async def follow_topics(
    bootstrap: str,
    topics: list[str],
    filters: Filters,
    *,
    count: int | None,
    show: Show,
    from_beginning: bool = False,
) -> None:
    """Show matching records of ``topics`` (from their end, or their beginning) until ``count``.

    No consumer group: tailing moves no one's offsets.

    Raises:
        ConnectionError: no broker at ``bootstrap``, or one of ``topics`` does not exist.
    """
    partitions = await _partitions(bootstrap, topics)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap.split(","), client_id="plantstream-tail")
    await consumer.start()
    try:
        consumer.assign(partitions)
        if from_beginning:
            await consumer.seek_to_beginning(*partitions)
        else:
            await consumer.seek_to_end(*partitions)
        shown = 0
        while count is None or shown < count:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for record in records:
                    try:
                        data = orjson.loads(record.value or b"")
                    except orjson.JSONDecodeError:
                        continue  # the dead-letter topic's business, not an operator's view
                    if not isinstance(data, dict) or not ("measurement" in data or "machine" in data):
                        continue
                    if not filters.match(data):
                        continue
                    show(data, (record.value or b"").decode())
                    shown += 1
                    if count is not None and shown >= count:
                        return
    finally:
        await consumer.stop()


async def _partitions(bootstrap: str, topics: list[str]) -> list[TopicPartition]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap.split(","), client_id="plantstream-tail")
    try:
        await admin.start()
        existing = set(await admin.list_topics())
        missing = [t for t in topics if t not in existing]
        if missing:
            raise ConnectionError(f"topic {', '.join(missing)} does not exist at {bootstrap}")
        described = await admin.describe_topics(topics)
    except KafkaError as exc:
        raise ConnectionError(f"no Kafka broker at {bootstrap} ({exc})") from None
    finally:
        await admin.close()
    return [
        TopicPartition(topic["topic"], partition["partition"])
        for topic in described
        for partition in sorted(topic["partitions"], key=lambda item: int(item["partition"]))
    ]
