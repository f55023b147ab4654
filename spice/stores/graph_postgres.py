"""The default graph store: jsonb documents in PostgreSQL, validated by spice/domain."""
from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import orjson

from spice.domain.envelope import Envelope
from spice.domain.graph_query import Direction, Route
from spice.domain.messages import EventType
from spice.domain.ontology import OntologyClass
from spice.domain.query import Where
from spice.domain.schema import Schema
from spice.stores.coalesce import Coalescer
from spice.stores.graph import Node, Step
from spice.stores.query_postgres import Params, compile_where

InstanceKey = tuple[str, str, str]
ROUTES = "unnest($4::text[], $5::text[], $6::text[], $7::int[]) AS r(predicate, src, dst, rank)"
# One hop forward: each frontier instance's values of each route's predicate (a string or
# a list of them), each resolved to the first class in rank order holding that id. The
# target lookup is a LATERAL subquery the planner cannot flatten (OFFSET 0): an index
# probe per value. Flattened, a frontier of a few hundred made it hash-join a sequential
# scan of every instance (590 ms instead of milliseconds on 100,000 instances).
FORWARD_SQL = (
    "SELECT x.* FROM (SELECT DISTINCT ON (s.class_id, s.instance_id, r.predicate, e.ord) "
    "s.class_id AS s_class, s.instance_id AS s_id, r.predicate, t.class_id AS t_class, "
    "t.instance_id AS t_id, t.data FROM unnest($2::text[], $3::text[]) AS f(class_id, instance_id) "
    "JOIN graph_instances s ON s.db = $1 AND s.class_id = f.class_id AND s.instance_id = f.instance_id "
    f"JOIN {ROUTES} ON r.src = s.class_id "
    "CROSS JOIN LATERAL jsonb_array_elements_text(CASE jsonb_typeof(s.data -> r.predicate) "
    "WHEN 'array' THEN s.data -> r.predicate WHEN 'string' THEN jsonb_build_array(s.data -> r.predicate) "
    "ELSE '[]'::jsonb END) WITH ORDINALITY AS e(value, ord) "
    "CROSS JOIN LATERAL (SELECT t.class_id, t.instance_id, t.data FROM graph_instances t "
    "WHERE t.db = $1 AND t.class_id = r.dst AND t.instance_id = e.value OFFSET 0) t "
    "ORDER BY s.class_id, s.instance_id, r.predicate, e.ord, r.rank) x "
    "WHERE x.t_class = ANY($8::text[]) AND {where} "
    "ORDER BY x.s_class, x.s_id, x.predicate, x.t_class, x.t_id LIMIT $9")
# One hop in reverse: the instances holding a frontier instance's id under a route's
# predicate (the GIN index of migration 11 answers `@>`).
REVERSE_SQL = (
    "SELECT m.class_id AS s_class, m.instance_id AS s_id, r.predicate, f.class_id AS t_class, "
    "f.instance_id AS t_id, m.data FROM unnest($2::text[], $3::text[]) AS f(class_id, instance_id) "
    f"JOIN {ROUTES} ON r.dst = f.class_id "
    "JOIN graph_instances m ON m.db = $1 AND m.class_id = r.src "
    "AND (m.data @> jsonb_build_object(r.predicate, f.instance_id) "
    "OR m.data @> jsonb_build_object(r.predicate, jsonb_build_array(f.instance_id))) "
    "WHERE m.class_id = ANY($8::text[]) AND {where} "
    "ORDER BY m.class_id, m.instance_id, r.predicate, f.class_id, f.instance_id LIMIT $9")
InstanceRow = tuple[str, str, str, str, int]
UPSERT_INSTANCES_SQL = (
    "INSERT INTO graph_instances SELECT * FROM unnest($1::text[], $2::text[], $3::text[], "
    "$4::jsonb[], $5::bigint[]) ON CONFLICT (db, class_id, instance_id) DO UPDATE "
    "SET data = EXCLUDED.data, version = EXCLUDED.version "
    "WHERE graph_instances.version < EXCLUDED.version")
UPSERT_INSTANCE_SQL = (
    "INSERT INTO graph_instances VALUES ($1, $2, $3, $4, $5) "
    "ON CONFLICT (db, class_id, instance_id) DO UPDATE "
    "SET data = EXCLUDED.data, version = EXCLUDED.version "
    "WHERE graph_instances.version < EXCLUDED.version")


def dumps(value: Any) -> str:
    """JSON text for a jsonb parameter (orjson: the C json encoder's wrapper was 2-3 % of
    a command worker's CPU)."""
    return orjson.dumps(value).decode()


class PostgresGraphStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        # db -> (fingerprint, schema): parsing every class for every instance command
        # would dominate the worker; the fingerprint changes with any class write.
        self._schemas: dict[str, tuple[tuple[int, int, int], Schema]] = {}
        # The instance path's statements, shared by the commands in flight at once
        # (spice/stores/coalesce.py): reads by key, writes one row each per statement.
        self._instance_reads: Coalescer[InstanceKey, str | None] = Coalescer(
            self._read_instances, self._read_instance, key=lambda k: k, share=True)
        self._instance_writes: Coalescer[InstanceRow, None] = Coalescer(
            self._write_instances, self._write_instance, key=lambda row: row[:3])
        self._fingerprints: Coalescer[str, Any] = Coalescer(
            self._fingerprint_many, self._fingerprint, key=lambda db: db, share=True)

    async def apply(self, event: Envelope) -> None:
        kind = EventType(event.event_type)
        data, version = event.data, event.sequence_number or 0
        if kind in (EventType.INSTANCE_CREATED, EventType.INSTANCE_UPDATED):
            await self._instance_writes((data["db"], data["class_id"], data["instance_id"],
                                         dumps(data["data"]), version))
            return
        # One statement each (one round trip), except a database's deletion.
        async with self.pool.acquire() as conn:
            if kind is EventType.DATABASE_CREATED:
                await conn.execute(
                    "INSERT INTO graph_databases VALUES ($1, $2, $3) ON CONFLICT (name) DO UPDATE "
                    "SET doc = EXCLUDED.doc, version = EXCLUDED.version "
                    "WHERE graph_databases.version < EXCLUDED.version",
                    data["name"], dumps(data), version)
            elif kind is EventType.DATABASE_DELETED:
                async with conn.transaction():
                    deleted = await conn.execute(
                        "DELETE FROM graph_databases WHERE name = $1 AND version <= $2",
                        data["name"], version)
                    if deleted.endswith(" 1"):
                        await conn.execute("DELETE FROM graph_classes WHERE db = $1", data["name"])
                        await conn.execute("DELETE FROM graph_instances WHERE db = $1", data["name"])
            elif kind in (EventType.ONTOLOGY_CLASS_CREATED, EventType.ONTOLOGY_CLASS_UPDATED):
                await self._upsert_class(conn, data["db"], data["class"], version)
            elif kind is EventType.ONTOLOGY_CLASS_DELETED:
                await conn.execute(
                    "DELETE FROM graph_classes WHERE db = $1 AND class_id = $2 AND version <= $3",
                    data["db"], data["class_id"], version)
            elif kind is EventType.INSTANCE_DELETED:
                await conn.execute(
                    "DELETE FROM graph_instances WHERE db = $1 AND class_id = $2 "
                    "AND instance_id = $3 AND version <= $4",
                    data["db"], data["class_id"], data["instance_id"], version)
            # COMMAND_FAILED changes nothing in the graph.

    async def apply_many(self, events: list[Envelope]) -> None:
        """Bulk instance creation in one statement (the bulk path's hot loop)."""
        rows = [(e.data["db"], e.data["class_id"], e.data["instance_id"], dumps(e.data["data"]),
                 e.sequence_number or 0) for e in events
                if e.event_type == EventType.INSTANCE_CREATED]
        async with self.pool.acquire() as conn:
            await conn.executemany(
                "INSERT INTO graph_instances VALUES ($1, $2, $3, $4, $5) "
                "ON CONFLICT (db, class_id, instance_id) DO UPDATE "
                "SET data = EXCLUDED.data, version = EXCLUDED.version "
                "WHERE graph_instances.version < EXCLUDED.version", rows)
        for event in events:
            if event.event_type != EventType.INSTANCE_CREATED:
                await self.apply(event)

    async def _write_instances(self, rows: list[InstanceRow]) -> list[None]:
        async with self.pool.acquire() as conn:
            await conn.execute(UPSERT_INSTANCES_SQL, *(list(c) for c in zip(*rows, strict=True)))
        return [None] * len(rows)

    async def _write_instance(self, row: InstanceRow) -> None:
        async with self.pool.acquire() as conn:
            await conn.execute(UPSERT_INSTANCE_SQL, *row)

    async def _upsert_class(self, conn: asyncpg.Connection, db: str, cls: dict[str, Any],
                            version: int) -> None:
        await conn.execute(
            "INSERT INTO graph_classes VALUES ($1, $2, $3, $4) ON CONFLICT (db, class_id) DO UPDATE "
            "SET doc = EXCLUDED.doc, version = EXCLUDED.version "
            "WHERE graph_classes.version < EXCLUDED.version",
            db, cls["id"], dumps(cls), version)

    async def database_exists(self, db: str) -> bool:
        async with self.pool.acquire() as conn:
            return bool(await conn.fetchval("SELECT 1 FROM graph_databases WHERE name = $1", db))

    async def list_databases(self) -> list[dict[str, Any]]:
        async with self.pool.acquire() as conn:
            rows = await conn.fetch("SELECT doc FROM graph_databases ORDER BY name")
        return [orjson.loads(r["doc"]) for r in rows]

    async def list_classes(self, db: str) -> list[dict[str, Any]]:
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT doc FROM graph_classes WHERE db = $1 ORDER BY class_id", db)
        return [orjson.loads(r["doc"]) for r in rows]

    async def schema(self, db: str) -> Schema:
        return (await self.schema_if_exists(db)) or Schema({})

    async def schema_if_exists(self, db: str) -> Schema | None:
        """The database's schema, or None if the database does not exist: one round trip
        when the cached schema is still current."""
        row = await self._fingerprints(db)
        if not row["db"]:
            return None
        fingerprint = (row["n"], row["v"], row["h"])
        cached = self._schemas.get(db)
        if cached is not None and cached[0] == fingerprint:
            return cached[1]
        classes = [OntologyClass.model_validate(doc) for doc in await self.list_classes(db)]
        schema = Schema({c.id: c for c in classes})
        self._schemas[db] = (fingerprint, schema)
        return schema

    async def _fingerprint(self, db: str) -> Any:
        async with self.pool.acquire() as conn:
            return await conn.fetchrow(
                "SELECT EXISTS (SELECT 1 FROM graph_databases WHERE name = $1) AS db, "
                "count(*) AS n, coalesce(sum(version), 0) AS v, "
                "coalesce(sum(hashtext(doc::text)), 0) AS h FROM graph_classes WHERE db = $1", db)

    async def _fingerprint_many(self, dbs: list[str]) -> list[Any]:
        return list(await asyncio.gather(*[self._fingerprint(db) for db in dbs]))

    async def get_class(self, db: str, class_id: str) -> dict[str, Any] | None:
        async with self.pool.acquire() as conn:
            doc = await conn.fetchval(
                "SELECT doc FROM graph_classes WHERE db = $1 AND class_id = $2", db, class_id)
        return orjson.loads(doc) if doc else None

    async def class_version(self, db: str, class_id: str) -> tuple[dict[str, Any], int] | None:
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow(
                "SELECT doc, version FROM graph_classes WHERE db = $1 AND class_id = $2", db, class_id)
        return (orjson.loads(row["doc"]), row["version"]) if row else None

    async def instance_version(self, db: str, class_id: str, instance_id: str
                               ) -> tuple[dict[str, Any], int] | None:
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow(
                "SELECT data, version FROM graph_instances WHERE db = $1 AND class_id = $2 "
                "AND instance_id = $3", db, class_id, instance_id)
        return (orjson.loads(row["data"]), row["version"]) if row else None

    async def instance_counts(self, db: str) -> dict[str, int]:
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT class_id, count(*) AS n FROM graph_instances WHERE db = $1 GROUP BY class_id", db)
        return {r["class_id"]: r["n"] for r in rows}

    async def get_instance(self, db: str, class_id: str, instance_id: str) -> dict[str, Any] | None:
        data = await self._instance_reads((db, class_id, instance_id))
        return orjson.loads(data) if data else None

    async def _read_instance(self, key: InstanceKey) -> str | None:
        async with self.pool.acquire() as conn:
            return await conn.fetchval(  # type: ignore[no-any-return]
                "SELECT data FROM graph_instances WHERE db = $1 AND class_id = $2 AND instance_id = $3",
                *key)

    async def _read_instances(self, keys: list[InstanceKey]) -> list[str | None]:
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT u.ord, g.data FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY "
                "AS u(db, class_id, instance_id, ord) JOIN graph_instances g ON g.db = u.db "
                "AND g.class_id = u.class_id AND g.instance_id = u.instance_id",
                *(list(c) for c in zip(*keys, strict=True)))
        found = {r["ord"]: r["data"] for r in rows}
        return [found.get(i + 1) for i in range(len(keys))]

    async def existing_instances(self, db: str, class_id: str, ids: list[str]) -> set[str]:
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT instance_id FROM graph_instances WHERE db = $1 AND class_id = $2 "
                "AND instance_id = ANY($3)", db, class_id, ids)
        return {r["instance_id"] for r in rows}

    async def list_instances(self, db: str, class_id: str, limit: int = 100,
                             after: str | None = None) -> list[dict[str, Any]]:
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT instance_id, data FROM graph_instances WHERE db = $1 AND class_id = $2 "
                "AND instance_id > $3 ORDER BY instance_id LIMIT $4", db, class_id, after or "", limit)
        return [{"instance_id": r["instance_id"], "class_id": class_id, "data": orjson.loads(r["data"])}
                for r in rows]

    async def ping(self) -> None:
        async with self.pool.acquire() as conn:
            await conn.fetchval("SELECT 1 FROM graph_databases LIMIT 1")

    # ---- graph queries (spice/stores/graph_query.py runs them hop by hop) ------------

    async def query_nodes(self, db: str, classes: list[str], ids: list[str] | None,
                          where: Where | None, limit: int, timeout: float) -> list[Node]:
        params = Params(4)
        condition = compile_where(where, "data", params)
        sql = ("SELECT class_id, instance_id, data FROM graph_instances WHERE db = $1 "
               "AND class_id = ANY($2::text[]) AND ($3::text[] IS NULL OR instance_id = ANY($3)) "
               f"AND {condition} ORDER BY class_id, instance_id LIMIT $4")
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(sql, db, classes, ids, limit, *params.values, timeout=timeout)
        return [(r["class_id"], r["instance_id"], orjson.loads(r["data"])) for r in rows]

    async def follow(self, db: str, frontier: list[Node], direction: Direction, routes: list[Route],
                     classes: list[str], where: Where | None, limit: int, timeout: float) -> list[Step]:
        params = Params(9)
        condition = compile_where(where, "x.data" if direction == "forward" else "m.data", params)
        sql = (FORWARD_SQL if direction == "forward" else REVERSE_SQL).replace("{where}", condition)
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                sql, db, [n[0] for n in frontier], [n[1] for n in frontier],
                [r.predicate for r in routes], [r.source for r in routes],
                [r.target for r in routes], [r.rank for r in routes], classes, limit,
                *params.values, timeout=timeout)
        steps = []
        for r in rows:
            data = orjson.loads(r["data"])
            source, target = (r["s_class"], r["s_id"]), (r["t_class"], r["t_id"])
            reached = (*target, data) if direction == "forward" else (*source, data)
            steps.append((source, r["predicate"], target, reached))
        return steps
