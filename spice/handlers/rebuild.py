"""Rebuild the search read model from the event store, and verify it against the graph.

Rebuild: replay every stored batch into a fresh target (the search port's `rebuild`:
a staging table, or fresh Elasticsearch indexes) while live projections keep writing
the live model; catch up; then, with live writers held back, catch up once more and
swap. Writes that went to the old model meanwhile are replayed after the swap (the
version rule makes every replay harmless). A second rebuild while one runs is refused.
"""
from __future__ import annotations

import asyncio
import gc
import sys
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, TextIO

import orjson

from spice.stores.postgres import exclusive
from spice.stores.s3_event_store import position_at

REBUILD_LOCK = 0x5E1CE_5EA
PREFETCH = 64  # batches read concurrently (SeaweedFS serves ~1,000 GETs/s at 64)
AHEAD = 4  # chunks read and parsed ahead of the writer


class Progress:
    """A bar redrawn in place on a terminal; in a log (not a terminal), a plain line every
    LOG_EVERY seconds, so no `\r` frames pile up in files."""

    LOG_EVERY = 10.0

    def __init__(self, total: int, out: TextIO) -> None:
        self.total, self.out = max(total, 1), out
        self.tty = bool(getattr(out, "isatty", lambda: False)())
        self.done = 0
        self.started = self.shown = time.monotonic()

    def add(self, count: int, force: bool = False) -> None:
        self.done += count
        now = time.monotonic()
        if force or now - self.shown >= (0.5 if self.tty else self.LOG_EVERY):
            self.shown = now
            rate = self.done / max(now - self.started, 1e-6)
            left = max(self.total - self.done, 0) / rate if rate else 0
            figures = f"{self.done:,} of {self.total:,} envelopes {rate:,.0f}/s ETA {left:,.0f}s"
            if self.tty:
                width = 30
                filled = min(width, int(width * self.done / self.total))
                self.out.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {figures} ")
            else:
                self.out.write(f"rebuild: {figures}\n")
            self.out.flush()

    @property
    def rate(self) -> float:
        return self.done / max(time.monotonic() - self.started, 1e-6)


def changes_in(body: bytes, db: str | None) -> tuple[list[tuple[str, int | None, dict[str, Any]]], int]:
    """The read-model changes (event type, sequence, data) in one stored batch, and how
    many of its envelopes are the database's (all of them without `db`). Plain JSON,
    not the Envelope model: every envelope was validated when it was appended, and
    validating again costs more than the write."""
    changes, count = [], 0
    for line in body.splitlines():
        if not line.strip():
            continue
        doc = orjson.loads(line)
        data = doc["data"]
        if db is not None and data.get("db", data.get("name")) != db:
            continue  # another database's, in a batch shared with this one's
        count += 1
        if doc.get("metadata", {}).get("kind", "domain") == "domain":
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


Positions = Callable[[str | None], AsyncIterator[str]]


def database_positions(pool: Any, db: str, bucket: str) -> Positions:
    """The batches of `bucket` holding a database's envelopes, in order, from the audit
    index (every batch is recorded there when it is marked stored): a rebuild of one
    database reads its own batches, not the whole store (reading every batch made
    `rebuild --db` of a 2,000-event database take as long as the store's history)."""
    async def positions(after: str | None) -> AsyncIterator[str]:
        async with pool.acquire() as conn:
            # Along the primary key (db, chain_position): the database's rows only.
            rows = await conn.fetch(
                "SELECT DISTINCT batch_key FROM audit_events a WHERE db = $1 AND batch_key > $2 "
                "AND NOT EXISTS (SELECT 1 FROM batch_buckets b WHERE b.batch_key = a.batch_key "
                "AND b.bucket <> $3) ORDER BY batch_key", db, after or "", bucket)
        for row in rows:
            yield row["batch_key"]
    return positions


async def _recorded_count(pool: Any, db: str) -> int:
    async with pool.acquire() as conn:
        return int(await conn.fetchval("SELECT count(*) FROM audit_events WHERE db = $1", db))


async def replay_into(store: Any, index: Any, after: str | None,
                      db: str | None, progress: Progress, *, seen: ReadKeys | None = None,
                      skip: set[str] | None = None, positions: Positions | None = None) -> str | None:
    """Apply every batch after `after` to `index`; returns the last position seen.
    `seen` collects what was applied; batches in `skip` are left out. `positions` lists
    the batches to read (by default every stored batch, from the store's listing).

    Reading (listing, PREFETCH batches at a time, parsing) runs ahead of writing, by
    up to AHEAD chunks: S3 and PostgreSQL work at the same time, and memory stays
    bounded however long the store is."""
    # Chunks in order, each read by its own task as soon as it is listed: the GETs of
    # the next chunks overlap the parsing of this one and the writing of the one before.
    queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=AHEAD)

    async def read() -> None:
        try:
            chunk: list[str] = []
            async for key in (positions or store.list_positions)(after):
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


async def rebuild(runtime: Any, db: str | None = None, out: TextIO = sys.stderr) -> dict[str, Any]:
    """`runtime`: what the rebuild uses of the process's runtime: its event store, search
    index, settings and PostgreSQL pool (for the cluster-wide lock)."""
    async with exclusive(runtime.pool, REBUILD_LOCK, "rebuild"):
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


async def _rebuild(runtime: Any, db: str | None, out: TextIO) -> dict[str, Any]:
    store = runtime.event_store
    job = runtime.search.rebuild(db)
    await job.prepare()
    total = await (_recorded_count(runtime.pool, db) if db else store.estimated_count())
    progress = Progress(total, out)
    started = time.time()
    seen = ReadKeys(position_at(started - runtime.settings.event_publisher_lookback_seconds))
    positions = database_positions(runtime.pool, db, store.bucket) if db else None
    position = await replay_into(store, job.target, None, db, progress, seen=seen,
                                 positions=positions)
    position = await replay_into(store, job.target, position, db, progress, seen=seen,
                                 positions=positions)
    await job.loaded()
    async with job.swap():
        position = await replay_into(store, job.target, position, db, progress, seen=seen,
                                     positions=positions)
    # Live writes held back by the swap went to the old model: replay the recent past
    # into the live one (late writers included, hence the lookback), leaving out what
    # the rebuild applied itself where the model can tell (see ReadKeys). This pass
    # lists the store itself from the horizon: a batch stored in the window may not be
    # in the audit index yet. For one database, the horizon: its last batch may be long
    # before it, and the index named every batch before the horizon.
    since = seen.horizon if db else min(seen.horizon, position or seen.horizon)
    await replay_into(store, job.live, since, db, progress,
                      skip=seen.keys if job.skips_applied else None)
    progress.add(0, force=True)
    if progress.tty:
        out.write("\n")
    return {"envelopes_replayed": progress.done, "rate_per_second": round(progress.rate),
            "db": db or "all", "position": position}


async def graph_documents(graph: Any, name: str) -> dict[tuple[str, str], Any]:
    """Every class and instance the graph store holds for a database, by (kind, id)."""
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
    return expected


def compare(name: str, expected: dict[tuple[str, str], Any], found: dict[tuple[str, str], Any],
            missing: str, extra: str, drift: list[dict[str, Any]]) -> None:
    for key in expected.keys() - found.keys():
        drift.append({"db": name, "kind": key[0], "id": key[1], "problem": missing})
    for key in found.keys() - expected.keys():
        drift.append({"db": name, "kind": key[0], "id": key[1], "problem": extra})
    for key in expected.keys() & found.keys():
        if found[key] != expected[key]:
            drift.append({"db": name, "kind": key[0], "id": key[1], "problem": "differs"})


async def verify(runtime: Any, db: str | None = None) -> dict[str, Any]:
    """Compare the read model with the graph store; every difference is listed."""
    graph, search = runtime.graph, runtime.search
    names = [db] if db else [d["name"] for d in await graph.list_databases()]
    drift: list[dict[str, Any]] = []
    for name in names:
        compare(name, await graph_documents(graph, name), await search.indexed_documents(name),
                "missing from index", "not in graph", drift)
    return {"databases": len(names), "drift": drift[:1000], "drift_count": len(drift)}


async def verify_history(runtime: Any, db: str | None = None) -> dict[str, Any]:
    """Compare the history folded at its latest versions (the audit index) with the graph
    store: what time travel answers for 'now' must be what the graph holds."""
    graph = runtime.graph
    names = [db] if db else [d["name"] for d in await graph.list_databases()]
    drift: list[dict[str, Any]] = []
    for name in names:
        compare(name, await graph_documents(graph, name), await runtime.audit.latest_states(name),
                "missing from history", "not in graph", drift)
    return {"databases": len(names), "drift": drift[:1000], "drift_count": len(drift)}
