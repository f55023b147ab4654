"""The processed-events registry: effects exactly once over at-least-once delivery.

A handler claims (handler, event_id) before doing anything. The claim is one
atomic statement: insert, or take over a failed attempt or an expired lease.
A sequence at or below the aggregate's last done sequence is skipped as stale.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from enum import StrEnum

import asyncpg

from spice.observability import CLAIMS


class ClaimOutcome(StrEnum):
    CLAIMED = "claimed"          # go ahead
    DONE = "done"                # already processed: a duplicate delivery
    IN_PROGRESS = "in_progress"  # another owner holds a live lease
    STALE = "stale"              # the aggregate is already past this sequence


@dataclass(frozen=True)
class Claim:
    outcome: ClaimOutcome
    attempt: int = 0
    last_sequence: int = 0


# One statement, one round trip: the claim, the aggregate's last done sequence, and
# (when the claim was refused) the status that refused it, read from the snapshot
# the statement started with.
CLAIM_SQL = """
WITH claimed AS (
    INSERT INTO processed_events (handler, event_id, aggregate_id, sequence_number, status,
                                  owner, lease_until, attempt_count)
    VALUES ($1, $2, $3, $4, 'processing', $5, now() + make_interval(secs => $6), 1)
    ON CONFLICT (handler, event_id) DO UPDATE
       SET status = 'processing', owner = EXCLUDED.owner, lease_until = EXCLUDED.lease_until,
           attempt_count = processed_events.attempt_count + 1, updated_at = now()
     WHERE processed_events.status = 'failed'
        OR (processed_events.status = 'processing' AND processed_events.lease_until < now())
    RETURNING attempt_count)
SELECT (SELECT attempt_count FROM claimed) AS attempt,
       coalesce((SELECT last_sequence FROM aggregate_versions
                  WHERE handler = $1 AND aggregate_id = $3), 0) AS last,
       (SELECT status FROM processed_events WHERE handler = $1 AND event_id = $2) AS status
"""
MARK_DONE_SQL = """
WITH done AS (
    UPDATE processed_events SET status = 'done', owner = NULL, lease_until = NULL,
           last_error = $5, updated_at = now()
     WHERE handler = $1 AND event_id = $2)
INSERT INTO aggregate_versions
SELECT $1, $3, $4 WHERE $4::bigint IS NOT NULL
ON CONFLICT (handler, aggregate_id) DO UPDATE
   SET last_sequence = GREATEST(aggregate_versions.last_sequence, EXCLUDED.last_sequence)
"""


class PostgresRegistry:
    def __init__(self, pool: asyncpg.Pool, owner: str, lease_seconds: float = 30.0) -> None:
        self.pool = pool
        self.owner = owner
        self.lease_seconds = lease_seconds

    async def claim(self, handler: str, event_id: str, aggregate_id: str,
                    sequence: int | None) -> Claim:
        claim = await self._claim(handler, event_id, aggregate_id, sequence)
        CLAIMS.inc(handler, claim.outcome.value)
        return claim

    async def _claim(self, handler: str, event_id: str, aggregate_id: str,
                     sequence: int | None) -> Claim:
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow(CLAIM_SQL, handler, event_id, aggregate_id, sequence,
                                      self.owner, self.lease_seconds)
            attempt, last, status = row["attempt"], row["last"], row["status"]
            if attempt is None and status is None:
                # A concurrent claim inserted the row after this statement's snapshot.
                status = await conn.fetchval(
                    "SELECT status FROM processed_events WHERE handler = $1 AND event_id = $2",
                    handler, event_id)
            if attempt is None:
                if status == "processing":
                    return Claim(ClaimOutcome.IN_PROGRESS, last_sequence=last)
                return Claim(ClaimOutcome.DONE, last_sequence=last)
            if sequence is not None and sequence <= last:
                await conn.execute(
                    "UPDATE processed_events SET status = 'skipped_stale', owner = NULL, "
                    "lease_until = NULL, updated_at = now() WHERE handler = $1 AND event_id = $2",
                    handler, event_id)
                return Claim(ClaimOutcome.STALE, attempt, last)
            return Claim(ClaimOutcome.CLAIMED, attempt, last)

    async def claim_when_free(self, handler: str, event_id: str, aggregate_id: str,
                              sequence: int | None, poll: float = 0.5) -> Claim:
        """Claim, waiting while another owner holds a live lease (a rebalance): it either
        finishes (DONE) or its lease lapses and the claim is ours."""
        while True:
            claim = await self.claim(handler, event_id, aggregate_id, sequence)
            if claim.outcome is not ClaimOutcome.IN_PROGRESS:
                return claim
            await asyncio.sleep(poll)

    async def heartbeat(self, handler: str, event_id: str) -> bool:
        async with self.pool.acquire() as conn:
            result = await conn.execute(
                "UPDATE processed_events SET lease_until = now() + make_interval(secs => $3), "
                "updated_at = now() WHERE handler = $1 AND event_id = $2 AND owner = $4 "
                "AND status = 'processing'", handler, event_id, self.lease_seconds, self.owner)
        return result.endswith(" 1")

    async def mark_done(self, handler: str, event_id: str, aggregate_id: str,
                        sequence: int | None, error: str | None = None) -> None:
        """Processing is over (successfully, or with a final domain failure recorded in error)."""
        async with self.pool.acquire() as conn:
            await conn.execute(MARK_DONE_SQL, handler, event_id, aggregate_id, sequence, error)

    async def mark_failed(self, handler: str, event_id: str, error: str) -> None:
        """This attempt failed; the event may be claimed again (by a retry or a DLQ replay)."""
        async with self.pool.acquire() as conn:
            await conn.execute(
                "UPDATE processed_events SET status = 'failed', owner = NULL, lease_until = NULL, "
                "last_error = $3, updated_at = now() WHERE handler = $1 AND event_id = $2",
                handler, event_id, error[:2000])

    async def last_sequence(self, handler: str, aggregate_id: str) -> int:
        async with self.pool.acquire() as conn:
            return int(await conn.fetchval(
                "SELECT last_sequence FROM aggregate_versions WHERE handler = $1 AND aggregate_id = $2",
                handler, aggregate_id) or 0)

    async def record(self, handler: str, event_id: str) -> dict[str, object] | None:
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow(
                "SELECT * FROM processed_events WHERE handler = $1 AND event_id = $2", handler, event_id)
        return dict(row) if row else None
