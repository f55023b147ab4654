"""Read what reached Kafka, for assertions."""
import asyncio
import time

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from spice.kafka_client import kafka_options


async def create_topic(settings, name: str, partitions: int = 4) -> None:
    admin = AIOKafkaAdminClient(**kafka_options(settings))
    await admin.start()
    try:
        if name not in await admin.list_topics():
            await admin.create_topics([NewTopic(name, partitions, 1)])
    finally:
        await admin.close()


async def collect(settings, topic: str, expected: set[str], timeout: float = 60.0,
                  field: str = "event_id", enough: int | None = None) -> dict[str, int]:
    """Consume `topic` from the beginning until every expected id (or `enough` of
    them) is seen; count each."""
    import json

    consumer = AIOKafkaConsumer(topic, **kafka_options(settings), group_id=None,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    seen: dict[str, int] = {}
    deadline = time.monotonic() + timeout
    try:
        target = len(expected) if enough is None else enough
        while len(set(seen) & expected) < target and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for record in records:
                    value = json.loads(record.value)[field]
                    if value in expected:
                        seen[value] = seen.get(value, 0) + 1
    finally:
        await consumer.stop()
    return seen


async def wait_for(predicate, timeout: float = 30.0, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        await asyncio.sleep(interval)
    raise AssertionError("condition not met in time")
