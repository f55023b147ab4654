"""The SearchIndex port and its default adapter, a PostgreSQL read model.

Documents are versioned by the event's sequence number: a write applies only over
an older version, and a delete leaves a tombstone with its version, so neither a
duplicate nor a late, older event can bring back or regress a document.
Full text (tsvector, 'simple' configuration: language-neutral) plus trigram
matching (pg_trgm) for prefixes and typos.
"""
from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from typing import Any, Protocol

import asyncpg
import orjson

from spice.domain.envelope import Envelope
from spice.domain.messages import EventType
from spice.domain.structured import StructuredQuery, project
from spice.domain.text import all_texts
from spice.stores.query_postgres import Params, compile_where, order_by
from spice.stores.search_rebuild import PostgresRebuild, Rebuild

LIVE_TABLE = "search_docs"


class SearchIndex(Protocol):
    async def apply(self, event: Envelope) -> None: ...
    async def apply_many(self, events: list[Envelope]) -> None: ...
    async def search(self, db: str, q: str = "", *, class_id: str | None = None,
                     filters: dict[str, Any] | None = None, limit: int = 20,
                     cursor: str | None = None) -> dict[str, Any]: ...
    async def search_classes(self, db: str, q: str = "", limit: int = 50) -> dict[str, Any]: ...
    async def structured(self, db: str, query: StructuredQuery) -> dict[str, Any]:
        """Instances matching a structured query (spice.domain.structured), sorted, one page."""
        ...

    async def class_documents(self, db: str) -> list[dict[str, Any]]: ...
    async def indexed_documents(self, db: str) -> dict[tuple[str, str], Any]:
        """Every live document of the database, by (kind, id): what `verify` compares."""
        ...

    def rebuild(self, db: str | None) -> Rebuild:
        """A rebuild of the whole model (db None) or of one database (search_rebuild.py)."""
        ...

    async def ping(self) -> None: ...


def _strings(value: Any, out: list[str]) -> list[str]:
    """Every string inside a JSON value, appended to `out`. Exact type checks: the values
    come from a JSON parser, and isinstance against three types per value was a fifth of
    a rebuild's CPU; leaves are handled in the loop, without a call each."""
    kind = type(value)
    if kind is dict:
        items: Any = value.values()
    elif kind is list:
        items = value
    else:
        if kind is str:
            out.append(value)
        return out
    for item in items:
        kind = type(item)
        if kind is str:
            out.append(item)
        elif kind is dict or kind is list:
            _strings(item, out)
    return out


def fold_one(event_type: str, version: int, data: dict[str, Any]
             ) -> tuple[tuple[str, str, str], int, tuple[Any, ...] | None, str | None] | None:
    """(document key, version, (class_id, labels, body) or None for a delete, class_id)."""
    kind = EventType(event_type)
    if kind in (EventType.ONTOLOGY_CLASS_CREATED, EventType.ONTOLOGY_CLASS_UPDATED):
        cls = data["class"]
        texts = [cls["id"], *all_texts(cls.get("label")), *all_texts(cls.get("description"))]
        for member in cls.get("properties", []) + cls.get("relationships", []):
            texts += all_texts(member.get("label"))
        return (data["db"], "class", cls["id"]), version, (cls["id"], " ".join(texts), cls), cls["id"]
    if kind in (EventType.INSTANCE_CREATED, EventType.INSTANCE_UPDATED):
        doc_id = f"{data['class_id']}/{data['instance_id']}"
        text = " ".join(_strings(data["data"], [data["instance_id"]]))
        return (data["db"], "instance", doc_id), version, (data["class_id"], text, data["data"]), \
            data["class_id"]
    if kind is EventType.ONTOLOGY_CLASS_DELETED:
        return (data["db"], "class", data["class_id"]), version, None, data["class_id"]
    if kind is EventType.INSTANCE_DELETED:
        return ((data["db"], "instance", f"{data['class_id']}/{data['instance_id']}"), version, None,
                data["class_id"])
    return None


Folded = dict[tuple[str, str, str], tuple[int, tuple[Any, ...] | None, str | None]]


def fold_segments(changes: Iterable[tuple[str, int | None, dict[str, Any]]]
                  ) -> list[tuple[Folded, str | None]]:
    """The changes folded to each document's latest version, in segments that end where a
    database is deleted (the name it ends with, or None): the deletion applies between
    the segment before it and the one after."""
    segments: list[tuple[Folded, str | None]] = []
    folded: Folded = {}
    for event_type, sequence, data in changes:
        if event_type == EventType.DATABASE_DELETED:
            segments.append((folded, data["name"]))
            folded = {}
            continue
        change = fold_one(event_type, sequence or 0, data)
        if change is None:
            continue
        key, version, row, class_id = change
        if key not in folded or version >= folded[key][0]:
            folded[key] = (version, row, class_id)
    segments.append((folded, None))
    return segments


def document_rows(folded: Folded) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Folded documents as the rows the upsert and tombstone statements unpack:
    (upserts, tombstones)."""
    upserts = [{"db": k[0], "kind": k[1], "doc_id": k[2], "class_id": row[0], "version": version,
                "labels": row[1], "body": row[2]}
               for k, (version, row, _) in folded.items() if row is not None]
    tombstones = [{"db": k[0], "kind": k[1], "doc_id": k[2], "class_id": class_id, "version": version}
                  for k, (version, row, class_id) in folded.items() if row is None]
    return upserts, tombstones


def structured_hit(doc_id: str, class_id: str, document: dict[str, Any],
                   query: StructuredQuery) -> dict[str, Any]:
    return {"id": doc_id, "class_id": class_id, "instance_id": doc_id.split("/", 1)[1],
            "document": project(document, query.fields)}


def result_page(hits: list[dict[str, Any]], total: int, offset: int) -> dict[str, Any]:
    """One page of search results, with the cursor of the next page if there is one."""
    more = offset + len(hits) < total
    return {"total": total, "hits": hits, "cursor": encode_cursor(offset + len(hits)) if more else None}


class QueryIndex:
    """`search` and `search_classes` over an adapter's `_query`: shared by the adapters."""

    async def _query(self, db: str, kind: str, q: str, class_id: str | None,
                     filters: dict[str, Any], limit: int, offset: int) -> dict[str, Any]:
        raise NotImplementedError

    async def search(self, db: str, q: str = "", *, class_id: str | None = None,
                     filters: dict[str, Any] | None = None, limit: int = 20,
                     cursor: str | None = None) -> dict[str, Any]:
        return await self._query(db, "instance", q.strip(), class_id, filters or {}, limit,
                                 decode_cursor(cursor))

    async def search_classes(self, db: str, q: str = "", limit: int = 50) -> dict[str, Any]:
        return await self._query(db, "class", q.strip(), None, {}, limit, 0)


MAX_OFFSET = 100_000  # results a cursor may skip; deeper pages need a narrower query


def encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"o": offset}).encode()).decode()


def decode_cursor(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        offset = json.loads(base64.urlsafe_b64decode(cursor.encode()))["o"]
    except (ValueError, KeyError, TypeError, RecursionError):
        offset = None
    if not isinstance(offset, int) or isinstance(offset, bool) or not 0 <= offset <= MAX_OFFSET:
        raise ValueError("cursor is not one this API returned")
    return offset


class PostgresSearchIndex(QueryIndex):
    def __init__(self, pool: asyncpg.Pool, table: str = LIVE_TABLE, *, append_only: bool = False) -> None:
        """`append_only`: a rebuild's staging table without a key, where every write is a
        new row and the reader picks each document's latest version."""
        self.pool = pool
        self.table = table
        self.append_only = append_only

    # A batch is one JSON parameter that PostgreSQL unpacks (json_to_recordset): a round
    # trip per batch, not per document, and one orjson call instead of asyncpg encoding
    # seven arrays element by element (half of a rebuild's CPU went there). Documents
    # are folded first (see apply_changes), so no row is hit twice in one statement.
    def upsert_sql(self) -> str:
        insert = (f"INSERT INTO {self.table} AS t (db, kind, doc_id, class_id, version, deleted, "
                  "labels, body) SELECT db, kind, doc_id, class_id, version, false, labels, body FROM "
                  "json_to_recordset($1::json) AS u(db text, kind text, doc_id text, class_id text, "
                  "version bigint, labels text, body jsonb)")
        if self.append_only:
            return insert
        return (insert + " ON CONFLICT (db, kind, doc_id) DO UPDATE SET class_id = EXCLUDED.class_id, "
                "version = EXCLUDED.version, deleted = false, labels = EXCLUDED.labels, "
                "body = EXCLUDED.body WHERE t.version < EXCLUDED.version")

    def tombstone_sql(self) -> str:
        insert = (f"INSERT INTO {self.table} AS t (db, kind, doc_id, class_id, version, deleted, "
                  "labels, body) SELECT db, kind, doc_id, class_id, version, true, '', '{}' FROM "
                  "json_to_recordset($1::json) AS u(db text, kind text, doc_id text, class_id text, "
                  "version bigint)")
        if self.append_only:
            return insert
        return (insert + " ON CONFLICT (db, kind, doc_id) DO UPDATE SET version = EXCLUDED.version, "
                "deleted = true, labels = '', body = '{}' WHERE t.version <= EXCLUDED.version")

    async def apply(self, event: Envelope) -> None:
        await self.apply_many([event])

    async def apply_many(self, events: list[Envelope]) -> None:
        await self.apply_changes((e.event_type, e.sequence_number, e.data) for e in events)

    async def apply_changes(self, changes: Iterable[tuple[str, int | None, dict[str, Any]]]) -> None:
        """(event type, sequence number, data) of domain events, in order. Each document's
        latest version wins, in the batch as in the table; a database deletion applies
        at its place in the order."""
        async with self.pool.acquire() as conn:
            for folded, dropped in fold_segments(changes):
                await self._write(conn, folded)
                if dropped is not None:
                    await conn.execute(f"DELETE FROM {self.table} WHERE db = $1", dropped)

    async def _write(self, conn: Any, folded: Folded) -> None:
        upserts, tombstones = document_rows(folded)
        if upserts:
            await conn.execute(self.upsert_sql(), orjson.dumps(upserts).decode())
        if tombstones:
            await conn.execute(self.tombstone_sql(), orjson.dumps(tombstones).decode())

    async def _query(self, db: str, kind: str, q: str, class_id: str | None,
                     filters: dict[str, Any], limit: int, offset: int) -> dict[str, Any]:
        sql = (
            "SELECT doc_id, class_id, body, "
            "  (CASE WHEN $2 = '' THEN 0 ELSE ts_rank(tsv, websearch_to_tsquery('simple', $2)) "
            "   + similarity(labels, $2) END) AS score, count(*) OVER () AS total "
            f"FROM {self.table} WHERE db = $1 AND kind = $3 AND NOT deleted "
            "AND ($2 = '' OR tsv @@ websearch_to_tsquery('simple', $2) OR labels % $2 "
            "     OR labels ILIKE '%' || $2 || '%') "
            "AND ($4::text IS NULL OR class_id = $4) AND body @> $5::jsonb "
            "ORDER BY score DESC, doc_id LIMIT $6 OFFSET $7")
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(sql, db, q, kind, class_id, json.dumps(filters), limit, offset)
        total = rows[0]["total"] if rows else 0
        hits = [{"id": r["doc_id"], "class_id": r["class_id"], "score": round(float(r["score"]), 4),
                 "document": json.loads(r["body"])} for r in rows]
        return result_page(hits, total, offset)

    async def structured(self, db: str, query: StructuredQuery) -> dict[str, Any]:
        offset = decode_cursor(query.cursor)
        params = Params(4)
        condition = compile_where(query.where, "body", params)
        order = order_by([(k.path, k.kind, k.descending) for k in query.sort], "body", params)
        order.append('doc_id COLLATE "C"')  # the tie-break: pages never overlap
        sql = (f"SELECT doc_id, class_id, body, count(*) OVER () AS total FROM {self.table} "
               "WHERE db = $1 AND kind = 'instance' AND NOT deleted AND class_id = ANY($2::text[]) "
               f"AND {condition} ORDER BY {', '.join(order)} "
               "LIMIT $3 OFFSET $4")
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(sql, db, list(query.classes), query.limit, offset, *params.values)
        hits = [structured_hit(r["doc_id"], r["class_id"], json.loads(r["body"]), query) for r in rows]
        return result_page(hits, rows[0]["total"] if rows else 0, offset)

    async def class_documents(self, db: str) -> list[dict[str, Any]]:
        """Every live class of the database as projected: the source of the label index."""
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(f"SELECT body FROM {self.table} WHERE db = $1 AND kind = 'class' "
                                    "AND NOT deleted ORDER BY doc_id", db)
        return [json.loads(r["body"]) for r in rows]

    async def indexed_documents(self, db: str) -> dict[tuple[str, str], Any]:
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(f"SELECT kind, doc_id, body FROM {self.table} "
                                    "WHERE db = $1 AND NOT deleted", db)
        return {(r["kind"], r["doc_id"]): json.loads(r["body"]) for r in rows}

    def rebuild(self, db: str | None) -> PostgresRebuild:
        return PostgresRebuild(self.pool, self.table, db)

    async def ping(self) -> None:
        async with self.pool.acquire() as conn:
            await conn.fetchval(f"SELECT 1 FROM {self.table} LIMIT 1")
