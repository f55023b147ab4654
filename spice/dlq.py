"""Dead letters: list, show, and submit again (`spice dlq list|show|retry`)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from spice.kafka_client import kafka_options
from spice.settings import Settings
from spice.topics import DLQ_TOPICS


@dataclass(frozen=True)
class DeadLetter:
    topic: str
    offset: int
    body: dict[str, Any]

    def summary(self) -> dict[str, Any]:
        envelope = self.body.get("envelope") or {}
        return {"dlq": self.topic, "offset": self.offset,
                "command_id": envelope.get("event_id"),
                "command_type": (envelope.get("metadata") or {}).get("command_type"),
                "error": str(self.body.get("error", ""))[:200],
                "attempts": self.body.get("attempts"), "from": self.body.get("topic"),
                "retryable": bool(envelope)}


async def read(settings: Settings, topics: tuple[str, ...] = DLQ_TOPICS,
               offset: int | None = None, limit: int = 100) -> list[DeadLetter]:
    consumer = AIOKafkaConsumer(**kafka_options(settings), group_id=None,
                                enable_auto_commit=False)
    await consumer.start()
    letters: list[DeadLetter] = []
    try:
        partitions = [TopicPartition(t, 0) for t in topics]
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        for tp in partitions:
            start = (await consumer.beginning_offsets([tp]))[tp]
            if offset is not None:
                if not start <= offset < ends[tp]:
                    continue
                consumer.seek(tp, offset)
            else:
                consumer.seek(tp, max(start, ends[tp] - limit))
            while await consumer.position(tp) < ends[tp]:
                batch = await consumer.getmany(tp, timeout_ms=1000)
                for record in batch.get(tp, []):
                    letters.append(DeadLetter(tp.topic, record.offset, json.loads(record.value)))
                if offset is not None and letters:
                    return letters[:1]
    finally:
        await consumer.stop()
    return letters


async def retry(settings: Settings, topic: str, offset: int) -> dict[str, Any]:
    """Send the dead envelope to its original topic again. The registry marked it failed,
    so a worker claims it afresh; if it had in fact completed, it is a duplicate and a no-op."""
    letters = await read(settings, (topic,), offset=offset)
    if not letters:
        raise RuntimeError(f"no dead letter at {topic}@{offset}")
    letter = letters[0]
    envelope = letter.body.get("envelope")
    if not envelope:
        raise RuntimeError(f"{topic}@{offset} is an undecodable message; it cannot be retried, "
                           "only inspected (spice dlq show)")
    producer = AIOKafkaProducer(**kafka_options(settings), acks="all", enable_idempotence=True)
    await producer.start()
    try:
        target = letter.body.get("topic") or envelope["metadata"]["kafka_topic"]
        await producer.send_and_wait(target, json.dumps(envelope).encode(),
                                     key=envelope["aggregate_id"].encode())
    finally:
        await producer.stop()
    return {"retried": envelope["event_id"], "to": target}
