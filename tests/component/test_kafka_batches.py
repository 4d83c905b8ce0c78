"""Records appended into producer batches (runtimes.kafka.batches) on a real Kafka broker.

What ``collect`` and ``process`` rely on: each record lands in the partition the producer's own
partitioner would choose for its key, in the order it was appended, exactly once; a record too
large for a batch still goes out; several tasks may append at once.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.partitioner import DefaultPartitioner
from services import KafkaBroker

from runtimes.kafka.batches import RecordBatches

BATCH_BYTES = 16 * 1024  # small, so that the tests fill many batches


@pytest.fixture
async def topic(kafka: KafkaBroker) -> str:
    name = f"batches-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, num_partitions=4, replication_factor=1)])
    finally:
        await admin.close()
    return name


@pytest.fixture
async def producer(kafka: KafkaBroker) -> AsyncIterator[AIOKafkaProducer]:
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka.bootstrap,
        acks="all",
        enable_idempotence=True,
        max_batch_size=BATCH_BYTES,
        max_request_size=1024 * 1024,
    )
    await producer.start()
    yield producer
    await producer.stop()


async def read_all(kafka: KafkaBroker, topic: str, count: int) -> list[tuple[int, bytes | None, bytes]]:
    """(partition, key, value) of the first ``count`` records, each partition in its order."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka.bootstrap,
        auto_offset_reset="earliest",
        fetch_max_bytes=4 * 1024 * 1024,
    )
    await consumer.start()
    got: list[tuple[int, bytes | None, bytes]] = []
    try:
        async with asyncio.timeout(30):
            while len(got) < count:
                for tp, records in (await consumer.getmany(timeout_ms=500)).items():
                    got += [(tp.partition, r.key, r.value) for r in records]
        await asyncio.sleep(0.5)  # and nothing more than that
        for tp, records in (await consumer.getmany(timeout_ms=500)).items():
            got += [(tp.partition, r.key, r.value) for r in records]
    finally:
        await consumer.stop()
    return got


async def test_records_land_in_their_keys_partitions_in_order_exactly_once(
    kafka: KafkaBroker, topic: str, producer: AIOKafkaProducer
) -> None:
    batches = RecordBatches(producer, BATCH_BYTES)
    keys = [f"m{k}".encode() for k in range(40)]
    sent = [(keys[n % len(keys)], f"{n:06d}".encode() * 20) for n in range(3000)]  # 120 B each: many batches
    for key, value in sent:
        await batches.add(topic, key, value)
    await asyncio.gather(*await batches.flush())
    assert batches.records == len(sent)

    got = await read_all(kafka, topic, len(sent))
    assert sorted(value for _, _, value in got) == sorted(value for _, value in sent)  # once each
    partitions = [0, 1, 2, 3]
    choose = DefaultPartitioner()
    for partition, key, _ in got:
        assert partition == choose(key, partitions, partitions)
    for key in keys:
        assert [v for _, k, v in got if k == key] == [v for k, v in sent if k == key]


async def test_a_record_larger_than_a_batch_goes_out_after_what_its_partition_holds(
    kafka: KafkaBroker, topic: str, producer: AIOKafkaProducer
) -> None:
    batches = RecordBatches(producer, BATCH_BYTES)
    large = os.urandom(3 * BATCH_BYTES)
    await batches.add(topic, b"k", b"before")
    await batches.add(topic, b"k", large)
    await batches.add(topic, b"k", b"after")
    await asyncio.gather(*await batches.flush())
    assert [value for _, _, value in await read_all(kafka, topic, 3)] == [b"before", large, b"after"]


async def test_tasks_appending_at_once_lose_nothing(
    kafka: KafkaBroker, topic: str, producer: AIOKafkaProducer
) -> None:
    batches = RecordBatches(producer, BATCH_BYTES)

    async def source(name: str) -> None:
        for n in range(1500):
            await batches.add(topic, b"same-key", f"{name}{n:05d}".encode() * 10)

    await asyncio.gather(source("a"), source("b"), source("c"))
    await asyncio.gather(*await batches.flush())
    got = [value for _, _, value in await read_all(kafka, topic, 4500)]
    assert len(got) == 4500
    for name in "abc":  # each source's own order is kept
        mine = [v for v in got if v.startswith(name.encode())]
        assert mine == [f"{name}{n:05d}".encode() * 10 for n in range(1500)]


async def test_records_without_a_key_are_spread_over_the_partitions(
    kafka: KafkaBroker, topic: str, producer: AIOKafkaProducer
) -> None:
    batches = RecordBatches(producer, BATCH_BYTES)
    for n in range(8):
        await batches.add(topic, None, f"letter {n}".encode())
    await asyncio.gather(*await batches.flush())
    assert sorted({partition for partition, _, _ in await read_all(kafka, topic, 8)}) == [0, 1, 2, 3]
