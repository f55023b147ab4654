"""How far the service's consumers have read each partition, for the sweeper.

The sweeper re-sends what is stored but unfinished after a delay. Under a backlog
longer than that delay, "unfinished" mostly means "still queued", and re-sending
it doubled the work of consumers that were already behind (docs/event-store.md).
A re-send also lands in the same partition (same key), behind the same queue, so
it cannot help until the consumers have read past the original. The rule:

- an envelope's partition has nothing queued (committed offset = end): re-send;
- otherwise remember the partition's end offset at this first look; once the
  committed offset reaches it, the consumers have read past every message that
  existed then (the original included, if it was published by then): re-send if
  the envelope is still unfinished;
- until then, wait (the sweeper does not move its position past it).
"""
from __future__ import annotations

from collections.abc import Iterable

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.partitioner import DefaultPartitioner

Offsets = dict[TopicPartition, tuple[int, int]]  # (committed, end)


class PartitionProgress:
    """Committed offsets of one consumer group against the partitions' end offsets."""

    def __init__(self, bootstrap: str, group_id: str) -> None:
        self.group_id = group_id
        self._admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)
        self._consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                          enable_auto_commit=False)
        self._partitioner = DefaultPartitioner()
        self._started = False

    async def _start(self) -> None:
        # Lazily, on first use: a sweeper pass that finds Kafka down fails (and is retried
        # next interval) instead of the sweeper dying at start-up.
        if not self._started:
            await self._admin.start()
            await self._consumer.start()
            self._started = True

    async def close(self) -> None:
        if self._started:
            await self._consumer.stop()
            await self._admin.close()
            self._started = False

    async def partition_of(self, topic: str, key: bytes) -> TopicPartition:
        """Where the producer's default partitioner sends `key` (the publisher uses it)."""
        await self._start()
        partitions = self._consumer.partitions_for_topic(topic)
        if not partitions:
            await self._consumer.topics()  # refresh metadata once
            partitions = self._consumer.partitions_for_topic(topic) or {0}
        ordered = sorted(partitions)
        return TopicPartition(topic, self._partitioner(key, ordered, ordered))

    async def snapshot(self, partitions: Iterable[TopicPartition]) -> Offsets:
        wanted = sorted(set(partitions))
        if not wanted:
            return {}
        await self._start()
        ends = await self._consumer.end_offsets(wanted)
        committed = await self._admin.list_consumer_group_offsets(self.group_id, partitions=wanted)
        return {tp: (max(committed[tp].offset, 0) if tp in committed else 0, ends[tp])
                for tp in wanted}


class Backlog:
    """The rule above, per partition, across sweeper passes (pure: unit-tested)."""

    def __init__(self) -> None:
        self.watermarks: dict[TopicPartition, int] = {}

    def passed(self, tp: TopicPartition, committed: int, end: int) -> bool:
        """True when the consumers have read past what was queued in `tp` when first looked
        at (or nothing is queued): an unfinished envelope there was not merely waiting."""
        if committed >= end or committed >= self.watermarks.get(tp, end + 1):
            self.watermarks.pop(tp, None)
            return True
        self.watermarks.setdefault(tp, end)
        return False
