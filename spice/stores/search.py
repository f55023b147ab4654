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
from typing import Any, Protocol

import asyncpg

from spice.domain.envelope import Envelope
from spice.domain.messages import EventType
from spice.domain.text import all_texts

LIVE_TABLE = "search_docs"


class SearchIndex(Protocol):
    async def apply(self, event: Envelope) -> None: ...
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


def document_of(event: Envelope) -> tuple[str, str, str | None, dict[str, Any], str] | None:
    """(kind, doc_id, class_id, body, searchable text) of a class or instance event."""
    data = event.data
    kind = EventType(event.event_type)
    if kind in (EventType.ONTOLOGY_CLASS_CREATED, EventType.ONTOLOGY_CLASS_UPDATED):
        cls = data["class"]
        texts = [cls["id"], *all_texts(cls.get("label")), *all_texts(cls.get("description"))]
        for member in cls.get("properties", []) + cls.get("relationships", []):
            texts += all_texts(member.get("label"))
        return "class", cls["id"], cls["id"], cls, " ".join(texts)
    if kind in (EventType.INSTANCE_CREATED, EventType.INSTANCE_UPDATED):
        doc_id = f"{data['class_id']}/{data['instance_id']}"
        text = " ".join([data["instance_id"], *_strings(data["data"])])
        return "instance", doc_id, data["class_id"], data["data"], text
    return None


def encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"o": offset}).encode()).decode()


def decode_cursor(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        return int(json.loads(base64.urlsafe_b64decode(cursor.encode()))["o"])
    except (ValueError, KeyError, TypeError):
        raise ValueError("cursor is not one this API returned") from None


class PostgresSearchIndex:
    def __init__(self, pool: asyncpg.Pool, table: str = LIVE_TABLE) -> None:
        self.pool = pool
        self.table = table

    def upsert_sql(self) -> str:
        return (f"INSERT INTO {self.table} (db, kind, doc_id, class_id, version, deleted, labels, body) "
                "VALUES ($1, $2, $3, $4, $5, false, $6, $7) "
                "ON CONFLICT (db, kind, doc_id) DO UPDATE SET class_id = EXCLUDED.class_id, "
                "version = EXCLUDED.version, deleted = false, labels = EXCLUDED.labels, "
                f"body = EXCLUDED.body WHERE {self.table}.version < EXCLUDED.version")

    def tombstone_sql(self) -> str:
        return (f"INSERT INTO {self.table} (db, kind, doc_id, class_id, version, deleted) "
                "VALUES ($1, $2, $3, $4, $5, true) ON CONFLICT (db, kind, doc_id) DO UPDATE "
                "SET version = EXCLUDED.version, deleted = true, labels = '', body = '{}' "
                f"WHERE {self.table}.version <= EXCLUDED.version")

    def rows(self, events: list[Envelope]) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[str]]:
        upserts, tombstones, dropped_dbs = [], [], []
        for event in events:
            version = event.sequence_number or 0
            data = event.data
            kind = EventType(event.event_type)
            doc = document_of(event)
            if doc is not None:
                kind_name, doc_id, class_id, body, text = doc
                upserts.append((data["db"], kind_name, doc_id, class_id, version, text, json.dumps(body)))
            elif kind is EventType.ONTOLOGY_CLASS_DELETED:
                tombstones.append((data["db"], "class", data["class_id"], data["class_id"], version))
            elif kind is EventType.INSTANCE_DELETED:
                tombstones.append((data["db"], "instance", f"{data['class_id']}/{data['instance_id']}",
                                   data["class_id"], version))
            elif kind is EventType.DATABASE_DELETED:
                dropped_dbs.append(data["name"])
        return upserts, tombstones, dropped_dbs

    async def apply(self, event: Envelope) -> None:
        await self.apply_many([event])

    async def apply_many(self, events: list[Envelope]) -> None:
        upserts, tombstones, dropped = self.rows(events)
        async with self.pool.acquire() as conn:
            if upserts:
                await conn.executemany(self.upsert_sql(), upserts)
            if tombstones:
                await conn.executemany(self.tombstone_sql(), tombstones)
            for db in dropped:
                await conn.execute(f"DELETE FROM {self.table} WHERE db = $1", db)

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
        more = offset + len(rows) < total
        return {"total": total, "hits": hits, "cursor": encode_cursor(offset + len(rows)) if more else None}

    async def search(self, db: str, q: str = "", *, class_id: str | None = None,
                     filters: dict[str, Any] | None = None, limit: int = 20,
                     cursor: str | None = None) -> dict[str, Any]:
        return await self._query(db, "instance", q.strip(), class_id, filters or {}, limit,
                                 decode_cursor(cursor))

    async def search_classes(self, db: str, q: str = "", limit: int = 50) -> dict[str, Any]:
        return await self._query(db, "class", q.strip(), None, {}, limit, 0)

    async def class_documents(self, db: str) -> list[dict[str, Any]]:
        """Every live class of the database as projected: the source of the label index."""
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(f"SELECT body FROM {self.table} WHERE db = $1 AND kind = 'class' "
                                    "AND NOT deleted ORDER BY doc_id", db)
        return [json.loads(r["body"]) for r in rows]

    async def ping(self) -> None:
        async with self.pool.acquire() as conn:
            await conn.fetchval(f"SELECT 1 FROM {self.table} LIMIT 1")
