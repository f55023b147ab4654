"""A fused projection batch whose PROJECTED report fails: the read model and the
registry hold it already, so only the report is redone, event by event (pure logic,
fakes for the stores)."""
import uuid

import pytest

from spice.domain.envelope import Envelope, now
from spice.domain.messages import EventType, instance_aggregate
from spice.handlers.commands import Origin
from spice.handlers.projections import ProjectionHandler
from spice.stores.registry import Claim, ClaimOutcome

pytestmark = pytest.mark.unit


def created(instance: str) -> Envelope:
    return Envelope(event_id=str(uuid.uuid4()), event_type=EventType.INSTANCE_CREATED.value,
                    aggregate_type="Instance", aggregate_id=instance_aggregate("d", "Item", instance),
                    occurred_at=now(), data={"db": "d", "class_id": "Item", "instance_id": instance,
                                             "data": {}},
                    sequence_number=1, metadata={"kind": "domain", "command_id": str(uuid.uuid4())})


class Fused:
    def __init__(self, outcomes: list[ClaimOutcome]) -> None:
        self.outcomes = outcomes

    async def project(self, handler: str, envelopes: list[Envelope]) -> list[Claim]:
        return [Claim(outcome, 1, 0) for outcome in self.outcomes]


class Registry:
    def __init__(self) -> None:
        self.calls: list[str] = []

    async def mark_done_many(self, *args) -> None:
        self.calls.append("mark_done_many")

    async def mark_failed_many(self, *args) -> None:
        self.calls.append("mark_failed_many")

    async def claim_when_free(self, *args):
        self.calls.append("claim_when_free")
        return Claim(ClaimOutcome.DONE)


class Status:
    """Batch reports fail (Redis gone for a moment); single updates get through."""

    def __init__(self) -> None:
        self.updated: list[tuple[str, str]] = []

    async def record_many(self, changes) -> None:
        raise ConnectionError("redis went away")

    async def update(self, command_id: str, status: str, message: str = "", **fields) -> None:
        self.updated.append((command_id, status))


async def dead_letter(topic: str, payload: dict) -> None:
    raise AssertionError("nothing should be dead-lettered")


async def test_a_failed_report_of_a_fused_batch_is_redone_for_each_new_event():
    batch = [(created(f"i{n}"), Origin("instance_events", 0, n)) for n in range(3)]
    registry, status = Registry(), Status()
    handler = ProjectionHandler(registry, index=None, status=status, dead_letter=dead_letter,  # type: ignore[arg-type]
                                retry_base=0.001,
                                fused=Fused([ClaimOutcome.CLAIMED, ClaimOutcome.DONE,  # type: ignore[arg-type]
                                             ClaimOutcome.STALE]))
    finish = await handler.start_batch(batch)
    await finish()
    first, _, stale = (envelope for envelope, _ in batch)
    # The duplicate was reported when it was first projected; the others are now.
    assert status.updated == [(first.command_id, "PROJECTED"), (stale.command_id, "PROJECTED")]
    assert registry.calls == []  # nothing marked done again, nothing released, no claims
