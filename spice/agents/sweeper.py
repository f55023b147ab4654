"""The safety net behind Kafka: re-send anything stored but never processed.

The publisher sends every stored envelope at least once, and the agents commit
only what they finished; yet a consumer can still skip a message (faust-streaming
commit bugs around rebalances, see docs/reliability.md). The event store is the
record, so the leader sweeps it: batches older than SWEEP_DELAY_SECONDS, from a
durable position on, are read again, and every command the command workers have
not finished, and every domain event the projections have not, is sent to its
topic once more. Handlers are idempotent through the registry, so a message that
was merely slow costs a duplicate, never a second effect.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from datetime import UTC, datetime
from typing import Any

import asyncpg

from spice.observability import REGISTRY_PRUNED, RESENT
from spice.stores.errors import StoreUnavailable
from spice.stores.registry import prune_finished
from spice.stores.s3_event_store import S3EventStore, position_at, time_of

log = logging.getLogger(__name__)
SWEEP_NAME = "event-store"
# Finished, or given up on and dead-lettered (the DLQ owns those).
DONE = ("done", "skipped_stale", "failed")
HANDLERS = {"command": "command-worker", "domain": "projection"}
# Between the clocks of the processes that stamp batch keys and PostgreSQL's, which
# stamps the registry rows.
CLOCK_MARGIN_SECONDS = 60.0


class Sweeper:
    def __init__(self, store: S3EventStore, pool: asyncpg.Pool, send: Any, *,
                 delay: float, batch: int = 200, name: str = SWEEP_NAME) -> None:
        self.store, self.pool, self.send = store, pool, send
        self.delay, self.batch, self.name = delay, batch, name

    async def position(self) -> str | None:
        async with self.pool.acquire() as conn:
            return await conn.fetchval(  # type: ignore[no-any-return]
                "SELECT position FROM sweep_positions WHERE name = $1", self.name)

    async def save(self, position: str) -> None:
        async with self.pool.acquire() as conn:
            await conn.execute(
                "INSERT INTO sweep_positions (name, position) VALUES ($1, $2) "
                "ON CONFLICT (name) DO UPDATE SET position = GREATEST(sweep_positions.position, $2)",
                self.name, position)

    async def _read(self, key: str) -> list[Any]:
        try:
            return await self.store.read_batch(key)
        except StoreUnavailable as error:
            if "NoSuchKey" in str(error) or "404" in str(error) or "Not Found" in str(error):
                return []  # an undone append, or another bucket's batch in a shared index
            raise

    async def sweep_once(self) -> tuple[int, int]:
        """One pass over at most `batch` batch objects: (batches swept, envelopes re-sent)."""
        start = await self.position()
        if start is None:
            # First run: nothing before now was promised by this sweeper; begin here.
            await self.save(position_at(time.time() - self.delay))
            return 0, 0
        horizon = position_at(time.time() - self.delay)
        # The index says which envelopes no handler finished; only their batches are
        # read. A healthy system has none, so a pass is two indexed queries, not a
        # listing and a GET of every batch (which cost a third of a worker's CPU).
        keys = await self.store.indexed_batches(start, horizon, self.batch)
        if not keys:
            return 0, 0
        async with self.pool.acquire() as conn:
            # OFFSET 0 keeps the NOT EXISTS a probe of the registry's key per envelope of
            # the pass. As an anti join, the planner (misjudging how many envelopes the
            # keys hold) hashed the whole registry instead: a pass cost 0.45 s at 1.2
            # million rows, 40 times a pass of 12,000 envelopes, and grew with history.
            # The registry's key leads with the event id (migration 16): one descent
            # per envelope, whichever handler finished it.
            rows = await conn.fetch(
                "SELECT e.batch_key, e.event_id FROM event_index e WHERE e.batch_key = ANY($1) "
                "AND NOT EXISTS (SELECT 1 FROM processed_events p WHERE p.handler = ANY($2) "
                "AND p.event_id = e.event_id AND p.status = ANY($3) OFFSET 0)",
                keys, list(HANDLERS.values()), list(DONE))
        unfinished: dict[str, set[str]] = {}
        for row in rows:
            unfinished.setdefault(row["batch_key"], set()).add(row["event_id"])
        resent = 0
        envelopes = []
        for key, batch in zip(unfinished, await asyncio.gather(
                *[self._read(key) for key in unfinished]), strict=True):
            for envelope in batch:
                if envelope.event_id in unfinished[key] and envelope.kind in HANDLERS:
                    envelopes.append(envelope)
                    await self.send(envelope.topic, envelope.to_json(), envelope.aggregate_id.encode())
                    RESENT.inc(envelope.kind)
                    resent += 1
        await self.save(keys[-1])
        if resent:
            log.warning("sweeper: %d stored envelopes were unprocessed after %.0fs; sent again "
                        "(first: %s)", resent, self.delay,
                        json.dumps([e.event_id for e in envelopes][:3]))
        return len(keys), resent

    async def prune_registry(self, retention: float, max_rows: int = 50_000) -> int:
        """Delete finished registry rows older than `retention` whose events this sweeper
        has passed (it never looks at them again); at most about `max_rows` a pass."""
        position = await self.position()
        if position is None:
            return 0
        before = min(time.time() - retention, time_of(position) - CLOCK_MARGIN_SECONDS)
        pruned = await prune_finished(self.pool, datetime.fromtimestamp(before, UTC), max_rows)
        if pruned:
            REGISTRY_PRUNED.inc(amount=pruned)
            log.info("registry retention: %d finished rows older than %.0fs deleted",
                     pruned, time.time() - before)
        return pruned
