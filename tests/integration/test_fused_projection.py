"""The one-statement projection (claims, writes, mark-done) on the real PostgreSQL."""
import asyncio
import uuid

from spice.domain.envelope import Envelope, now
from spice.domain.messages import EventType, instance_aggregate
from spice.stores.projection_postgres import FusedProjection
from spice.stores.registry import ClaimOutcome
from spice.stores.search import LIVE_TABLE

HANDLER = "projection"


def created(db: str, instance: str, seq: int, name: str, event_type: EventType = EventType.INSTANCE_CREATED
            ) -> Envelope:
    data = {"db": db, "class_id": "Item", "instance_id": instance, "data": {"name": name}}
    return Envelope(event_id=str(uuid.uuid4()), event_type=event_type.value, aggregate_type="Instance",
                    aggregate_id=instance_aggregate(db, "Item", instance), occurred_at=now(), data=data,
                    sequence_number=seq, metadata={"kind": "domain", "command_id": str(uuid.uuid4())})


def deleted(db: str, instance: str, seq: int) -> Envelope:
    envelope = created(db, instance, seq, "", EventType.INSTANCE_DELETED)
    return envelope.model_copy(update={"data": {"db": db, "class_id": "Item", "instance_id": instance}})


async def document(runtime, db: str, instance: str):
    async with runtime.pool.acquire() as conn:
        return await conn.fetchrow(f"SELECT version, deleted, body->>'name' AS name FROM {LIVE_TABLE} "
                                   "WHERE db = $1 AND kind = 'instance' AND doc_id = $2",
                                   db, f"Item/{instance}")


async def registry_status(runtime, event_id: str):
    async with runtime.pool.acquire() as conn:
        return await conn.fetchval("SELECT status FROM processed_events WHERE handler = $1 AND event_id = $2",
                                   HANDLER, event_id)


async def test_a_batch_is_written_and_done_in_one_statement_and_a_duplicate_changes_nothing(runtime):
    fused = FusedProjection(runtime.pool, LIVE_TABLE)
    db = f"fused{uuid.uuid4().hex[:8]}"
    first, second = created(db, "a", 1, "one"), created(db, "a", 2, "two")
    other = created(db, "b", 1, "bee")
    claims = await fused.project(HANDLER, [first, second, other])
    assert [c.outcome for c in claims] == [ClaimOutcome.CLAIMED] * 3
    row = await document(runtime, db, "a")
    assert (row["version"], row["name"]) == (2, "two")  # the batch folded to the latest
    assert (await document(runtime, db, "b"))["name"] == "bee"
    assert {await registry_status(runtime, e.event_id) for e in (first, second, other)} == {"done"}

    again = await fused.project(HANDLER, [second])
    assert again[0].outcome is ClaimOutcome.DONE
    assert (await document(runtime, db, "a"))["version"] == 2


async def test_stale_events_are_recorded_skipped_and_never_regress_a_document(runtime):
    fused = FusedProjection(runtime.pool, LIVE_TABLE)
    db = f"fused{uuid.uuid4().hex[:8]}"
    await fused.project(HANDLER, [created(db, "a", 3, "three")])
    old = created(db, "a", 2, "two")
    claims = await fused.project(HANDLER, [old])
    assert claims[0].outcome is ClaimOutcome.STALE and claims[0].last_sequence == 3
    assert await registry_status(runtime, old.event_id) == "skipped_stale"
    assert (await document(runtime, db, "a"))["name"] == "three"
    gone = deleted(db, "a", 4)
    assert (await fused.project(HANDLER, [gone]))[0].outcome is ClaimOutcome.CLAIMED
    row = await document(runtime, db, "a")
    assert row["deleted"] and row["version"] == 4


async def test_an_event_under_a_live_lease_is_left_to_its_holder_and_a_failed_one_is_taken(runtime):
    fused = FusedProjection(runtime.pool, LIVE_TABLE)
    db = f"fused{uuid.uuid4().hex[:8]}"
    held, retried = created(db, "a", 1, "held"), created(db, "b", 1, "retried")
    claim = await runtime.registry.claim(HANDLER, held.event_id, held.aggregate_id, 1)
    assert claim.outcome is ClaimOutcome.CLAIMED
    await runtime.registry.claim(HANDLER, retried.event_id, retried.aggregate_id, 1)
    await runtime.registry.mark_failed(HANDLER, retried.event_id, "boom")

    claims = await fused.project(HANDLER, [held, retried])
    assert [c.outcome for c in claims] == [ClaimOutcome.IN_PROGRESS, ClaimOutcome.CLAIMED]
    assert claims[1].attempt == 2
    assert await document(runtime, db, "a") is None  # the lease holder writes it
    assert (await document(runtime, db, "b"))["name"] == "retried"
    assert await registry_status(runtime, held.event_id) == "processing"
    await runtime.registry.mark_failed(HANDLER, held.event_id, "released")  # tidy for the sweeper


async def test_two_workers_racing_for_one_batch_project_each_event_exactly_once(runtime):
    fused = FusedProjection(runtime.pool, LIVE_TABLE)
    db = f"fused{uuid.uuid4().hex[:8]}"
    batch = [created(db, f"i{n}", 1, f"item {n}") for n in range(200)]
    results = await asyncio.gather(*[fused.project(HANDLER, batch) for _ in range(4)])
    for position in range(len(batch)):
        outcomes = [claims[position].outcome for claims in results]
        assert outcomes.count(ClaimOutcome.CLAIMED) == 1, outcomes
        assert set(outcomes) <= {ClaimOutcome.CLAIMED, ClaimOutcome.DONE}, outcomes
    async with runtime.pool.acquire() as conn:
        count = await conn.fetchval(f"SELECT count(*) FROM {LIVE_TABLE} WHERE db = $1", db)
    assert count == 200


async def test_a_failing_statement_leaves_neither_documents_nor_registry_rows(runtime):
    fused = FusedProjection(runtime.pool, LIVE_TABLE)
    db = f"fused{uuid.uuid4().hex[:8]}"
    good = created(db, "a", 1, "good")
    # A NUL character is valid JSON but not a PostgreSQL text value: the write fails
    # after the claims were inserted in the same statement.
    bad = created(db, "b", 1, "bad\u0000name")
    try:
        await fused.project(HANDLER, [good, bad])
    except Exception as error:  # noqa: BLE001 - asyncpg's error class for it is what it is
        assert "0000" in str(error) or "null" in str(error).lower(), error
    else:
        raise AssertionError("a NUL in a label should have failed the statement")
    assert await registry_status(runtime, good.event_id) is None
    assert await document(runtime, db, "a") is None
