import asyncio
import time
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


async def backdate(pool, handler: str, event_id: str, hours: float) -> None:
    async with pool.acquire() as conn:
        await conn.execute("UPDATE processed_events SET updated_at = now() - make_interval(hours => $3) "
                           "WHERE handler = $1 AND event_id = $2", handler, event_id, hours)


async def test_retention_deletes_old_finished_rows_only(runtime):
    from datetime import UTC, datetime, timedelta

    from spice.stores.registry import prune_finished

    registry = PostgresRegistry(runtime.pool, "w")
    handler = f"retention-{uuid.uuid4().hex[:8]}"
    rows = {}
    for kind in ("done", "stale", "failed", "processing", "recent"):
        event_id, agg = ids()
        await registry.claim(handler, event_id, agg, 1)
        if kind in ("done", "recent"):
            await registry.mark_done(handler, event_id, agg, 1)
        elif kind == "failed":
            await registry.mark_failed(handler, event_id, "boom")
        elif kind == "stale":
            await registry.mark_done(handler, event_id, agg, 5)
            event_id = f"ev-{uuid.uuid4()}"
            assert (await registry.claim(handler, event_id, agg, 2)).outcome is ClaimOutcome.STALE
        rows[kind] = (event_id, agg)
        await backdate(runtime.pool, handler, event_id, 1 if kind == "recent" else 72)
    deleted = await prune_finished(runtime.pool, datetime.now(UTC) - timedelta(hours=48), 10_000)
    assert deleted >= 2
    kept = {kind for kind, (event_id, _) in rows.items() if await registry.record(handler, event_id)}
    assert kept == {"failed", "processing", "recent"}
    # The aggregate's version stays: the done event, delivered again, is stale, not new.
    event_id, agg = rows["done"]
    claim = await registry.claim(handler, event_id, agg, 1)
    assert claim.outcome is ClaimOutcome.STALE and claim.last_sequence == 1


async def test_retention_keeps_what_the_sweeper_has_not_passed(runtime, scratch):
    from spice.agents.sweeper import Sweeper

    registry = PostgresRegistry(runtime.pool, "w")
    handler = f"retention-{uuid.uuid4().hex[:8]}"
    event_id, agg = ids()
    await registry.claim(handler, event_id, agg, 1)
    await registry.mark_done(handler, event_id, agg, 1)
    await backdate(runtime.pool, handler, event_id, 72)

    async def send(*_) -> None:
        raise AssertionError("nothing to send")

    sweeper = Sweeper(scratch.event_store, runtime.pool, send, delay=0.0,
                      name=f"retention-{uuid.uuid4().hex[:8]}")
    assert await sweeper.prune_registry(retention=3600) == 0  # no position yet: nothing
    await sweeper.save(scratch.event_store.position_before(time.time() - 5 * 86400))
    await sweeper.prune_registry(retention=3600)
    assert await registry.record(handler, event_id) is not None  # behind the sweeper's position
    await sweeper.save(scratch.event_store.position_before(time.time()))
    assert await sweeper.prune_registry(retention=3600) >= 1
    assert await registry.record(handler, event_id) is None
