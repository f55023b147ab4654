"""A batch of domain events into the PostgreSQL read model in one statement: the
registry's claims, the documents' writes and the mark-done commit together.

The general projection path claims a batch (a leased row per event), writes the read
model, then marks the batch done: three statements, three round trips and three WAL
flushes, a third of a batch's time each. When the read model lives in the registry's
own database the three can be one atomic statement, and no lease is needed: a crash
rolls all of it back, so an event is either projected and done or neither. Of two
workers racing for one event, the second's insert waits on the first's row and then
finds it done, exactly as a claim does.

Used by the projection handler when the search index is the PostgreSQL read model on
the registry's pool (the default backends); Elasticsearch keeps the general path.
A batch holding a database deletion also keeps it (the deletion empties a database
at its place in the order, which the general path already does).
"""
from __future__ import annotations

from typing import Any

import asyncpg
import orjson

from spice.domain.envelope import Envelope
from spice.domain.messages import EventType
from spice.observability import CLAIMS
from spice.stores.registry import Claim, ClaimOutcome, current_statuses, refused
from spice.stores.search import Folded, document_rows, fold_one

# Every CTE sees the snapshot the statement started with; `claimed` hands the later
# ones what this statement inserted. A stale event (at or below its aggregate's last
# done sequence) is recorded as skipped in the same insert. A document is written only
# when the event it was folded to was claimed here: one held by another worker, or
# already done, is that worker's to write or already in.
PROJECT_SQL = """
WITH input AS (
    SELECT * FROM unnest($2::text[], $3::text[], $4::bigint[]) WITH ORDINALITY
           AS t(event_id, aggregate_id, seq, ord)),
prior AS (
    SELECT i.event_id, coalesce(v.last_sequence, 0) AS last
      FROM input i LEFT JOIN aggregate_versions v ON v.handler = $1 AND v.aggregate_id = i.aggregate_id),
claimed AS (
    INSERT INTO processed_events AS p (handler, event_id, aggregate_id, sequence_number, status,
                                       owner, lease_until, attempt_count)
    SELECT $1, i.event_id, i.aggregate_id, i.seq,
           CASE WHEN i.seq <= pr.last THEN 'skipped_stale' ELSE 'done' END, NULL, NULL, 1
      FROM input i JOIN prior pr USING (event_id)
    ON CONFLICT (handler, event_id) DO UPDATE
       SET status = EXCLUDED.status, owner = NULL, lease_until = NULL,
           attempt_count = p.attempt_count + 1, updated_at = now()
     WHERE p.status = 'failed' OR (p.status = 'processing' AND p.lease_until < now())
    RETURNING event_id, attempt_count, status),
versions AS (
    INSERT INTO aggregate_versions (handler, aggregate_id, last_sequence)
    SELECT $1, i.aggregate_id, max(i.seq) FROM input i JOIN claimed c USING (event_id)
     WHERE c.status = 'done' AND i.seq IS NOT NULL GROUP BY i.aggregate_id
    ON CONFLICT (handler, aggregate_id) DO UPDATE
       SET last_sequence = GREATEST(aggregate_versions.last_sequence, EXCLUDED.last_sequence)),
upserted AS (
    INSERT INTO {table} AS t (db, kind, doc_id, class_id, version, deleted, labels, body)
    SELECT db, kind, doc_id, class_id, version, false, labels, body
      FROM json_to_recordset($5::json) AS u(db text, kind text, doc_id text, class_id text,
                                            version bigint, labels text, body jsonb, event_id text)
     WHERE u.event_id IN (SELECT event_id FROM claimed WHERE status = 'done')
    ON CONFLICT (db, kind, doc_id) DO UPDATE SET class_id = EXCLUDED.class_id,
       version = EXCLUDED.version, deleted = false, labels = EXCLUDED.labels, body = EXCLUDED.body
     WHERE t.version < EXCLUDED.version),
tombstoned AS (
    INSERT INTO {table} AS t (db, kind, doc_id, class_id, version, deleted, labels, body)
    SELECT db, kind, doc_id, class_id, version, true, '', '{{}}'
      FROM json_to_recordset($6::json) AS u(db text, kind text, doc_id text, class_id text,
                                            version bigint, event_id text)
     WHERE u.event_id IN (SELECT event_id FROM claimed WHERE status = 'done')
    ON CONFLICT (db, kind, doc_id) DO UPDATE SET version = EXCLUDED.version, deleted = true,
       labels = '', body = '{{}}' WHERE t.version <= EXCLUDED.version)
SELECT i.event_id, c.attempt_count AS attempt, c.status AS claimed, e.status AS before, pr.last
  FROM input i
  JOIN prior pr USING (event_id)
  LEFT JOIN claimed c USING (event_id)
  LEFT JOIN processed_events e ON e.handler = $1 AND e.event_id = i.event_id
 ORDER BY i.ord
"""


def fusable(envelopes: list[Envelope]) -> bool:
    return all(e.event_type != EventType.DATABASE_DELETED for e in envelopes)


def documents(envelopes: list[Envelope]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Each document's latest version in the batch, with the event it comes from:
    (upserts, tombstones)."""
    folded: Folded = {}
    source: dict[tuple[str, str, str], str] = {}
    for envelope in envelopes:
        change = fold_one(envelope.event_type, envelope.sequence_number or 0, envelope.data)
        if change is None:
            continue
        key, version, row, class_id = change
        if key not in folded or version >= folded[key][0]:
            folded[key] = (version, row, class_id)
            source[key] = envelope.event_id
    upserts, tombstones = document_rows(folded)
    for doc in upserts + tombstones:
        doc["event_id"] = source[(doc["db"], doc["kind"], doc["doc_id"])]
    return upserts, tombstones


class FusedProjection:
    """Claim, write and mark done a batch of distinct events in one statement."""

    def __init__(self, pool: asyncpg.Pool, table: str) -> None:
        self.pool = pool
        self.sql = PROJECT_SQL.format(table=table)

    async def project(self, handler: str, envelopes: list[Envelope]) -> list[Claim]:
        """One claim per envelope, in order. CLAIMED means claimed, written and done;
        STALE recorded as skipped; DONE a duplicate; IN_PROGRESS held by another
        worker's live lease (the caller waits for that one alone)."""
        if not envelopes:
            return []
        ids = [e.event_id for e in envelopes]
        if len(set(ids)) != len(ids):  # one statement cannot claim a row twice
            raise ValueError("a projected batch needs distinct event ids")
        upserts, tombstones = documents(envelopes)
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(self.sql, handler, ids, [e.aggregate_id for e in envelopes],
                                    [e.sequence_number for e in envelopes],
                                    orjson.dumps(upserts).decode(), orjson.dumps(tombstones).decode())
            late = await current_statuses(conn, handler, [
                r["event_id"] for r in rows if r["claimed"] is None and r["before"] is None])
        claims = [outcome(row, late) for row in rows]
        for claim in claims:
            CLAIMS.inc(handler, claim.outcome.value)
        return claims


def outcome(row: Any, late: dict[str, str]) -> Claim:
    last = row["last"]
    if row["claimed"] == "done":
        return Claim(ClaimOutcome.CLAIMED, row["attempt"], last)
    if row["claimed"] == "skipped_stale":
        return Claim(ClaimOutcome.STALE, row["attempt"], last)
    return refused(row["before"] or late.get(row["event_id"]), last)
