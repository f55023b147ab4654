"""Status transitions gathered into per-partition messages (spice/stores/status_topic.py)."""
from __future__ import annotations

import asyncio
import uuid
from typing import Any

import orjson
import pytest
from aiokafka.partitioner import DefaultPartitioner

from spice.stores import status_topic
from spice.stores.status_topic import StatusTopicWriter, decode, messages, partition_for


def change(cid: str | None = None, status: str = "PROCESSING", **extra: Any) -> dict[str, Any]:
    return {"command_id": cid or str(uuid.uuid4()), "status": status, "message": "",
            "timestamp": 1.0, **extra}


class FakeProducer:
    def __init__(self, failures: int = 0) -> None:
        self.sent: list[tuple[str, bytes, bytes, int]] = []
        self.failures = failures

    async def send(self, topic: str, value: bytes, *, key: bytes, partition: int) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("broker gone")
        self.sent.append((topic, value, key, partition))


def test_partition_is_kafkas_default_partitioner() -> None:
    for _ in range(200):
        cid = str(uuid.uuid4())
        assert partition_for(cid, 8) == DefaultPartitioner()(cid.encode(), list(range(8)), [])


def test_decode_takes_one_change_or_an_array() -> None:
    one = change()
    assert decode(orjson.dumps(one)) == [one]
    assert decode(orjson.dumps([one, one])) == [one, one]


def test_messages_split_below_the_size_limit_and_keep_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(status_topic, "MAX_MESSAGE_BYTES", 1000)
    changes = [change(message="x" * 200) for _ in range(20)]
    out = list(messages(changes))
    assert len(out) > 1
    assert all(len(value) <= 1000 for _, value in out)
    assert [c for _, value in out for c in decode(value)] == changes
    # Each message is keyed by its first change's command id.
    assert [key.decode() for key, _ in out] == [decode(v)[0]["command_id"] for _, v in out]


def test_one_oversized_change_still_goes_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(status_topic, "MAX_MESSAGE_BYTES", 100)
    big, small = change(message="y" * 500), change()
    out = list(messages([small, big, small]))
    assert [len(decode(v)) for _, v in out] == [1, 1, 1]


async def test_changes_of_one_turn_share_one_message_per_partition() -> None:
    producer = FakeProducer()
    writer = StatusTopicWriter(producer, "command_status", 8)
    changes = [change() for _ in range(100)]
    await asyncio.gather(*[writer.emit(c) for c in changes])
    await writer.close()
    partitions = {partition_for(c["command_id"], 8) for c in changes}
    assert len(producer.sent) == len(partitions)
    received = []
    for topic, value, key, partition in producer.sent:
        assert topic == "command_status"
        batch = decode(value)
        assert {partition_for(c["command_id"], 8) for c in batch} == {partition}
        assert partition_for(key.decode(), 8) == partition
        received += batch
    assert sorted(c["command_id"] for c in received) == sorted(c["command_id"] for c in changes)


async def test_order_of_one_commands_changes_is_kept() -> None:
    producer = FakeProducer()
    writer = StatusTopicWriter(producer, "command_status", 8)
    cid = str(uuid.uuid4())
    for status in ("PROCESSING", "COMPLETED", "PROJECTED"):
        await writer.emit(change(cid, status))
        await asyncio.sleep(0)
    await writer.close()
    assert [c["status"] for _, v, _, _ in producer.sent for c in decode(v)] == [
        "PROCESSING", "COMPLETED", "PROJECTED"]


async def test_a_failed_send_is_retried_not_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(status_topic, "RETRY_SECONDS", 0.01)
    producer = FakeProducer(failures=3)
    writer = StatusTopicWriter(producer, "command_status", 8)
    one = change()
    await writer.emit(one)
    await writer.close()
    assert [decode(v) for _, v, _, _ in producer.sent] == [[one]]


async def test_emitters_wait_while_the_queue_is_full(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(status_topic, "MAX_QUEUED", 5)
    monkeypatch.setattr(status_topic, "RETRY_SECONDS", 0.05)
    producer = FakeProducer(failures=2)
    writer = StatusTopicWriter(producer, "command_status", 8)
    for _ in range(5):
        await writer.emit(change())
    blocked = asyncio.create_task(writer.emit(change()))
    await asyncio.sleep(0.02)
    assert not blocked.done()  # the queue is full while the broker fails
    await asyncio.wait_for(blocked, 2.0)
    await writer.close()
    assert sum(len(decode(v)) for _, v, _, _ in producer.sent) == 6


async def test_partitions_follow_the_topics_metadata_when_the_producer_knows_it() -> None:
    """Kafka's partitioner hashes over the topic's real partition count; a topic created
    with another count than configured still gets each change where its key would go."""
    from types import SimpleNamespace

    producer = FakeProducer()
    producer.client = SimpleNamespace(cluster=SimpleNamespace(  # type: ignore[attr-defined]
        partitions_for_topic=lambda topic: {0, 1, 2, 3}))
    writer = StatusTopicWriter(producer, "command_status", 8)
    changes = [change() for _ in range(50)]
    for c in changes:
        await writer.emit(c)
    await writer.close()
    for _, value, _, partition in producer.sent:
        assert partition < 4
        assert {partition_for(c["command_id"], 4) for c in decode(value)} == {partition}
