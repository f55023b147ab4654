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
from typing import Any

import asyncpg

from spice.observability import RESENT
from spice.stores.s3_event_store import S3EventStore, position_at

log = logging.getLogger(__name__)
SWEEP_NAME = "event-store"
# Finished, or given up on and dead-lettered (the DLQ owns those).
DONE = ("done", "skipped_stale", "failed")
HANDLERS = {"command": "command-worker", "domain": "projection"}


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

    async def sweep_once(self) -> tuple[int, int]:
        """One pass over at most `batch` batch objects: (batches swept, envelopes re-sent)."""
        start = await self.position()
        if start is None:
            # First run: nothing before now was promised by this sweeper; begin here.
            await self.save(position_at(time.time() - self.delay))
            return 0, 0
        horizon = position_at(time.time() - self.delay)
        keys = [k async for k in self.store.list_positions(start, limit=self.batch) if k <= horizon]
        if not keys:
            return 0, 0
        batches = await asyncio.gather(*[self.store.read_batch(key) for key in keys])
        envelopes = [envelope for batch in batches for envelope in batch]
        pending: dict[str, list[Any]] = {"command": [], "domain": []}
        for envelope in envelopes:
            if envelope.kind in pending:
                pending[envelope.kind].append(envelope)
        resent = 0
        async with self.pool.acquire() as conn:
            for kind, items in pending.items():
                if not items:
                    continue
                done = {r["event_id"] for r in await conn.fetch(
                    "SELECT event_id FROM processed_events WHERE handler = $1 "
                    "AND event_id = ANY($2) AND status = ANY($3)",
                    HANDLERS[kind], [e.event_id for e in items], list(DONE))}
                for envelope in items:
                    if envelope.event_id not in done:
                        await self.send(envelope.topic, envelope.to_json(),
                                        envelope.aggregate_id.encode())
                        RESENT.inc(kind)
                        resent += 1
        await self.save(keys[-1])
        if resent:
            log.warning("sweeper: %d stored envelopes were unprocessed after %.0fs; sent again "
                        "(first: %s)", resent, self.delay,
                        json.dumps([e.event_id for e in envelopes][:3]))
        return len(keys), resent
