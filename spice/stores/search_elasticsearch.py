"""The SearchIndex port on Elasticsearch (SEARCH_BACKEND=elasticsearch, ELASTICSEARCH_URL).

Two indexes per database, one for classes and one for instances, each reached by an
alias (`spice-classes-<db>`, `spice-instances-<db>`) over a concrete index, so a rebuild
can fill a fresh index and swap the alias in one atomic call.

Versions: every write carries the event's sequence number as an external version.
An upsert applies only over a lower version (`external`); a delete is a tombstone
document (`deleted: true`) written with `external_gte`, not a real delete, because
Elasticsearch forgets deleted versions after `index.gc_deletes` (60 s) and a late,
older create could then bring the document back. Searches filter tombstones out.
Version conflicts in a bulk answer are the rule working (an older or repeated
event), not errors.

Labels are indexed three ways: the standard analyzer (words in any script), `cjk`
bigrams (Korean, Japanese, Chinese have no spaces to split on), and edge n-grams
for prefixes; queries are fuzzy. Property filters use a `flattened` copy of the
document, so instances of different classes never fight over a field's type.
Live writes refresh the shards they touched before they return (`refresh=true`): once a
PROJECTED status is recorded the write is searchable, which is what `wait=projected`
promises. `wait_for` would keep that promise too, but parks every bulk until the next
1 s refresh, which capped the live projection near one batch a second (355 events/s
against 1,535 with `true`, bench.backends); the projection batches, so the extra
segments are few and merged away.
"""
from __future__ import annotations

import hashlib
import json
import re
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

import orjson

from spice.domain.structured import StructuredQuery
from spice.stores.errors import StoreUnavailable
from spice.stores.query_elasticsearch import (
    DYNAMIC_TEMPLATES,
    TYPED_MAPPINGS,
    compile_where,
    sort_clause,
    typed_fields,
)
from spice.stores.search import (
    MAX_OFFSET,
    QueryIndex,
    decode_cursor,
    fold_segments,
    result_page,
    structured_hit,
)

PREFIX = "spice"
KINDS = ("class", "instance")
# deep pages of structured queries (MAX_OFFSET), and typed copies of many properties
INDEX_SETTINGS: dict[str, Any] = {"max_result_window": MAX_OFFSET + 1000,
                                        "mapping.total_fields.limit": 20_000}
SETTINGS = {
    "index": INDEX_SETTINGS,
    "analysis": {
        "filter": {"edge": {"type": "edge_ngram", "min_gram": 1, "max_gram": 20}},
        "analyzer": {"prefix": {"tokenizer": "standard", "filter": ["lowercase", "edge"]}},
    },
}
MAPPINGS = {
    "dynamic": False,
    "dynamic_templates": DYNAMIC_TEMPLATES,
    "properties": {
        **TYPED_MAPPINGS,
        "doc_id": {"type": "keyword"},
        "class_id": {"type": "keyword"},
        "version": {"type": "long"},
        "deleted": {"type": "boolean"},
        "labels": {"type": "text", "analyzer": "standard", "fields": {
            "cjk": {"type": "text", "analyzer": "cjk"},
            "prefix": {"type": "text", "analyzer": "prefix", "search_analyzer": "standard"}}},
        "body": {"type": "flattened"},
        "document": {"type": "object", "enabled": False},
    },
}
# how long a search waits for a new index's primary shard to start (_search)
SHARD_WAIT = "10s"
LABEL_FIELDS = ["labels^2", "labels.cjk", "labels.prefix"]


def alias_name(db: str, kind: str) -> str:
    """Index names must be lowercase and plain; the digest keeps `Sales` and `sales` apart."""
    slug = re.sub(r"[^a-z0-9_-]", "_", db.lower())[:100]
    digest = hashlib.sha1(db.encode()).hexdigest()[:8]
    plural = {"class": "classes", "instance": "instances"}[kind]
    return f"{PREFIX}-{plural}-{slug}-{digest}"


def filter_terms(filters: dict[str, Any], path: str = "body") -> list[dict[str, Any]]:
    """Property filters as term queries on the flattened copy (values are keywords there)."""
    terms: list[dict[str, Any]] = []
    for key, value in filters.items():
        field = f"{path}.{key}"
        if isinstance(value, dict):
            terms += filter_terms(value, field)
        elif isinstance(value, list):
            terms += [{"term": {field: _keyword(v)}} for v in value]
        else:
            terms.append({"term": {field: _keyword(value)}})
    return terms


def _keyword(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else json.dumps(value)


def bulk_body(folded: dict[tuple[str, str, str], tuple[int, Any, str | None]],
              index_of: Any = alias_name) -> list[bytes]:
    """The bulk request's lines, encoded here with orjson: the client's standard-library
    encoder was a fifth of a rebuild's CPU in this process."""
    return [orjson.dumps(op) for op in bulk_operations(folded, index_of)]


def bulk_operations(folded: dict[tuple[str, str, str], tuple[int, Any, str | None]],
                    index_of: Any = alias_name) -> list[dict[str, Any]]:
    ops: list[dict[str, Any]] = []
    for (db, kind, doc_id), (version, row, class_id) in folded.items():
        if row is None:
            ops.append({"index": {"_index": index_of(db, kind), "_id": doc_id, "version": version,
                                  "version_type": "external_gte"}})
            ops.append({"doc_id": doc_id, "class_id": class_id, "version": version, "deleted": True,
                        "labels": "", "body": {}, "document": {}})
        else:
            body = row[2]
            ops.append({"index": {"_index": index_of(db, kind), "_id": doc_id, "version": version,
                                  "version_type": "external"}})
            doc = {"doc_id": doc_id, "class_id": row[0], "version": version, "deleted": False,
                   "labels": row[1], "body": body, "document": body}
            if kind == "instance":
                doc["typed"], doc["present"] = typed_fields(body)
            ops.append(doc)
    return ops


class ElasticsearchSearchIndex(QueryIndex):
    """`build`: a rebuild's target. Writes go to fresh concrete indexes (`<alias>-<build>`),
    not to the aliases, until `publish()` swaps every alias it filled in one call."""

    def __init__(self, url: str, client: Any = None, build: str | None = None,
                 basic_auth: tuple[str, str] | None = None) -> None:
        if client is None:
            try:
                from elasticsearch import AsyncElasticsearch
            except ImportError:  # an optional backend: its client is an extra
                raise RuntimeError("SEARCH_BACKEND=elasticsearch needs the elasticsearch extra: "
                                   "pip install 'spice-harvester-faust[elasticsearch]'") from None
            client = AsyncElasticsearch(hosts=[url], request_timeout=30, basic_auth=basic_auth)
        self.es = client
        self.build = build
        self._ready: set[str] = set()

    @classmethod
    def from_settings(cls, settings: Any) -> ElasticsearchSearchIndex:
        auth = (settings.elasticsearch_username, settings.elasticsearch_password.get_secret_value()) \
            if settings.elasticsearch_password.get_secret_value() else None
        return cls(settings.elasticsearch_url, basic_auth=auth)

    def index_of(self, db: str, kind: str) -> str:
        alias = alias_name(db, kind)
        return f"{alias}-{self.build}" if self.build else alias

    def rebuild(self, db: str | None) -> ElasticsearchRebuild:
        return ElasticsearchRebuild(self, db)

    async def indexed_documents(self, db: str) -> dict[tuple[str, str], Any]:
        """Every live document, paged in doc_id order with search_after (no 10,000 cap)."""
        documents: dict[tuple[str, str], Any] = {}
        for kind in KINDS:
            alias = alias_name(db, kind)
            after: list[Any] | None = None
            try:
                if not await self.es.indices.exists_alias(name=alias):
                    continue
                while True:
                    answer = await self._search(
                        index=alias, query={"term": {"deleted": False}}, sort=[{"doc_id": "asc"}],
                        size=1000, search_after=after, source=["doc_id", "document"])
                    rows = answer["hits"]["hits"]
                    for row in rows:
                        documents[(kind, row["_source"]["doc_id"])] = row["_source"]["document"]
                    if len(rows) < 1000:
                        break
                    after = rows[-1]["sort"]
            except Exception as error:
                raise self._unavailable(error) from error
        return documents

    async def publish(self) -> list[str]:
        """Point each alias this build filled at its new index, all in one atomic call,
        and drop the indexes they pointed at before."""
        actions: list[dict[str, Any]] = []
        old: list[str] = []
        try:
            for alias in sorted(self._ready):
                if await self.es.indices.exists_alias(name=alias):
                    for index in (await self.es.indices.get_alias(name=alias)).keys():
                        actions.append({"remove": {"index": index, "alias": alias}})
                        old.append(index)
                actions.append({"add": {"index": f"{alias}-{self.build}", "alias": alias,
                                        "is_write_index": True}})
            if actions:
                built = ",".join(f"{alias}-{self.build}" for alias in sorted(self._ready))
                await self.es.indices.put_settings(index=built,
                                                   settings={"index": {"refresh_interval": None}})
                await self.es.indices.refresh(index=built)
                await self.es.indices.update_aliases(actions=actions)
            if old:
                await self.es.indices.delete(index=",".join(old), ignore_unavailable=True)
        except Exception as error:
            raise self._unavailable(error) from error
        return sorted(self._ready)

    async def close(self) -> None:
        await self.es.close()

    # ---- writes ---------------------------------------------------------------

    async def ensure_alias(self, alias: str) -> None:
        if alias in self._ready:
            return
        try:
            if self.build:
                # No periodic refresh while a rebuild fills it: nobody reads it before
                # publish(), which refreshes once and turns the interval back on.
                await self.es.indices.create(
                    index=f"{alias}-{self.build}", mappings=MAPPINGS,
                    settings={**SETTINGS, "index": {**INDEX_SETTINGS, "refresh_interval": "-1"}})
            elif not await self.es.indices.exists_alias(name=alias):
                await self.es.indices.create(index=f"{alias}-000001", settings=SETTINGS,
                                             mappings=MAPPINGS, aliases={alias: {"is_write_index": True}})
            else:  # an index from before typed copies: add their mapping (documents
                # written before it get theirs from a rebuild, docs/operations.md)
                await self.es.indices.put_mapping(index=alias, dynamic_templates=DYNAMIC_TEMPLATES,
                                                  properties=TYPED_MAPPINGS)
                await self.es.indices.put_settings(index=alias, settings={"index": SETTINGS["index"]})
        except Exception as error:
            if "resource_already_exists" not in str(error):  # a concurrent creator won
                raise self._unavailable(error) from error
        self._ready.add(alias)

    async def apply(self, event: Any) -> None:
        await self.apply_many([event])

    async def apply_many(self, events: list[Any]) -> None:
        await self.apply_changes((e.event_type, e.sequence_number, e.data) for e in events)

    async def apply_changes(self, changes: Iterable[tuple[str, int | None, dict[str, Any]]]) -> None:
        for folded, dropped in fold_segments(changes):
            await self._write(folded)
            if dropped is not None:
                await self.drop_database(dropped)

    async def _write(self, folded: dict[tuple[str, str, str], tuple[int, Any, str | None]]) -> None:
        if not folded:
            return
        for db, kind, _ in folded:
            await self.ensure_alias(alias_name(db, kind))
        try:
            # A rebuild's indexes (self.build) have no reader until publish() refreshes
            # and swaps them in: their bulks do not refresh.
            answer = await self.es.bulk(operations=bulk_body(folded, self.index_of),
                                        refresh=self.build is None)
        except Exception as error:
            raise self._unavailable(error) from error
        if answer.get("errors"):
            failures = [item["index"] for item in answer["items"]
                        if item["index"].get("status", 200) >= 300 and item["index"]["status"] != 409]
            if failures:
                raise StoreUnavailable("search", f"bulk write refused: {failures[0].get('error')}")

    async def drop_database(self, db: str) -> None:
        for kind in KINDS:
            alias = alias_name(db, kind)
            self._ready.discard(alias)
            try:
                if await self.es.indices.exists_alias(name=alias):
                    concrete = list((await self.es.indices.get_alias(name=alias)).keys())
                    await self.es.indices.delete(index=",".join(concrete), ignore_unavailable=True)
            except Exception as error:
                raise self._unavailable(error) from error

    # ---- reads ----------------------------------------------------------------

    async def _query(self, db: str, kind: str, q: str, class_id: str | None,
                     filters: dict[str, Any], limit: int, offset: int) -> dict[str, Any]:
        alias = alias_name(db, kind)
        must: list[dict[str, Any]] = [{"multi_match": {"query": q, "fields": LABEL_FIELDS,
                                                         "fuzziness": "AUTO"}}] if q else [{"match_all": {}}]
        clauses = [{"term": {"deleted": False}}, *filter_terms(filters)]
        if class_id is not None:
            clauses.append({"term": {"class_id": class_id}})
        try:
            if not await self.es.indices.exists_alias(name=alias):
                return {"total": 0, "hits": [], "cursor": None}
            answer = await self._search(index=alias, query={"bool": {"must": must, "filter": clauses}},
                                          sort=["_score", {"doc_id": "asc"}], from_=offset, size=limit,
                                          track_total_hits=True)
        except Exception as error:
            raise self._unavailable(error) from error
        total = answer["hits"]["total"]["value"]
        rows = answer["hits"]["hits"]
        hits = [{"id": h["_source"]["doc_id"], "class_id": h["_source"]["class_id"],
                 "score": round(float(h.get("_score") or 0.0), 4), "document": h["_source"]["document"]}
                for h in rows]
        return result_page(hits, total, offset)

    async def structured(self, db: str, query: StructuredQuery) -> dict[str, Any]:
        offset = decode_cursor(query.cursor)
        alias = alias_name(db, "instance")
        clauses: list[dict[str, Any]] = [{"term": {"deleted": False}},
                                         {"terms": {"class_id": list(query.classes)}}]
        if query.where is not None:
            clauses.append(compile_where(query.where))
        try:
            if not await self.es.indices.exists_alias(name=alias):
                return {"total": 0, "hits": [], "cursor": None}
            answer = await self._search(index=alias, query={"bool": {"filter": clauses}},
                                          sort=sort_clause(query.sort), from_=offset, size=query.limit,
                                          track_total_hits=True, source=["doc_id", "class_id", "document"])
        except Exception as error:
            raise self._unavailable(error) from error
        hits = [structured_hit(h["_source"]["doc_id"], h["_source"]["class_id"],
                               h["_source"]["document"], query) for h in answer["hits"]["hits"]]
        return result_page(hits, answer["hits"]["total"]["value"], offset)

    async def class_documents(self, db: str) -> list[dict[str, Any]]:
        alias = alias_name(db, "class")
        try:
            if not await self.es.indices.exists_alias(name=alias):
                return []
            answer = await self._search(index=alias, query={"term": {"deleted": False}},
                                          sort=[{"doc_id": "asc"}], size=10_000)
        except Exception as error:
            raise self._unavailable(error) from error
        return [h["_source"]["document"] for h in answer["hits"]["hits"]]

    async def _search(self, index: str, **request: Any) -> Any:
        """A search that waits out a brand-new index: its alias is visible as soon as the
        index exists, a moment before its primary shard has started, and a search in that
        moment fails with `no_shard_available_action_exception`. Such a search waits
        (bounded) for the index to reach yellow and is asked once more."""
        try:
            return await self.es.search(index=index, **request)
        except Exception as error:
            if "no_shard_available_action_exception" not in describe_error(error):
                raise
        await self.es.cluster.health(index=index, wait_for_status="yellow", timeout=SHARD_WAIT)
        return await self.es.search(index=index, **request)

    async def ping(self) -> None:
        try:
            await self.es.info()
        except Exception as error:
            raise self._unavailable(error) from error

    @staticmethod
    def _unavailable(error: BaseException) -> StoreUnavailable:
        return StoreUnavailable("search", describe_error(error))


def describe_error(error: BaseException) -> str:
    """The server's own status, error type and reason, not the client's repr (which for
    an answer without the fields it expects reads `BadRequestError(400, 'None')`)."""
    status = getattr(error, "status_code", None) or getattr(getattr(error, "meta", None), "status", None)
    body = getattr(error, "body", None)
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        cause = body["error"]
        root = (cause.get("root_cause") or [cause])[0]
        return (f"Elasticsearch answered {status}: {root.get('type', cause.get('type'))}: "
                f"{root.get('reason', cause.get('reason'))}")
    if status is not None:
        from http import HTTPStatus

        phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else ""
        text = body if isinstance(body, str) and body else "no body (a HEAD request)"
        return f"Elasticsearch answered {status} {phrase}: {text[:300]}"
    return f"Elasticsearch unreachable: {type(error).__name__}: {error}"


class ElasticsearchRebuild:
    """Fresh indexes behind the aliases, filled from the store, then one atomic alias
    swap; live writes that went to the old indexes meanwhile are replayed after it."""

    skips_applied = False  # the new indexes are not the live ones until the swap

    def __init__(self, live: ElasticsearchSearchIndex, db: str | None) -> None:
        import time

        self.live = live
        self.target = ElasticsearchSearchIndex("", client=live.es, build=f"r{int(time.time())}")

    async def prepare(self) -> None:
        pass  # indexes are created as documents arrive

    async def loaded(self) -> None:
        pass

    @asynccontextmanager
    async def swap(self) -> AsyncIterator[None]:
        yield
        await self.target.publish()
