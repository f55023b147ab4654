"""Table writes of one batch, sent to the changelog as one record batch per partition.

Faust sends every table write as its own message (a FutureMessage, its producer
buffer, one aiokafka `send`): the status agent writes a document per command, and on
the live projection benchmark those writes alone halved the worker's rate (1,530 vs
2,859 events/s with them switched off). Here a batch's writes go out as
`BatchBuilder`s, one per changelog partition, with the same keys and values Faust
would write (raw keys, JSON values, a null value as the tombstone), so recovery and
compaction see an ordinary changelog.

Durability is the agent's: `flush()` returns once Kafka has acknowledged every record,
and the status agent acks its source messages only after that, so a crash re-reads
them instead of leaving the table's changelog behind its source.

Order: one flush sends a partition's records in write order. Two flushes (the agent's
and the expiry timer's) may overlap, and a partition one of them has to send again
can land after the other's records; for a key both wrote, a restarted worker may then
recover the older value, or lose the key, and the status API answers that command
from Redis or the event store (its fallbacks) instead.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson
from aiokafka.errors import KafkaError

log = logging.getLogger(__name__)
RETRY_DELAY = 1.0

# (changelog topic, partition) -> offset of the last record this process wrote there.
# Faust's in-memory tables persist no offsets, so every recovery (each rebalance) read
# again every record the worker itself had written since the last one: half a second
# of a rolling restart's pause. spice/faust_fixes.py (`_own_writes_recovered`) starts
# the next recovery of a partition owned throughout after these records instead.
WRITTEN: dict[tuple[str, int], int] = {}


def encode_value(value: Any) -> bytes | None:
    """The bytes Faust's JSON value serializer would write; None is a tombstone."""
    return None if value is None else orjson.dumps(value)


class ChangelogWrites:
    def __init__(self) -> None:
        # (changelog topic, partition) -> records in write order
        self._records: dict[tuple[str, int], list[tuple[bytes, bytes | None]]] = {}

    def __len__(self) -> int:
        return sum(len(records) for records in self._records.values())

    def put(self, table: Any, partition: int, key: bytes, value: Any) -> None:
        """Write `key` in the table's memory now; its changelog record goes at flush."""
        # The in-memory store's key -> partition map is how it drops a partition's
        # keys when the partition leaves this worker; Faust fills it only from changelog
        # reads, so keys written here stayed behind as stale copies.
        key_partition = getattr(table.data, "_key_partition", None)
        if value is None:
            table.data.pop(key, None)
            if key_partition is not None:
                key_partition.pop(key, None)
        else:
            table.data[key] = value
            if key_partition is not None:
                key_partition[key] = partition
        topic = table.changelog_topic.get_topic_name()
        self._records.setdefault((topic, partition), []).append((key, encode_value(value)))

    async def flush(self, producer: Any) -> None:
        """Send everything, one partition's records in order; retry a partition whose
        send failed, from its first record (a repeat of a key's record is harmless, its
        last record still comes last), until Kafka takes it."""
        pending = dict(self._records)
        self._records = {}
        while pending:
            results = await asyncio.gather(*[self._send(producer, topic, partition, records)
                                             for (topic, partition), records in pending.items()],
                                           return_exceptions=True)
            failed = {}
            for (where, records), result in zip(pending.items(), results, strict=True):
                if isinstance(result, BaseException):
                    if not isinstance(result, (KafkaError, OSError, asyncio.TimeoutError)):
                        raise result
                    log.warning("changelog %s[%d]: %d records not written (%s); retrying",
                                where[0], where[1], len(records), result)
                    failed[where] = records
            pending = failed
            if pending:
                await asyncio.sleep(RETRY_DELAY)

    @staticmethod
    async def _send(producer: Any, topic: str, partition: int,
                    records: list[tuple[bytes, bytes | None]]) -> None:
        deliveries: list[tuple[Any, int]] = []  # (delivery, records in the batch)
        batch = producer.create_batch()
        for key, value in records:
            if batch.append(key=key, value=value, timestamp=None) is not None:
                continue
            if batch.record_count():  # full: send it, and try the record in a new one
                batch.close()
                deliveries.append((await producer.send_batch(batch, topic, partition=partition),
                                   batch.record_count()))
                batch = producer.create_batch()
                if batch.append(key=key, value=value, timestamp=None) is not None:
                    continue
            log.error("changelog %s[%d]: record for %r larger than a batch; dropped",
                      topic, partition, key)
        if batch.record_count():
            batch.close()
            deliveries.append((await producer.send_batch(batch, topic, partition=partition),
                               batch.record_count()))
        sent = await asyncio.gather(*[delivery for delivery, _ in deliveries])
        last = max((metadata.offset + count - 1 for metadata, (_, count) in zip(sent, deliveries, strict=True)
                    if metadata is not None and metadata.offset is not None and metadata.offset >= 0),
                   default=None)
        if last is not None and last > WRITTEN.get((topic, partition), -1):
            WRITTEN[(topic, partition)] = last
