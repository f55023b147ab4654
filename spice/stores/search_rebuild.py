"""A rebuild of the search read model, as each adapter does it (the port's `rebuild`).

The handler (spice/handlers/rebuild.py) replays the event store; a `Rebuild` says where
the replayed documents go and how they replace the live ones:

    job = search.rebuild(db)
    await job.prepare()                 # a fresh target beside the live model
    ... replay into job.target, twice (catching up) ...
    await job.loaded()                  # build what is cheaper built once
    async with job.swap():              # live writers held back
        ... a last catch-up into job.target ...
    ... replay the recent past into job.live ...

`PostgresRebuild` (below) fills a staging table and swaps it in one transaction; the
Elasticsearch adapter fills fresh indexes and swaps the aliases.
"""
from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Protocol

import asyncpg

NEXT_TABLE = "search_docs_next"
# The full-text and trigram indexes are built once the table is loaded, not row by
# row during the load: a GIN index built in one go costs a fraction of its upkeep.
GIN_INDEXES = {"tsv": "USING gin (tsv)", "trgm": "USING gin (labels gin_trgm_ops)"}


class Rebuild(Protocol):
    target: Any  # where the replay writes (apply_changes)
    live: Any  # the live model, for what live writers may have missed during the swap
    # After the swap, replay only the recent batches the rebuild did not apply itself
    # (True), or the whole recent past (False: the target cannot tell them apart).
    skips_applied: bool

    async def prepare(self) -> None: ...
    async def loaded(self) -> None: ...
    def swap(self) -> AbstractAsyncContextManager[None]: ...


class PostgresRebuild:
    skips_applied = True

    def __init__(self, pool: asyncpg.Pool, live_table: str, db: str | None) -> None:
        from spice.stores.search import PostgresSearchIndex

        self.pool, self.live_table, self.db = pool, live_table, db
        self.target = PostgresSearchIndex(pool, NEXT_TABLE, append_only=db is not None)
        self.live = PostgresSearchIndex(pool, live_table)

    async def prepare(self) -> None:
        async with self.pool.acquire() as conn:
            await conn.execute(f"DROP TABLE IF EXISTS {NEXT_TABLE}")
            if self.db is None:  # it becomes the live table
                await conn.execute(f"CREATE TABLE {NEXT_TABLE} (LIKE {self.live_table} INCLUDING "
                                   "DEFAULTS INCLUDING GENERATED INCLUDING CONSTRAINTS)")
                await conn.execute(f"ALTER TABLE {NEXT_TABLE} ADD PRIMARY KEY (db, kind, doc_id)")
            else:
                # Only a staging table: its latest row per document is compared with the
                # live one and copied over where they differ (the live table computes the
                # tsvector then). So: no WAL (UNLOGGED), no generated column, and no key:
                # rows are appended, and the swap picks each document's latest (an upsert
                # into a keyed table cost 40 % more per row).
                await conn.execute(f"CREATE UNLOGGED TABLE {NEXT_TABLE} (LIKE {self.live_table} "
                                   "INCLUDING DEFAULTS)")

    async def loaded(self) -> None:
        if self.db is None:
            async with self.pool.acquire() as conn:
                for name, how in GIN_INDEXES.items():
                    await conn.execute(f"CREATE INDEX {NEXT_TABLE}_{name} ON {NEXT_TABLE} {how}")

    @asynccontextmanager
    async def swap(self) -> AsyncIterator[None]:
        live = self.live_table
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(f"LOCK TABLE {live} IN EXCLUSIVE MODE")
            yield
            if self.db is None:
                await conn.execute(f"ALTER TABLE {live} RENAME TO {live}_old")
                await conn.execute(f"ALTER TABLE {NEXT_TABLE} RENAME TO {live}")
                await conn.execute(f"DROP TABLE {live}_old")
                # The names migrations and operators know.
                for name in ("pkey", *GIN_INDEXES):
                    await conn.execute(f"ALTER INDEX {NEXT_TABLE}_{name} RENAME TO {live}_{name}")
            else:
                # The swap joins the just-loaded staging table, which has no statistics,
                # with the live one: a planner that knows nothing of it may pick a nested
                # loop over two scans (it did: over 30 s for 20,000 documents on a new
                # database). Hash joins and an in-memory sort do it in ~0.1 s; indexing and
                # ANALYZE first cost 0.23 s of a 1.2 s rebuild.
                await conn.execute("SET LOCAL enable_nestloop = off")
                await conn.execute("SET LOCAL work_mem = '64MB'")
                await self._swap_database(conn, self.db)

    async def _swap_database(self, conn: Any, db: str) -> None:
        """Make the live table's rows of `db` equal to the rebuilt ones, writing only the
        rows that differ: deleting and re-inserting them all cost a GIN index update per
        document (2 s for 40,000), and a rebuild of a model that had not drifted now
        writes nothing."""
        live, columns = self.live_table, ("class_id", "version", "deleted", "labels", "body")
        await conn.execute(
            f"DELETE FROM {live} l WHERE l.db = $1 AND NOT EXISTS (SELECT 1 FROM {NEXT_TABLE} n "
            "WHERE n.db = l.db AND n.kind = l.kind AND n.doc_id = l.doc_id)", db)
        # Each document's latest row (a tombstone wins a tie, as in the live table), then
        # the rows that differ, found by one join: an upsert of every row would lock each
        # live row (ON CONFLICT locks before it checks its WHERE) for nothing. The join
        # names the database as a constant (`o.db = $1`): joined on `o.db = n.db` the
        # planner scanned the whole live table, every database's rows (265 vs 79 ms
        # beside 500,000 others).
        await conn.execute(
            f"WITH latest AS (SELECT DISTINCT ON (db, kind, doc_id) * FROM {NEXT_TABLE} "
            "WHERE db = $1 ORDER BY db, kind, doc_id, version DESC, deleted DESC) "
            f"INSERT INTO {live} AS l (db, kind, doc_id, {', '.join(columns)}) "
            f"SELECT n.db, n.kind, n.doc_id, {', '.join('n.' + c for c in columns)} "
            f"FROM latest n LEFT JOIN {live} o ON o.db = $1 AND o.kind = n.kind "
            "AND o.doc_id = n.doc_id WHERE o.doc_id IS NULL OR "
            f"({', '.join('o.' + c for c in columns)}) IS DISTINCT FROM "
            f"({', '.join('n.' + c for c in columns)}) "
            "ON CONFLICT (db, kind, doc_id) DO UPDATE SET "
            + ", ".join(f"{c} = EXCLUDED.{c}" for c in columns), db)
        await conn.execute(f"DROP TABLE {NEXT_TABLE}")
