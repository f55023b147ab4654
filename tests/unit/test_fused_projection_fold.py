"""What the one-statement projection writes: each document's latest version in the
batch, tagged with the event it comes from."""
import uuid

import pytest

from spice.domain.envelope import Envelope, now
from spice.domain.messages import EventType, instance_aggregate
from spice.stores.projection_postgres import FusedProjection, documents, fusable

pytestmark = pytest.mark.unit


def event(event_type: EventType, instance: str, seq: int, **data) -> Envelope:
    body = {"db": "d", "class_id": "Item", "instance_id": instance}
    if event_type is not EventType.INSTANCE_DELETED:
        body["data"] = data
    return Envelope(event_id=str(uuid.uuid4()), event_type=event_type.value, aggregate_type="Instance",
                    aggregate_id=instance_aggregate("d", "Item", instance), occurred_at=now(), data=body,
                    sequence_number=seq, metadata={"kind": "domain", "command_id": str(uuid.uuid4())})


def test_each_document_is_folded_to_its_latest_event():
    first = event(EventType.INSTANCE_CREATED, "a", 1, name="one")
    second = event(EventType.INSTANCE_UPDATED, "a", 2, name="two")
    other = event(EventType.INSTANCE_CREATED, "b", 1, name="bee")
    gone = event(EventType.INSTANCE_DELETED, "b", 2)
    upserts, tombstones = documents([second, first, other, gone])  # out of order in the batch
    assert [(u["doc_id"], u["version"], u["event_id"], u["body"]) for u in upserts] == [
        ("Item/a", 2, second.event_id, {"name": "two"})]
    assert [(t["doc_id"], t["version"], t["event_id"]) for t in tombstones] == [
        ("Item/b", 2, gone.event_id)]


def test_a_database_deletion_takes_the_general_path():
    dropped = event(EventType.INSTANCE_CREATED, "a", 1).model_copy(
        update={"event_type": EventType.DATABASE_DELETED.value, "data": {"name": "d"}})
    assert fusable([event(EventType.INSTANCE_CREATED, "a", 1)])
    assert not fusable([event(EventType.INSTANCE_CREATED, "a", 1), dropped])


async def test_repeated_event_ids_are_refused_before_any_statement():
    one = event(EventType.INSTANCE_CREATED, "a", 1)
    with pytest.raises(ValueError, match="distinct"):
        await FusedProjection(pool=None, table="search_docs").project("projection", [one, one])
