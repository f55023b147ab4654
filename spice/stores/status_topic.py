"""Status transitions to the command_status topic, several to a message.

Every transition goes to the topic (the status table behind the status views is
built from it), and one Kafka message per transition made the topic a third of a
worker's Kafka traffic: each message is produced, fetched, wrapped by Faust and
handed to the status agent on its own. Transitions queued in the same loop turns
are gathered by partition and sent as one JSON array, to the partition their keys
hash to (Kafka's default partitioner, so the table and its routing are unchanged).

A message on command_status is therefore either one change (a JSON object, keyed
by its command id: other producers may keep sending those) or a JSON array of
changes whose command ids all hash to the message's partition.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import orjson
from aiokafka.errors import MessageSizeTooLargeError

from spice.partitioner import partition_of

log = logging.getLogger(__name__)

# A message stays well below Kafka's 1 MB default however large single changes are.
MAX_MESSAGE_BYTES = 256 * 1024
# Back-pressure: emitters wait while this many changes are queued (Kafka down).
MAX_QUEUED = 100_000
RETRY_SECONDS = 1.0


def partition_for(command_id: str, partitions: int) -> int:
    """Kafka's default partitioner (murmur2 of the key bytes), as the producer would."""
    return partition_of(command_id.encode(), partitions)


def messages(changes: list[dict[str, Any]]) -> Iterator[tuple[bytes, bytes]]:
    """(key, JSON array) per message, each below MAX_MESSAGE_BYTES (one change may exceed it)."""
    parts: list[bytes] = []
    size = 0
    first = ""
    for change in changes:
        encoded = orjson.dumps(change)
        if parts and size + len(encoded) > MAX_MESSAGE_BYTES:
            yield first.encode(), b"[" + b",".join(parts) + b"]"
            parts, size = [], 0
        if not parts:
            first = change["command_id"]
        parts.append(encoded)
        size += len(encoded) + 1
    if parts:
        yield first.encode(), b"[" + b",".join(parts) + b"]"


def decode(value: bytes) -> list[dict[str, Any]]:
    """The changes of one command_status message, in either form."""
    doc = orjson.loads(value)
    return doc if isinstance(doc, list) else [doc]


class StatusTopicWriter:
    def __init__(self, producer: Any, topic: str, partitions: int) -> None:
        self.producer = producer
        self.topic = topic
        self.partitions = partitions
        self._queued: dict[int, list[dict[str, Any]]] = {}
        self._count = 0
        self._sender: asyncio.Task[None] | None = None
        self._room = asyncio.Event()
        self._room.set()

    async def emit(self, change: dict[str, Any]) -> None:
        """Queued, not awaited to acknowledgement: the topic feeds views, and Redis
        already holds the transition for waiters. Waits only while the queue is full."""
        while self._count >= MAX_QUEUED:
            self._room.clear()
            await self._room.wait()
        self._queued.setdefault(partition_for(change["command_id"], self._partition_count()),
                                []).append(change)
        self._count += 1
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(self._send_queued(), name="status-topic")

    def _partition_count(self) -> int:
        """The topic's partitions as the producer's metadata knows them (what Kafka's
        partitioner would hash over), else the configured count."""
        cluster = getattr(getattr(self.producer, "client", None), "cluster", None)
        known = cluster.partitions_for_topic(self.topic) if cluster is not None else None
        return len(known) if known else self.partitions

    async def _send_queued(self) -> None:
        await asyncio.sleep(0)  # transitions made in this loop turn share the messages
        while self._queued:
            queued, self._queued = self._queued, {}
            for partition, changes in queued.items():
                await self._send(partition, changes)
                self._count -= len(changes)
            self._room.set()

    async def _send(self, partition: int, changes: list[dict[str, Any]]) -> None:
        for key, value in messages(changes):
            while True:
                try:
                    await self.producer.send(self.topic, value, key=key, partition=partition)
                    break
                except asyncio.CancelledError:
                    raise
                except MessageSizeTooLargeError as error:
                    # One change larger than the broker takes: retrying cannot help.
                    log.error("status change for %s too large for the topic: %s", key, error)
                    break
                except Exception as error:  # noqa: BLE001 - never drop a transition
                    log.warning("status topic send failed (%s: %s); retrying",
                                type(error).__name__, error)
                    await asyncio.sleep(RETRY_SECONDS)

    async def close(self) -> None:
        """Send what is queued (bounded by the caller's shutdown), then stop."""
        if self._sender is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._sender), 5.0)
            except (TimeoutError, asyncio.CancelledError):
                self._sender.cancel()
