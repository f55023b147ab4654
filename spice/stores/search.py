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
from spice.domain.text import all_texts

LIVE_TABLE = "search_docs"


class SearchIndex(Protocol):
    async def apply(self, event: Envelope) -> None: ...
    async def apply_many(self, events: list[Envelope]) -> None: ...
    async def search(self, db: str, q: str = "", *, class_id: str | None = None,
                     filters: dict[str, Any] | None = None, limit: int = 20,
                     cursor: str | None = None) -> dict[str, Any]: ...
    async def search_classes(self, db: str, q: str = "", limit: int = 50) -> dict[str, Any]: ...
    async def class_documents(self, db: str) -> list[dict[str, Any]]: ...
    async def ping(self) -> None: ...


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def _json(value: Any) -> str:
    # The column is jsonb (parsed again by PostgreSQL): formatting does not matter,
    # and orjson is several times faster than json.dumps on the rebuild's hot path.
    return orjson.dumps(value).decode()


def fold_one(event_type: str, version: int, data: dict[str, Any]
             ) -> tuple[tuple[str, str, str], int, tuple[Any, ...] | None, str | None] | None:
    """(document key, version, (class_id, labels, body json) or None for a delete, class_id)."""
    kind = EventType(event_type)
    if kind in (EventType.ONTOLOGY_CLASS_CREATED, EventType.ONTOLOGY_CLASS_UPDATED):
        cls = data["class"]
        texts = [cls["id"], *all_texts(cls.get("label")), *all_texts(cls.get("description"))]
        for member in cls.get("properties", []) + cls.get("relationships", []):
            texts += all_texts(member.get("label"))
        return (data["db"], "class", cls["id"]), version, (cls["id"], " ".join(texts),
                                                            _json(cls)), cls["id"]
    if kind in (EventType.INSTANCE_CREATED, EventType.INSTANCE_UPDATED):
        doc_id = f"{data['class_id']}/{data['instance_id']}"
        text = " ".join([data["instance_id"], *_strings(data["data"])])
        return (data["db"], "instance", doc_id), version, (data["class_id"], text,
                                                           _json(data["data"])), data["class_id"]
    if kind is EventType.ONTOLOGY_CLASS_DELETED:
        return (data["db"], "class", data["class_id"]), version, None, data["class_id"]
    if kind is EventType.INSTANCE_DELETED:
        return ((data["db"], "instance", f"{data['class_id']}/{data['instance_id']}"), version, None,
                data["class_id"])
    return None


def _columns(rows: list[tuple[Any, ...]]) -> list[list[Any]]:
    return [list(column) for column in zip(*rows, strict=True)]


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


def encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"o": offset}).encode()).decode()


def decode_cursor(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        return int(json.loads(base64.urlsafe_b64decode(cursor.encode()))["o"])
    except (ValueError, KeyError, TypeError):
        raise ValueError("cursor is not one this API returned") from None


class PostgresSearchIndex(QueryIndex):
    def __init__(self, pool: asyncpg.Pool, table: str = LIVE_TABLE) -> None:
        self.pool = pool
        self.table = table

    def upsert_sql(self) -> str:
        # One statement for a whole batch (arrays unnested): a round trip per batch, not
        # per document. Documents are folded first (see fold), so no row is hit twice.
        return (f"INSERT INTO {self.table} AS t (db, kind, doc_id, class_id, version, deleted, labels, "
                "body) SELECT db, kind, doc_id, class_id, version, false, labels, body::jsonb FROM "
                "unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[], "
                "$7::text[]) AS u(db, kind, doc_id, class_id, version, labels, body) "
                "ON CONFLICT (db, kind, doc_id) DO UPDATE SET class_id = EXCLUDED.class_id, "
                "version = EXCLUDED.version, deleted = false, labels = EXCLUDED.labels, "
                "body = EXCLUDED.body WHERE t.version < EXCLUDED.version")

    def tombstone_sql(self) -> str:
        return (f"INSERT INTO {self.table} AS t (db, kind, doc_id, class_id, version, deleted) "
                "SELECT db, kind, doc_id, class_id, version, true FROM unnest($1::text[], $2::text[], "
                "$3::text[], $4::text[], $5::bigint[]) AS u(db, kind, doc_id, class_id, version) "
                "ON CONFLICT (db, kind, doc_id) DO UPDATE SET version = EXCLUDED.version, "
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
            folded: dict[tuple[str, str, str], tuple[int, tuple[Any, ...] | None, str | None]] = {}
            for event_type, sequence, data in changes:
                if event_type == EventType.DATABASE_DELETED:
                    await self._write(conn, folded)
                    folded = {}
                    await conn.execute(f"DELETE FROM {self.table} WHERE db = $1", data["name"])
                    continue
                change = fold_one(event_type, sequence or 0, data)
                if change is None:
                    continue
                key, version, row, class_id = change
                if key not in folded or version >= folded[key][0]:
                    folded[key] = (version, row, class_id)
            await self._write(conn, folded)

    async def _write(self, conn: Any, folded: dict[tuple[str, str, str],
                     tuple[int, tuple[Any, ...] | None, str | None]]) -> None:
        upserts = [(key, version, row) for key, (version, row, _) in folded.items() if row is not None]
        tombstones = [(key, version, class_id) for key, (version, row, class_id) in folded.items()
                      if row is None]
        if upserts:
            await conn.execute(self.upsert_sql(), *_columns(
                [(k[0], k[1], k[2], row[0], v, row[1], row[2]) for k, v, row in upserts]))
        if tombstones:
            await conn.execute(self.tombstone_sql(), *_columns(
                [(k[0], k[1], k[2], class_id, v) for k, v, class_id in tombstones]))

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

    async def class_documents(self, db: str) -> list[dict[str, Any]]:
        """Every live class of the database as projected: the source of the label index."""
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(f"SELECT body FROM {self.table} WHERE db = $1 AND kind = 'class' "
                                    "AND NOT deleted ORDER BY doc_id", db)
        return [json.loads(r["body"]) for r in rows]

    async def ping(self) -> None:
        async with self.pool.acquire() as conn:
            await conn.fetchval(f"SELECT 1 FROM {self.table} LIMIT 1")
