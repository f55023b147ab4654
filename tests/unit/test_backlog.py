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
