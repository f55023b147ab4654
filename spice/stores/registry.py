"""The processed-events registry: effects exactly once over at-least-once delivery.

A handler claims (handler, event_id) before doing anything. The claim is one
atomic statement: insert, or take over a failed attempt or an expired lease.
A sequence at or below the aggregate's last done sequence is skipped as stale.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

import asyncpg

from spice.observability import CLAIMS
from spice.stores.coalesce import Coalescer


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


def refused(status: str | None, last_sequence: int) -> Claim:
    """A claim that was not taken: another owner's live lease, or processed already."""
    outcome = ClaimOutcome.IN_PROGRESS if status == "processing" else ClaimOutcome.DONE
    return Claim(outcome, last_sequence=last_sequence)


async def current_statuses(conn: asyncpg.Connection, handler: str,
                           event_ids: list[str]) -> dict[str, str]:
    """Statuses as they are now, for rows a concurrent claim inserted after a claiming
    statement's snapshot (its commit is what made that statement's insert conflict)."""
    if not event_ids:
        return {}
    return {r["event_id"]: r["status"] for r in await conn.fetch(
        "SELECT event_id, status FROM processed_events WHERE handler = $1 AND event_id = ANY($2)",
        handler, event_ids)}


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
# The same claim for a whole batch of distinct event ids, in one statement.
CLAIM_MANY_SQL = """
WITH input AS (
    SELECT * FROM unnest($2::text[], $3::text[], $4::bigint[]) WITH ORDINALITY
           AS t(event_id, aggregate_id, seq, ord)),
claimed AS (
    INSERT INTO processed_events AS p (handler, event_id, aggregate_id, sequence_number, status,
                                       owner, lease_until, attempt_count)
    SELECT $1, event_id, aggregate_id, seq, 'processing', $5, now() + make_interval(secs => $6), 1
      FROM input
    ON CONFLICT (handler, event_id) DO UPDATE
       SET status = 'processing', owner = EXCLUDED.owner, lease_until = EXCLUDED.lease_until,
           attempt_count = p.attempt_count + 1, updated_at = now()
     WHERE p.status = 'failed' OR (p.status = 'processing' AND p.lease_until < now())
    RETURNING event_id, attempt_count)
SELECT i.event_id, c.attempt_count AS attempt, coalesce(v.last_sequence, 0) AS last, e.status
  FROM input i
  LEFT JOIN claimed c ON c.event_id = i.event_id
  LEFT JOIN aggregate_versions v ON v.handler = $1 AND v.aggregate_id = i.aggregate_id
  LEFT JOIN processed_events e ON e.handler = $1 AND e.event_id = i.event_id
 ORDER BY i.ord
"""
MARK_DONE_MANY_SQL = """
WITH input AS (SELECT * FROM unnest($2::text[], $3::text[], $4::bigint[], $5::text[])
                             AS t(event_id, aggregate_id, seq, error)),
done AS (
    UPDATE processed_events p SET status = 'done', owner = NULL, lease_until = NULL,
           last_error = i.error, updated_at = now()
      FROM input i WHERE p.handler = $1 AND p.event_id = i.event_id)
INSERT INTO aggregate_versions (handler, aggregate_id, last_sequence)
SELECT $1, aggregate_id, max(seq) FROM input WHERE seq IS NOT NULL GROUP BY aggregate_id
ON CONFLICT (handler, aggregate_id) DO UPDATE
   SET last_sequence = GREATEST(aggregate_versions.last_sequence, EXCLUDED.last_sequence)
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


# Retention: the oldest finished rows, a chunk per statement (the partial index
# processed_events_finished), so that a large backlog never holds locks for long.
PRUNE_SQL = """
DELETE FROM processed_events p
 USING (SELECT handler, event_id FROM processed_events
         WHERE status IN ('done', 'skipped_stale') AND updated_at < $1
         ORDER BY updated_at LIMIT $2) old
 WHERE p.handler = old.handler AND p.event_id = old.event_id
   AND p.status IN ('done', 'skipped_stale')
"""
PRUNE_CHUNK = 5000


async def prune_finished(pool: asyncpg.Pool, before: datetime, max_rows: int) -> int:
    """Delete finished rows (done, skipped as stale) last touched before `before`, at
    most about `max_rows` of them; returns how many went.

    A row only matters while its event may be delivered again: Kafka redelivers what
    was not committed (seconds), the sweeper re-sends what it has not passed yet (the
    caller bounds `before` by the sweeper's position), and a producer may send a command
    again at any time. Such a late command claims afresh; its sequence is behind the
    aggregate's (aggregate_versions is kept), so it is stale, and the handler reports
    the outcome its recorded events give (CommandHandler._report_stale). Failed
    attempts and claims in progress are never deleted."""
    deleted = 0
    while deleted < max_rows:
        async with pool.acquire() as conn:
            result = await conn.execute(PRUNE_SQL, before, min(PRUNE_CHUNK, max_rows - deleted))
        count = int(result.split()[-1])
        deleted += count
        if count < PRUNE_CHUNK:
            break
    return deleted


class Registry(Protocol):
    """The port the handlers use. Adapter: `PostgresRegistry` below; unit tests use an
    in-memory fake (tests/unit/fakes.py)."""

    lease_seconds: float

    async def claim_when_free(self, handler: str, event_id: str, aggregate_id: str,
                              sequence: int | None, poll: float = 0.5) -> Claim: ...

    async def claim_many(self, handler: str,
                         events: list[tuple[str, str, int | None]]) -> list[Claim]: ...

    async def heartbeat(self, handler: str, event_id: str) -> bool: ...

    async def mark_done(self, handler: str, event_id: str, aggregate_id: str,
                        sequence: int | None, error: str | None = None) -> None: ...

    async def mark_done_many(self, handler: str,
                             events: list[tuple[str, str, int | None]]) -> None: ...

    async def mark_failed(self, handler: str, event_id: str, error: str) -> None: ...

    async def mark_failed_many(self, handler: str, event_ids: list[str], error: str) -> None: ...

    async def last_sequence(self, handler: str, aggregate_id: str) -> int: ...

    async def release_owned(self) -> int: ...


class PostgresRegistry:
    def __init__(self, pool: asyncpg.Pool, owner: str, lease_seconds: float = 30.0) -> None:
        self.pool = pool
        self.owner = owner
        self.lease_seconds = lease_seconds
        # Concurrent claims and mark-dones (one per lane) share a statement each way.
        self._claimers: dict[str, Coalescer[tuple[str, str, int | None], Claim]] = {}
        self._finishers: dict[str, Coalescer[tuple[str, str, int | None, str | None], None]] = {}

    def _claimer(self, handler: str) -> Coalescer[tuple[str, str, int | None], Claim]:
        if handler not in self._claimers:
            async def many(items: list[tuple[str, str, int | None]]) -> list[Claim]:
                return await self.claim_many(handler, items)

            async def one(item: tuple[str, str, int | None]) -> Claim:
                claim = await self._claim(handler, *item)
                CLAIMS.inc(handler, claim.outcome.value)
                return claim

            self._claimers[handler] = Coalescer(many, one, key=lambda item: item[0])
        return self._claimers[handler]

    def _finisher(self, handler: str) -> Coalescer[tuple[str, str, int | None, str | None], None]:
        if handler not in self._finishers:
            async def many(items: list[tuple[str, str, int | None, str | None]]) -> list[None]:
                await self._mark_done_many(handler, items)
                return [None] * len(items)

            async def one(item: tuple[str, str, int | None, str | None]) -> None:
                await self._mark_done_one(handler, *item)

            self._finishers[handler] = Coalescer(many, one, key=lambda item: item[0])
        return self._finishers[handler]

    async def claim(self, handler: str, event_id: str, aggregate_id: str,
                    sequence: int | None) -> Claim:
        return await self._claimer(handler)((event_id, aggregate_id, sequence))

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
                return refused(status, last)
            if sequence is not None and sequence <= last:
                await conn.execute(
                    "UPDATE processed_events SET status = 'skipped_stale', owner = NULL, "
                    "lease_until = NULL, updated_at = now() WHERE handler = $1 AND event_id = $2",
                    handler, event_id)
                return Claim(ClaimOutcome.STALE, attempt, last)
            return Claim(ClaimOutcome.CLAIMED, attempt, last)

    async def claim_many(self, handler: str,
                         events: list[tuple[str, str, int | None]]) -> list[Claim]:
        """Claim many distinct (event_id, aggregate_id, sequence) at once, with the same
        outcomes as `claim`; a stale claim is recorded as skipped."""
        if not events:
            return []
        ids, aggregates, sequences = (list(column) for column in zip(*events, strict=True))
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(CLAIM_MANY_SQL, handler, ids, aggregates, sequences,
                                    self.owner, self.lease_seconds)
            claims: list[Claim] = []
            stale: list[str] = []
            late = await current_statuses(conn, handler, [
                row["event_id"] for row in rows if row["attempt"] is None and row["status"] is None])
            for row, (_, _, sequence) in zip(rows, events, strict=True):
                attempt, last = row["attempt"], row["last"]
                if attempt is None:
                    claims.append(refused(row["status"] or late.get(row["event_id"]), last))
                elif sequence is not None and sequence <= last:
                    stale.append(row["event_id"])
                    claims.append(Claim(ClaimOutcome.STALE, attempt, last))
                else:
                    claims.append(Claim(ClaimOutcome.CLAIMED, attempt, last))
                CLAIMS.inc(handler, claims[-1].outcome.value)
            if stale:
                await conn.execute(
                    "UPDATE processed_events SET status = 'skipped_stale', owner = NULL, "
                    "lease_until = NULL, updated_at = now() WHERE handler = $1 AND event_id = ANY($2)",
                    handler, stale)
        return claims

    async def mark_done_many(self, handler: str, events: list[tuple[str, str, int | None]]) -> None:
        await self._mark_done_many(handler, [(*e, None) for e in events])

    async def _mark_done_many(self, handler: str,
                              events: list[tuple[str, str, int | None, str | None]]) -> None:
        if not events:
            return
        ids, aggregates, sequences, errors = (list(column) for column in zip(*events, strict=True))
        async with self.pool.acquire() as conn:
            await conn.execute(MARK_DONE_MANY_SQL, handler, ids, aggregates, sequences, errors)

    async def mark_failed_many(self, handler: str, event_ids: list[str], error: str) -> None:
        async with self.pool.acquire() as conn:
            await conn.execute(
                "UPDATE processed_events SET status = 'failed', owner = NULL, lease_until = NULL, "
                "last_error = $3, updated_at = now() WHERE handler = $1 AND event_id = ANY($2) "
                "AND owner = $4", handler, event_ids, error[:2000], self.owner)

    async def claim_when_free(self, handler: str, event_id: str, aggregate_id: str,
                              sequence: int | None, poll: float = 0.5) -> Claim:
        """Claim, waiting while another owner holds a live lease (a rebalance): it either
        finishes (DONE) or its lease lapses and the claim is ours."""
        while True:
            claim = await self.claim(handler, event_id, aggregate_id, sequence)
            if claim.outcome is not ClaimOutcome.IN_PROGRESS:
                return claim
            await asyncio.sleep(poll)

    async def release_owned(self) -> int:
        """End every lease this owner holds (a clean stop, after its in-flight work
        finished or was cancelled): the next owner claims those events at once instead
        of waiting the lease out. The claim stays `processing` with an expired lease,
        the state a crash leaves, so the next claim counts it as another attempt."""
        async with self.pool.acquire() as conn:
            result = await conn.execute(
                "UPDATE processed_events SET lease_until = now() - interval '1 millisecond', "
                "updated_at = now() WHERE owner = $1 AND status = 'processing' "
                "AND lease_until > now()", self.owner)
        return int(result.split()[-1])

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
        await self._finisher(handler)((event_id, aggregate_id, sequence, error))

    async def _mark_done_one(self, handler: str, event_id: str, aggregate_id: str,
                             sequence: int | None, error: str | None) -> None:
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
