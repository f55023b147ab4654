"""The audit index: every stored envelope with who, when and what, in PostgreSQL next to
the event index, and the reads that history, time travel and the audit log make of it.

The event store records a batch here in the statement that marks it stored
(spice_record_batch, migration 12), before the appender hears back: a client whose
write completed finds it in its history. Each database has a hash chain: link n is
sha256(link n-1 || sha256(the envelope's stored line)), so a line rewritten in S3, or
an index row altered or removed, breaks the chain at its position
(`spice audit verify`, spice/audit_verify.py). Like the event index, this is derived
from the batches in S3; it is what answers reads, so that no history read scans S3.
"""
from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from spice.domain.envelope import Envelope
from spice.domain.history import Fact, fold
from spice.domain.messages import AggregateType, EventType, database_of

NO_DATABASE = ""  # the chain of envelopes that name no database (topic-level commands)
ENTRY_COLUMNS = ("e.db, e.chain_position, e.event_id, e.kind, e.event_type, e.command_type, "
                 "e.command_id, e.aggregate_type, e.aggregate_id, e.sequence_number, e.actor, "
                 "e.occurred_at, e.recorded_at, e.outcome, e.data, e.metadata")
# The aggregate's state before each listed event: its previous success event.
# Success events of one aggregate are in sequence order, so this is one probe of the
# partial index audit_events_versions per entry.
PREVIOUS = ("LEFT JOIN LATERAL (SELECT p.data AS previous, p.event_type AS previous_type "
            "FROM audit_events p WHERE p.aggregate_id = e.aggregate_id "
            "AND p.outcome = 'succeeded' AND p.sequence_number < e.sequence_number "
            "ORDER BY p.sequence_number DESC LIMIT 1) prev ON e.outcome = 'succeeded'")


def database_named(raw: dict[str, Any]) -> str:
    """The database an envelope belongs to (spice.domain.messages.database_of, on the
    decoded line)."""
    metadata, data = raw.get("metadata") or {}, raw.get("data") or {}
    db = metadata.get("db") or data.get("db")
    if db is None and raw.get("aggregate_type") == AggregateType.DATABASE:
        db = data.get("name")
    return db if isinstance(db, str) else NO_DATABASE


def record_arguments(body: bytes, envelopes: list[Envelope] | None = None
                     ) -> tuple[list[str], list[str], list[str], list[str]]:
    """spice_record_batch's arrays for a stored batch: (databases, event ids, lines, line
    hashes), grouped by database, in batch order within each. `envelopes`: the batch's
    envelopes, one per line, as the writer that encoded it still holds them (no line is
    parsed again on the append path). Without them each line is read back; one that does
    not decode is left out (the event store's readers skip it too)."""
    rows = []
    if envelopes is not None:
        for index, (line, envelope) in enumerate(zip(body.splitlines(), envelopes, strict=True)):
            rows.append((database_of(envelope) or NO_DATABASE, index, envelope.event_id,
                         line.decode(), hashlib.sha256(line).hexdigest()))
    else:
        for index, line in enumerate(body.splitlines()):
            try:
                raw = orjson.loads(line)
                event_id = raw["event_id"]
            except (orjson.JSONDecodeError, KeyError, TypeError):
                continue  # an empty line too
            rows.append((database_named(raw), index, str(event_id), line.decode(),
                         hashlib.sha256(line).hexdigest()))
    rows.sort(key=lambda r: (r[0], r[1]))
    return ([r[0] for r in rows], [r[2] for r in rows], [r[3] for r in rows],
            [r[4] for r in rows])


def chain_link(previous: str, line_hash: str) -> str:
    return hashlib.sha256((previous + line_hash).encode()).hexdigest()


@dataclass(frozen=True)
class EntryFilter:
    """What an audit or history listing selects; None is 'any'."""

    db: str | None  # None: every database ('*' admins)
    aggregate_id: str | None = None
    actor: str | None = None
    command_type: str | None = None
    outcome: str | None = None
    kind: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def encode_cursor(row: dict[str, Any]) -> str:
    key = [row["recorded_at"].isoformat(), row["db"], row["chain_position"]]
    return base64.urlsafe_b64encode(orjson.dumps(key)).decode()


def decode_cursor(cursor: str) -> tuple[datetime, str, int]:
    try:
        stamp, db, position = orjson.loads(base64.urlsafe_b64decode(cursor.encode()))
        return datetime.fromisoformat(stamp), str(db), int(position)
    except (ValueError, TypeError, orjson.JSONDecodeError):
        raise ValueError("cursor is not one this API returned") from None


class AuditIndex:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def entries(self, where: EntryFilter, *, descending: bool = True,
                      cursor: str | None = None, limit: int = 50) -> tuple[list[dict[str, Any]], str | None]:
        """One page of entries in recorded order (recorded_at, then the database's chain
        position), with the aggregate's previous state beside each success event, and
        the cursor of the next page."""
        conditions, args = [], []

        def arg(value: Any) -> str:
            args.append(value)
            return f"${len(args)}"

        for column, value in (("e.db", where.db), ("e.aggregate_id", where.aggregate_id),
                              ("e.actor", where.actor), ("e.command_type", where.command_type),
                              ("e.outcome", where.outcome), ("e.kind", where.kind)):
            if value is not None:
                conditions.append(f"{column} = {arg(value)}")
        if where.since is not None:
            conditions.append(f"e.recorded_at >= {arg(where.since)}")
        if where.until is not None:
            conditions.append(f"e.recorded_at <= {arg(where.until)}")
        # One aggregate lives in one database, whose chain positions are its recorded
        # order: its index (aggregate_id, chain_position) gives the page without a sort.
        one_chain = where.aggregate_id is not None and where.db is not None
        key = ("e.chain_position",) if one_chain else ("e.recorded_at", "e.db", "e.chain_position")
        if cursor:
            stamp, db, position = decode_cursor(cursor)
            compare = "<" if descending else ">"
            bound = (arg(position),) if one_chain else (arg(stamp), arg(db), arg(position))
            conditions.append(f"({', '.join(key)}) {compare} ({', '.join(bound)})")
        direction = "DESC" if descending else "ASC"
        sql = (f"SELECT {ENTRY_COLUMNS}, prev.previous, prev.previous_type FROM audit_events e "
               f"{PREVIOUS} WHERE {' AND '.join(conditions) or 'true'} "
               f"ORDER BY {', '.join(f'{k} {direction}' for k in key)} LIMIT {arg(limit + 1)}")
        async with self.pool.acquire() as conn:
            rows = [dict(r) for r in await conn.fetch(sql, *args)]
        more = len(rows) > limit
        rows = rows[:limit]
        return rows, encode_cursor(rows[-1]) if more and rows else None

    async def version_fact(self, aggregate_id: str, version: int) -> tuple[Fact, int] | None:
        """The aggregate's last success event at or before sequence number `version`,
        and that event's sequence number."""
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow(
                "SELECT event_type, data, sequence_number FROM audit_events "
                "WHERE aggregate_id = $1 AND outcome = 'succeeded' AND sequence_number <= $2 "
                "ORDER BY sequence_number DESC LIMIT 1", aggregate_id, version)
        if row is None:
            return None
        return Fact(row["event_type"], orjson.loads(row["data"])), row["sequence_number"]

    async def facts_at_time(self, db: str, aggregate_id: str, at: datetime
                            ) -> tuple[list[Fact], int | None]:
        """What decides the aggregate's state at time `at`: its last success event
        recorded by then and, after it, a delete of its database; with that event's
        sequence number."""
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow(
                "SELECT event_type, data, sequence_number, chain_position FROM audit_events "
                "WHERE aggregate_id = $1 AND db = $2 AND outcome = 'succeeded' "
                "AND recorded_at <= $3 ORDER BY chain_position DESC LIMIT 1", aggregate_id, db, at)
            if row is None:
                return [], None
            dropped = await conn.fetchval(
                "SELECT 1 FROM audit_events WHERE aggregate_id = $1 AND db = $1 "
                "AND event_type = $2 AND outcome = 'succeeded' AND chain_position > $3 "
                "AND recorded_at <= $4 LIMIT 1",
                db, EventType.DATABASE_DELETED.value, row["chain_position"], at)
        facts = [Fact(row["event_type"], orjson.loads(row["data"]))]
        if dropped:
            facts.append(Fact(EventType.DATABASE_DELETED.value, {"db": db}))
        return facts, row["sequence_number"]

    async def latest_version(self, aggregate_id: str) -> int:
        """The sequence number of the aggregate's last success event (0: none)."""
        async with self.pool.acquire() as conn:
            value = await conn.fetchval(
                "SELECT max(sequence_number) FROM audit_events "
                "WHERE aggregate_id = $1 AND outcome = 'succeeded'", aggregate_id)
        return int(value or 0)

    async def schema_facts(self, db: str, *, position: int | None = None,
                           at: datetime | None = None) -> tuple[list[Fact], int]:
        """The database's class events and deletes up to a chain position or a time, in
        order, and the chain position they reach."""
        condition, bound = ("chain_position <= $2", position) if position is not None \
            else ("recorded_at <= $2", at)
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT event_type, data, chain_position FROM audit_events "
                "WHERE db = $1 AND outcome = 'succeeded' "
                "AND aggregate_type IN ('OntologyClass', 'Database') "
                f"AND {condition} ORDER BY chain_position", db, bound)
            reached = await conn.fetchval(
                f"SELECT max(chain_position) FROM audit_events WHERE db = $1 AND {condition}",
                db, bound)
        return [Fact(r["event_type"], orjson.loads(r["data"])) for r in rows], int(reached or 0)

    async def latest_states(self, db: str) -> dict[tuple[str, str], Any]:
        """Every class and instance of the database as its history leaves it now, by
        (kind, id) like the graph store's documents (events before the database's last
        delete do not count)."""
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                "WITH dropped AS (SELECT coalesce(max(chain_position), 0) AS p FROM audit_events "
                "  WHERE aggregate_id = $1 AND db = $1 AND event_type = 'DATABASE_DELETED' "
                "  AND outcome = 'succeeded') "
                "SELECT DISTINCT ON (aggregate_id) aggregate_type, aggregate_id, event_type, data "
                "FROM audit_events, dropped WHERE db = $1 AND outcome = 'succeeded' "
                "AND aggregate_type IN ('OntologyClass', 'Instance') AND chain_position > dropped.p "
                "ORDER BY aggregate_id, chain_position DESC", db)
        states: dict[tuple[str, str], Any] = {}
        for row in rows:
            state = fold([Fact(row["event_type"], orjson.loads(row["data"]))])
            if state is None:
                continue
            local = row["aggregate_id"].split(":", 1)[1]  # db:Class or db:Class/instance
            kind = "class" if row["aggregate_type"] == AggregateType.ONTOLOGY_CLASS else "instance"
            states[(kind, local)] = state
        return states

    async def head(self, db: str) -> dict[str, Any] | None:
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow(
                "SELECT db, chain_position, chain_hash, recorded_at FROM audit_chain_heads "
                "WHERE db = $1", db)
        return dict(row) if row else None

    async def chained_databases(self) -> list[str]:
        async with self.pool.acquire() as conn:
            return [r["db"] for r in await conn.fetch(
                "SELECT db FROM audit_chain_heads ORDER BY db")]

    async def chain_rows(self, db: str, after: int, limit: int) -> list[asyncpg.Record]:
        """The chain of a database in order, from after a position: what verify walks."""
        async with self.pool.acquire() as conn:
            return await conn.fetch(
                "SELECT e.chain_position, e.event_id, e.batch_key, e.line_hash, e.chain_hash, "
                "b.bucket FROM audit_events e LEFT JOIN batch_buckets b USING (batch_key) "
                "WHERE e.db = $1 AND e.chain_position > $2 ORDER BY e.chain_position LIMIT $3",
                db, after, limit)
