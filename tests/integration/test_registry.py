import asyncio
import uuid

from spice.stores.registry import ClaimOutcome, PostgresRegistry


def ids():
    return f"ev-{uuid.uuid4()}", f"agg-{uuid.uuid4().hex[:8]}"


async def test_of_many_racing_claims_exactly_one_wins(runtime):
    event_id, agg = ids()
    registries = [PostgresRegistry(runtime.pool, f"worker-{i}") for i in range(10)]
    claims = await asyncio.gather(*[r.claim("h", event_id, agg, 1) for r in registries])
    assert [c.outcome for c in claims].count(ClaimOutcome.CLAIMED) == 1
    assert {c.outcome for c in claims} == {ClaimOutcome.CLAIMED, ClaimOutcome.IN_PROGRESS}


async def test_done_is_a_duplicate_and_moves_the_aggregate(runtime):
    registry = PostgresRegistry(runtime.pool, "w")
    event_id, agg = ids()
    assert (await registry.claim("h", event_id, agg, 1)).outcome is ClaimOutcome.CLAIMED
    await registry.mark_done("h", event_id, agg, 1)
    assert (await registry.claim("h", event_id, agg, 1)).outcome is ClaimOutcome.DONE
    assert await registry.last_sequence("h", agg) == 1


async def test_stale_sequence_is_skipped(runtime):
    registry = PostgresRegistry(runtime.pool, "w")
    first, agg = ids()
    await registry.claim("h", first, agg, 2)
    await registry.mark_done("h", first, agg, 2)
    older = f"ev-{uuid.uuid4()}"
    claim = await registry.claim("h", older, agg, 1)
    assert claim.outcome is ClaimOutcome.STALE and claim.last_sequence == 2
    assert (await registry.record("h", older))["status"] == "skipped_stale"


async def test_expired_lease_and_failed_attempts_can_be_reclaimed(runtime):
    event_id, agg = ids()
    crashed = PostgresRegistry(runtime.pool, "crashed", lease_seconds=0.2)
    other = PostgresRegistry(runtime.pool, "other")
    assert (await crashed.claim("h", event_id, agg, 1)).outcome is ClaimOutcome.CLAIMED
    assert (await other.claim("h", event_id, agg, 1)).outcome is ClaimOutcome.IN_PROGRESS
    await asyncio.sleep(0.3)
    claim = await other.claim("h", event_id, agg, 1)
    assert claim.outcome is ClaimOutcome.CLAIMED and claim.attempt == 2
    await other.mark_failed("h", event_id, "boom")
    again = await crashed.claim("h", event_id, agg, 1)
    assert again.outcome is ClaimOutcome.CLAIMED and again.attempt == 3
    assert (await crashed.record("h", event_id))["owner"] == "crashed"


async def test_heartbeat_extends_only_the_owners_lease(runtime):
    event_id, agg = ids()
    owner = PostgresRegistry(runtime.pool, "owner", lease_seconds=0.3)
    await owner.claim("h", event_id, agg, None)
    assert await owner.heartbeat("h", event_id)
    assert not await PostgresRegistry(runtime.pool, "intruder").heartbeat("h", event_id)
