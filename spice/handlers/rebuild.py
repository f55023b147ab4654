"""Rebuild the search read model from the event store, and verify it against the graph.

Rebuild: replay every stored batch into a fresh table while live projections keep
writing the old one; catch up; then, holding an exclusive lock on the live table
(live writers wait), catch up once more and swap the tables in one transaction.
Writes that were waiting on the lock are replayed after the swap (the version rule
makes every replay harmless). A second rebuild while one runs is refused.
"""
from __future__ import annotations

import asyncio
import gc
import sys
import time
from typing import Any, TextIO

import orjson

from spice.runtime import Runtime
from spice.stores.s3_event_store import position_at
from spice.stores.search import LIVE_TABLE, PostgresSearchIndex

REBUILD_LOCK = 0x5E1CE_5EA
NEXT_TABLE = "search_docs_next"
PREFETCH = 64  # batches read concurrently (SeaweedFS serves ~1,000 GETs/s at 64)
AHEAD = 4  # chunks read and parsed ahead of the writer
# The full-text and trigram indexes are built once the table is loaded, not row by
# row during the load: a GIN index built in one go costs a fraction of its upkeep.
GIN_INDEXES = {"tsv": "USING gin (tsv)", "trgm": "USING gin (labels gin_trgm_ops)"}


class Progress:
    def __init__(self, total: int, out: TextIO) -> None:
        self.total, self.out = max(total, 1), out
        self.done = 0
        self.started = self.shown = time.monotonic()

    def add(self, count: int, force: bool = False) -> None:
        self.done += count
        now = time.monotonic()
        if force or now - self.shown >= 0.5:
            self.shown = now
            rate = self.done / max(now - self.started, 1e-6)
            left = max(self.total - self.done, 0) / rate if rate else 0
            width = 30
            filled = min(width, int(width * self.done / self.total))
            self.out.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {self.done:,} envelopes "
                           f"{rate:,.0f}/s ETA {left:,.0f}s ")
            self.out.flush()

    @property
    def rate(self) -> float:
        return self.done / max(time.monotonic() - self.started, 1e-6)


def changes_in(body: bytes, db: str | None) -> tuple[list[tuple[str, int | None, dict[str, Any]]], int]:
    """The read-model changes (event type, sequence, data) in one stored batch, and how
    many envelopes it holds. Plain JSON, not the Envelope model: every envelope was
    validated when it was appended, and validating again costs more than the write."""
    changes, count = [], 0
    for line in body.splitlines():
        if not line.strip():
            continue
        count += 1
        doc = orjson.loads(line)
        if doc.get("metadata", {}).get("kind", "domain") != "domain":
            continue
        data = doc["data"]
        if db is None or data.get("db", data.get("name")) == db:
            changes.append((doc["event_type"], doc.get("sequence_number"), data))
    return changes, count


async def _read_chunk(store: Any, keys: list[str], db: str | None) -> tuple[list[str], list[Any], int]:
    # The signed client's connection limit bounds the GETs in flight.
    bodies = await asyncio.gather(*[store.read_raw(key) for key in keys])
    changes: list[Any] = []
    count = 0
    for body in bodies:
        found, n = changes_in(body, db)
        changes += found
        count += n
    return keys, changes, count


class ReadKeys:
    """The batches a rebuild has applied at or after `horizon`: after the swap, only the
    lookback window's batches *not* among them need replaying (late arrivals, and live
    writes the swap may have sent to the old table). Replaying the whole window again
    doubled a rebuild of a young store. Only keys past the horizon are kept, so memory
    is bounded by the window, not the store."""

    def __init__(self, horizon: str) -> None:
        self.horizon = horizon
        self.keys: set[str] = set()

    def add(self, keys: list[str]) -> None:
        self.keys.update(k for k in keys if k >= self.horizon)


async def replay_into(runtime: Runtime, index: PostgresSearchIndex, after: str | None,
                      db: str | None, progress: Progress, *, seen: ReadKeys | None = None,
                      skip: set[str] | None = None) -> str | None:
    """Apply every batch after `after` to `index`; returns the last position seen.
    `seen` collects what was applied; batches in `skip` are left out.

    Reading (listing, PREFETCH batches at a time, parsing) runs ahead of writing, by
    up to AHEAD chunks: S3 and PostgreSQL work at the same time, and memory stays
    bounded however long the store is."""
    store = runtime.event_store
    # Chunks in order, each read by its own task as soon as it is listed: the GETs of
    # the next chunks overlap the parsing of this one and the writing of the one before.
    queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=AHEAD)

    async def read() -> None:
        try:
            chunk: list[str] = []
            async for key in store.list_positions(after):
                if skip is not None and key in skip:
                    continue
                chunk.append(key)
                if len(chunk) == PREFETCH:
                    await queue.put(asyncio.create_task(_read_chunk(store, chunk, db)))
                    chunk = []
            if chunk:
                await queue.put(asyncio.create_task(_read_chunk(store, chunk, db)))
            await queue.put(None)
        except Exception as error:  # noqa: BLE001 - handed to the writer, which raises it
            await queue.put(error)

    reader = asyncio.create_task(read())
    position = after
    try:
        while (item := await queue.get()) is not None:
            if isinstance(item, Exception):
                raise item
            keys, changes, count = await item
            if changes:
                await index.apply_changes(changes)
            if seen is not None:
                seen.add(keys)
            progress.add(count)
            position = keys[-1]
    finally:
        reader.cancel()
        pending = [reader]
        while not queue.empty():
            item = queue.get_nowait()
            if isinstance(item, asyncio.Task):
                item.cancel()
                pending.append(item)
        await asyncio.gather(*pending, return_exceptions=True)
    return position


async def rebuild(runtime: Runtime, db: str | None = None, out: TextIO = sys.stderr) -> dict[str, Any]:
    pool = runtime.pool
    async with pool.acquire() as lock:
        if not await lock.fetchval("SELECT pg_try_advisory_lock($1)", REBUILD_LOCK):
            raise RuntimeError("another rebuild is running; try again when it has finished")
        collecting = gc.isenabled()
        # A rebuild parses every stored envelope into a few dicts each, and chunks of
        # them are alive at once: the cyclic collector, counting allocations, ran pass
        # after pass over them (about half of the replay's CPU: 0.62 vs 0.26-0.41 s per
        # 20,000 envelopes without it). Parsed JSON forms no cycles; reference counting
        # frees it. The collector is off while the rebuild runs.
        gc.disable()
        try:
            return await _rebuild(runtime, db, out)
        finally:
            if collecting:
                gc.enable()  # no pass forced here: a full one took 0.22 s of a 1.2 s rebuild
            await lock.fetchval("SELECT pg_advisory_unlock($1)", REBUILD_LOCK)


async def _rebuild(runtime: Runtime, db: str | None, out: TextIO) -> dict[str, Any]:
    from spice.stores.search_elasticsearch import ElasticsearchSearchIndex

    if isinstance(runtime.search, ElasticsearchSearchIndex):
        return await _rebuild_elasticsearch(runtime, runtime.search, db, out)
    pool = runtime.pool
    async with pool.acquire() as conn:
        await conn.execute(f"DROP TABLE IF EXISTS {NEXT_TABLE}")
        if db is None:  # it becomes the live table
            await conn.execute(f"CREATE TABLE {NEXT_TABLE} (LIKE {LIVE_TABLE} INCLUDING DEFAULTS "
                               "INCLUDING GENERATED INCLUDING CONSTRAINTS)")
            await conn.execute(f"ALTER TABLE {NEXT_TABLE} ADD PRIMARY KEY (db, kind, doc_id)")
        else:
            # Only a staging table: its latest row per document is compared with the live
            # one and copied over where they differ (the live table computes the tsvector
            # then). So: no WAL (UNLOGGED), no generated column, and no key: rows are
            # appended, and the swap picks each document's latest (an upsert into a keyed
            # table cost 40 % more per row).
            await conn.execute(f"CREATE UNLOGGED TABLE {NEXT_TABLE} (LIKE {LIVE_TABLE} "
                               "INCLUDING DEFAULTS)")
        total = await _estimated_envelopes(conn)
    index = PostgresSearchIndex(pool, NEXT_TABLE, append_only=db is not None)
    progress = Progress(total, out)
    started = time.time()
    seen = ReadKeys(position_at(started - runtime.settings.event_publisher_lookback_seconds))
    position = await replay_into(runtime, index, None, db, progress, seen=seen)
    position = await replay_into(runtime, index, position, db, progress, seen=seen)
    if db is None:
        async with pool.acquire() as conn:
            for name, how in GIN_INDEXES.items():
                await conn.execute(f"CREATE INDEX {NEXT_TABLE}_{name} ON {NEXT_TABLE} {how}")
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(f"LOCK TABLE {LIVE_TABLE} IN EXCLUSIVE MODE")
        position = await replay_into(runtime, index, position, db, progress, seen=seen)
        if db is None:
            await conn.execute(f"ALTER TABLE {LIVE_TABLE} RENAME TO search_docs_old")
            await conn.execute(f"ALTER TABLE {NEXT_TABLE} RENAME TO {LIVE_TABLE}")
            await conn.execute("DROP TABLE search_docs_old")
            # The names migrations and operators know.
            for name in ("pkey", *GIN_INDEXES):
                await conn.execute(f"ALTER INDEX {NEXT_TABLE}_{name} RENAME TO {LIVE_TABLE}_{name}")
        else:
            # The swap joins the just-loaded staging table, which has no statistics, with
            # the live one: a planner that knows nothing of it may pick a nested loop over
            # two scans (it did: over 30 s for 20,000 documents on a new database). Hash
            # joins and an in-memory sort do it in ~0.1 s; indexing and ANALYZE first, as
            # this did before, cost 0.23 s of a 1.2 s rebuild.
            await conn.execute("SET LOCAL enable_nestloop = off")
            await conn.execute("SET LOCAL work_mem = '64MB'")
            await _swap_database(conn, db)
    # Live writes that waited on the lock went to the old table: replay the recent past
    # into the live one (late writers included, hence the lookback).
    live = PostgresSearchIndex(pool, LIVE_TABLE)
    # Only what the rebuild did not apply itself (see ReadKeys).
    await replay_into(runtime, live, min(seen.horizon, position or seen.horizon), db, progress,
                      skip=seen.keys)
    progress.add(0, force=True)
    out.write("\n")
    return {"envelopes_replayed": progress.done, "rate_per_second": round(progress.rate),
            "db": db or "all", "position": position}


async def _estimated_envelopes(conn: Any) -> int:
    """The progress bar's total: the planner's row estimate of the event index, not a
    count(*) that scans it (65 ms at 700,000 envelopes, growing with the store)."""
    estimate = await conn.fetchval(
        "SELECT reltuples::bigint FROM pg_class WHERE oid = 'event_index'::regclass")
    return max(int(estimate or 0), 0)


async def _swap_database(conn: Any, db: str) -> None:
    """Make the live table's rows of `db` equal to the rebuilt ones, writing only the
    rows that differ: deleting and re-inserting them all cost a GIN index update per
    document (2 s for 40,000), and a rebuild of a model that had not drifted now
    writes nothing."""
    columns = ("class_id", "version", "deleted", "labels", "body")
    await conn.execute(
        f"DELETE FROM {LIVE_TABLE} l WHERE l.db = $1 AND NOT EXISTS (SELECT 1 FROM {NEXT_TABLE} n "
        "WHERE n.db = l.db AND n.kind = l.kind AND n.doc_id = l.doc_id)", db)
    # Each document's latest row (a tombstone wins a tie, as in the live table), then the
    # rows that differ, found by one join: an upsert of every row would lock each live
    # row (ON CONFLICT locks before it checks its WHERE) for nothing. The join names the
    # database as a constant (`o.db = $1`): joined on `o.db = n.db` the planner scanned
    # the whole live table, every database's rows (265 vs 79 ms beside 500,000 others).
    await conn.execute(
        f"WITH latest AS (SELECT DISTINCT ON (db, kind, doc_id) * FROM {NEXT_TABLE} WHERE db = $1 "
        "ORDER BY db, kind, doc_id, version DESC, deleted DESC) "
        f"INSERT INTO {LIVE_TABLE} AS l (db, kind, doc_id, {', '.join(columns)}) "
        f"SELECT n.db, n.kind, n.doc_id, {', '.join('n.' + c for c in columns)} "
        f"FROM latest n LEFT JOIN {LIVE_TABLE} o ON o.db = $1 AND o.kind = n.kind "
        "AND o.doc_id = n.doc_id WHERE o.doc_id IS NULL OR "
        f"({', '.join('o.' + c for c in columns)}) IS DISTINCT FROM "
        f"({', '.join('n.' + c for c in columns)}) "
        "ON CONFLICT (db, kind, doc_id) DO UPDATE SET "
        + ", ".join(f"{c} = EXCLUDED.{c}" for c in columns), db)
    await conn.execute(f"DROP TABLE {NEXT_TABLE}")


async def _rebuild_elasticsearch(runtime: Runtime, live: Any, db: str | None,
                                 out: TextIO) -> dict[str, Any]:
    """Fresh indexes behind the aliases, filled from the store, then one atomic alias swap;
    live writes that went to the old indexes meanwhile are replayed after it."""
    from spice.stores.search_elasticsearch import ElasticsearchSearchIndex

    async with runtime.pool.acquire() as conn:
        total = await _estimated_envelopes(conn)
    target = ElasticsearchSearchIndex("", client=live.es, build=f"r{int(time.time())}")
    progress = Progress(total, out)
    started = time.time()
    position = await replay_into(runtime, target, None, db, progress)  # type: ignore[arg-type]
    position = await replay_into(runtime, target, position, db, progress)  # type: ignore[arg-type]
    await target.publish()
    recent = position_at(started - runtime.settings.event_publisher_lookback_seconds)
    await replay_into(runtime, live, min(recent, position or recent), db, progress)
    progress.add(0, force=True)
    out.write("\n")
    return {"envelopes_replayed": progress.done, "rate_per_second": round(progress.rate),
            "db": db or "all", "position": position}


async def verify(runtime: Runtime, db: str | None = None) -> dict[str, Any]:
    """Compare the read model with the graph store; every difference is listed."""
    from spice.stores.search_elasticsearch import ElasticsearchSearchIndex

    if isinstance(runtime.search, ElasticsearchSearchIndex):
        raise RuntimeError("verify compares the PostgreSQL read model; on Elasticsearch use a "
                           "rebuild (it replays the event store) until verify learns to read it")
    graph = runtime.graph
    names = [db] if db else [d["name"] for d in await graph.list_databases()]
    drift: list[dict[str, Any]] = []
    async with runtime.pool.acquire() as conn:
        for name in names:
            rows = await conn.fetch(f"SELECT kind, doc_id, body FROM {LIVE_TABLE} "
                                    "WHERE db = $1 AND NOT deleted", name)
            indexed = {(r["kind"], r["doc_id"]): r["body"] for r in rows}
            expected: dict[tuple[str, str], Any] = {}
            for cls in await graph.list_classes(name):
                expected[("class", cls["id"])] = cls
                after = None
                while True:
                    page = await graph.list_instances(name, cls["id"], limit=1000, after=after)
                    for item in page:
                        expected[("instance", f"{cls['id']}/{item['instance_id']}")] = item["data"]
                    if len(page) < 1000:
                        break
                    after = page[-1]["instance_id"]
            import json

            for key in expected.keys() - indexed.keys():
                drift.append({"db": name, "kind": key[0], "id": key[1], "problem": "missing from index"})
            for key in indexed.keys() - expected.keys():
                drift.append({"db": name, "kind": key[0], "id": key[1], "problem": "not in graph"})
            for key in expected.keys() & indexed.keys():
                if json.loads(indexed[key]) != expected[key]:
                    drift.append({"db": name, "kind": key[0], "id": key[1], "problem": "differs"})
    return {"databases": len(names), "drift": drift[:1000], "drift_count": len(drift)}
