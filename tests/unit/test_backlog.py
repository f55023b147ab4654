"""The sweeper's backlog rule (spice/agents/progress.py): re-send only once the
consumers have read past what was queued when the envelope was first seen unfinished."""
import pytest
from aiokafka import TopicPartition

from spice.agents.progress import Backlog

pytestmark = pytest.mark.unit
TP = TopicPartition("instance_commands", 3)


def test_nothing_queued_means_resend_now() -> None:
    assert Backlog().passed(TP, committed=10, end=10)


def test_queued_waits_until_the_consumers_pass_the_first_seen_end() -> None:
    backlog = Backlog()
    assert not backlog.passed(TP, committed=100, end=500)  # remembers 500
    assert not backlog.passed(TP, committed=400, end=900)  # moving, not past 500 yet
    assert backlog.passed(TP, committed=500, end=1300)  # past everything queued at first look
    assert TP not in backlog.watermarks  # a later deferral starts afresh
    assert not backlog.passed(TP, committed=1300, end=1400)
    assert backlog.watermarks[TP] == 1400


def test_partitions_are_independent() -> None:
    backlog = Backlog()
    other = TopicPartition("instance_commands", 4)
    assert not backlog.passed(TP, committed=0, end=50)
    assert backlog.passed(other, committed=7, end=7)
    assert backlog.watermarks == {TP: 50}


class FakeProgress:
    """Offsets as the broker would report them; `lost` is a topic it does not have."""

    def __init__(self, offsets: dict[TopicPartition, tuple[int, int]]) -> None:
        self.offsets = offsets

    async def partition_of(self, topic: str, key: bytes) -> TopicPartition | None:
        return None if topic == "lost" else TopicPartition(topic, 3 if key == b"slow" else 4)

    async def snapshot(self, partitions):
        return {tp: self.offsets[tp] for tp in set(partitions)}


async def test_the_sweeper_holds_back_only_envelopes_behind_a_backlog() -> None:
    from types import SimpleNamespace

    from spice.agents.sweeper import Sweeper

    progress = FakeProgress({TP: (100, 500), TopicPartition("instance_commands", 4): (9, 9)})
    sweeper = Sweeper(store=None, pool=None, send=None, delay=60, progress=progress)  # type: ignore[arg-type]

    def envelope(event_id: str, topic: str, key: str) -> SimpleNamespace:
        return SimpleNamespace(event_id=event_id, topic=topic, aggregate_id=key)

    queued = await sweeper._still_queued([
        envelope("behind", "instance_commands", "slow"),    # partition 3: 400 queued
        envelope("idle", "instance_commands", "fast"),      # partition 4: nothing queued
        envelope("nowhere", "lost", "slow"),                # no such topic: no backlog
    ])
    assert queued == {"behind"}
