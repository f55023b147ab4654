"""Which commands a batch takes, and which go one by one after it (pure logic)."""
import uuid
from datetime import UTC, datetime

import pytest

from spice.domain.envelope import Envelope
from spice.domain.messages import CommandType
from spice.handlers.command_batch import plain, split
from spice.handlers.commands import Origin
from spice.stores.registry import Claim, ClaimOutcome

pytestmark = pytest.mark.unit
STORED = Origin("instance_commands", 0, 0, from_store=True)


def command(aggregate: str, kind: CommandType = CommandType.CREATE_INSTANCE, seq: int = 1) -> Envelope:
    return Envelope(event_id=str(uuid.uuid4()), occurred_at=datetime.now(UTC),
                    event_type=kind.value, aggregate_type="Instance", aggregate_id=aggregate,
                    sequence_number=seq, data={},
                    metadata={"kind": "command", "command_type": kind.value})


def ids(items):
    return [(e.aggregate_id, e.sequence_number) for e, _ in items]


def test_an_aggregates_later_commands_wait_for_the_batch():
    items = [(command("a", seq=1), STORED), (command("b"), STORED), (command("a", seq=2), STORED)]
    batch, rest = split(items)
    assert ids(batch) == [("a", 1), ("b", 1)]
    assert ids(rest) == [("a", 2)]


def test_after_a_command_that_is_not_batched_its_aggregate_waits_too():
    bulk = command("a", CommandType.BULK_CREATE_INSTANCES, seq=1)
    items = [(bulk, STORED), (command("a", seq=2), STORED), (command("c"), STORED)]
    batch, rest = split(items)
    assert ids(batch) == [("c", 1)]
    assert ids(rest) == [("a", 1), ("a", 2)]  # in their order


def test_commands_not_in_the_store_and_schema_commands_go_one_by_one():
    unstored = Origin("instance_commands", 0, 1, from_store=False)
    items = [(command("a"), unstored), (command("k", CommandType.CREATE_ONTOLOGY_CLASS), STORED)]
    batch, rest = split(items)
    assert batch == []
    assert ids(rest) == [("a", 1), ("k", 1)]


def test_an_aggregate_with_work_still_going_on_elsewhere_is_held():
    items = [(command("a"), STORED), (command("b"), STORED)]
    batch, rest = split(items, held=lambda aggregate: aggregate == "a")
    assert ids(batch) == [("b", 1)]
    assert ids(rest) == [("a", 1)]


def test_only_a_first_claim_without_a_gap_is_plain():
    env = command("a", seq=5)
    assert plain(env, Claim(ClaimOutcome.CLAIMED, attempt=1, last_sequence=4))
    assert not plain(env, Claim(ClaimOutcome.CLAIMED, attempt=2, last_sequence=4))  # a retry
    assert not plain(env, Claim(ClaimOutcome.CLAIMED, attempt=1, last_sequence=2))  # a gap
    assert not plain(env, Claim(ClaimOutcome.DONE, last_sequence=5))
    assert not plain(env, Claim(ClaimOutcome.IN_PROGRESS, last_sequence=4))
