"""Table writes sent as record batches (spice/tables/changelog.py)."""
from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import orjson
from aiokafka.errors import KafkaConnectionError

from spice.tables import changelog
from spice.tables.changelog import ChangelogWrites


class FakeTopic:
    def __init__(self, name: str) -> None:
        self.name = name

    def get_topic_name(self) -> str:
        return self.name


class FakeTable:
    def __init__(self, name: str) -> None:
        self.data: dict[bytes, Any] = {}
        self.changelog_topic = FakeTopic(name)


class FakeBatch:
    def __init__(self, capacity: int) -> None:
        self.capacity, self.records, self.closed = capacity, [], False

    def append(self, *, key: bytes, value: bytes | None, timestamp: Any) -> object | None:
        if self.closed or len(self.records) >= self.capacity:
            return None
        self.records.append((key, value))
        return object()

    def record_count(self) -> int:
        return len(self.records)

    def close(self) -> None:
        self.closed = True


class FakeProducer:
    """Kafka as the writer sees it: batches delivered in order per partition, and a
    partition that fails its first `failures` deliveries."""

    def __init__(self, capacity: int = 3, failures: dict[int, int] | None = None) -> None:
        self.capacity = capacity
        self.failures = dict(failures or {})
        self.log: dict[tuple[str, int], list[tuple[bytes, bytes | None]]] = {}

    def create_batch(self) -> FakeBatch:
        return FakeBatch(self.capacity)

    async def send_batch(self, batch: FakeBatch, topic: str, *, partition: int) -> asyncio.Future:
        assert batch.closed, "a batch is closed before it is handed over"
        done = asyncio.get_running_loop().create_future()
        if self.failures.get(partition):
            self.failures[partition] -= 1
            done.set_exception(KafkaConnectionError("broker gone"))
        else:
            log = self.log.setdefault((topic, partition), [])
            done.set_result(SimpleNamespace(offset=len(log)))  # the batch's base offset
            log.extend(batch.records)
        return done


def last_values(log: list[tuple[bytes, bytes | None]]) -> dict[bytes, bytes | None]:
    """What compaction (and a table's recovery) keeps: the last record of each key."""
    return {key: value for key, value in log}


async def test_writes_reach_the_table_at_once_and_the_changelog_at_flush() -> None:
    table, producer, writes = FakeTable("t-changelog"), FakeProducer(), ChangelogWrites()
    for n in range(7):
        writes.put(table, n % 2, f"k{n}".encode(), {"n": n})
    writes.put(table, 0, b"k0", {"n": 100})  # a second write of one key, later
    assert table.data[b"k0"] == {"n": 100} and len(writes) == 8
    assert producer.log == {}
    await writes.flush(producer)
    assert len(writes) == 0
    even = producer.log[("t-changelog", 0)]
    assert [k for k, _ in even] == [b"k0", b"k2", b"k4", b"k6", b"k0"]  # split over batches, in order
    assert last_values(even)[b"k0"] == orjson.dumps({"n": 100})
    assert [k for k, _ in producer.log[("t-changelog", 1)]] == [b"k1", b"k3", b"k5"]


async def test_a_none_value_is_a_tombstone_and_leaves_the_table() -> None:
    table, producer, writes = FakeTable("t-changelog"), FakeProducer(), ChangelogWrites()
    table.data[b"gone"] = {"old": True}
    writes.put(table, 3, b"gone", None)
    writes.put(table, 3, b"never-there", None)
    await writes.flush(producer)
    assert b"gone" not in table.data
    assert producer.log[("t-changelog", 3)] == [(b"gone", None), (b"never-there", None)]


async def test_a_failed_partition_is_sent_again_and_its_last_record_stays_last(monkeypatch) -> None:
    monkeypatch.setattr("spice.tables.changelog.RETRY_DELAY", 0.0)
    table, writes = FakeTable("t-changelog"), ChangelogWrites()
    producer = FakeProducer(capacity=2, failures={1: 1})  # partition 1's first batch fails
    for n in range(5):
        writes.put(table, 1, b"same", {"v": n})
    writes.put(table, 2, b"other", {"v": 0})
    await writes.flush(producer)
    resent = producer.log[("t-changelog", 1)]
    assert len(resent) > 5  # the later batches landed, then the whole partition again
    assert last_values(resent) == {b"same": orjson.dumps({"v": 4})}
    assert producer.log[("t-changelog", 2)] == [(b"other", orjson.dumps({"v": 0}))]


async def test_values_are_the_json_faust_reads_back() -> None:
    from faust.serializers.codecs import loads

    table, producer, writes = FakeTable("t-changelog"), FakeProducer(), ChangelogWrites()
    doc = {"command_id": "c", "history": [{"status": "PENDING", "timestamp": 1.5}], "progress": None,
           "text": "ünïcode ✓"}
    writes.put(table, 0, b"c", doc)
    writes.put(table, 0, b"n", 41)
    await writes.flush(producer)
    values = dict(producer.log[("t-changelog", 0)])
    assert loads("json", values[b"c"]) == doc and loads("json", values[b"n"]) == 41


async def test_the_offset_of_each_partitions_last_written_record_is_kept(monkeypatch) -> None:
    monkeypatch.setattr(changelog, "WRITTEN", {("t-changelog", 0): 2})
    table, producer, writes = FakeTable("t-changelog"), FakeProducer(capacity=2), ChangelogWrites()
    for n in range(5):
        writes.put(table, 0, f"k{n}".encode(), n)  # three batches: offsets 0-1, 2-3, 4
    writes.put(table, 1, b"k", 1)
    await writes.flush(producer)
    assert changelog.WRITTEN == {("t-changelog", 0): 4, ("t-changelog", 1): 0}


async def test_written_keys_are_mapped_to_their_partition_as_faust_maps_recovered_ones() -> None:
    class Store(dict):
        def __init__(self) -> None:
            super().__init__()
            self._key_partition: dict[bytes, int] = {}

    table = FakeTable("t-changelog")
    table.data = Store()
    writes = ChangelogWrites()
    writes.put(table, 5, b"a", 1)
    writes.put(table, 6, b"b", 1)
    writes.put(table, 6, b"b", None)
    assert table.data == {b"a": 1} and table.data._key_partition == {b"a": 5}
