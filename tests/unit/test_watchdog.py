"""The partition watchdog: a head message owed and held by nobody is sought back to,
once it has looked stuck at two checks in a row; one being processed is left alone."""
from collections import defaultdict, namedtuple
from types import SimpleNamespace

import pytest
from intervaltree import IntervalTree

from spice.agents.watchdog import Watchdog, stuck_heads

pytestmark = pytest.mark.unit
TP = namedtuple("TP", "topic partition")
HEAD = TP("instance_commands", 0)


class FakeConsumer:
    def __init__(self, committed: int, acked: list[int], held: list[int] = ()) -> None:
        self._acked = defaultdict(list, {HEAD: acked})
        self._committed_offset = defaultdict(lambda: None, {HEAD: committed})
        self._gap = defaultdict(IntervalTree)
        self._unacked_messages = [SimpleNamespace(tp=HEAD, offset=o) for o in held]
        self.sought: list[tuple] = []
        self._read_offset = {}
        self._buffered_partitions = set()
        self.resumed = []

    def assignment(self):
        return {HEAD}

    async def seek(self, tp, offset):
        self.sought.append((tp, offset))

    def resume_partitions(self, tps):
        self.resumed += list(tps)


def test_a_head_owed_by_nobody_is_stuck():
    assert stuck_heads(FakeConsumer(10, [11, 12])) == {HEAD: 10}


def test_a_head_in_flight_is_not_stuck():
    assert stuck_heads(FakeConsumer(10, [11, 12], held=[10])) == {}


def test_contiguous_acks_and_known_gaps_are_not_stuck():
    assert stuck_heads(FakeConsumer(10, [10, 11])) == {}
    gapped = FakeConsumer(10, [12])
    gapped._gap[HEAD].addi(10, 12)
    assert stuck_heads(gapped) == {}


def test_other_topics_are_not_watched():
    consumer = FakeConsumer(10, [11])
    consumer._acked = defaultdict(list, {TP("command_status", 0): [11]})
    consumer._committed_offset = defaultdict(lambda: None, {TP("command_status", 0): 10})
    assert stuck_heads(consumer) == {}


async def test_seeks_back_only_after_two_checks_at_the_same_head():
    dog, consumer = Watchdog(), FakeConsumer(10, [11, 12])
    assert await dog.check(consumer) == [] and consumer.sought == []
    assert await dog.check(consumer) == [HEAD]
    assert consumer.sought == [(HEAD, 10)]


async def test_a_head_that_moved_between_checks_is_not_sought():
    dog, consumer = Watchdog(), FakeConsumer(10, [11, 12])
    await dog.check(consumer)
    consumer._committed_offset[HEAD], consumer._acked[HEAD] = 13, [14]
    assert await dog.check(consumer) == [] and consumer.sought == []


class StalledConsumer(FakeConsumer):
    """Nothing acked past the committed offset, yet the log has more: Faust stopped
    fetching the partition."""

    def __init__(self, committed, end, held=()):
        super().__init__(committed, [], held)
        self.end = end

    async def highwaters(self, *tps):
        return {tp: self.end for tp in tps}


async def test_a_partition_with_work_that_nothing_holds_is_fetched_again_after_two_checks():
    dog, consumer = Watchdog(), StalledConsumer(10, 250)
    assert await dog.check(consumer) == []
    assert await dog.check(consumer) == [HEAD]
    assert consumer.sought == [(HEAD, 10)] and consumer.resumed == [HEAD]


async def test_a_partition_that_is_busy_or_caught_up_is_left_alone():
    busy, dog = StalledConsumer(10, 250, held=[11]), Watchdog()
    await dog.check(busy)
    assert await dog.check(busy) == []
    caught_up, dog = StalledConsumer(10, 10), Watchdog()
    await dog.check(caught_up)
    assert await dog.check(caught_up) == []


async def test_resumed_partitions_are_fausts_own_type_whatever_highwaters_returns():
    """highwaters() answers with aiokafka's TopicPartition; Faust asserts that what it
    resumes is its own TP (a worker crashed on it after a Kafka outage)."""
    from aiokafka import TopicPartition
    from faust.types import TP as FaustTP

    class AiokafkaKeys(StalledConsumer):
        async def highwaters(self, *tps):
            return {TopicPartition(tp.topic, tp.partition): self.end for tp in tps}

    dog, consumer = Watchdog(), AiokafkaKeys(10, 250)
    await dog.check(consumer)
    assert await dog.check(consumer) == [HEAD]
    assert all(type(tp) is FaustTP for tp in consumer.resumed) and consumer.resumed == [HEAD]


async def test_a_failing_check_does_not_stop_the_worker(monkeypatch):
    from spice.agents import watchdog as module

    async def boom(consumer):
        raise AssertionError("Faust internals changed")

    monkeypatch.setattr(module.watchdog, "check", boom)
    await module.check_safely(None)  # logged, not raised: a raising timer stops Faust
