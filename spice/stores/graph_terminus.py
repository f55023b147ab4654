"""The graph store on TerminusDB (GRAPH_BACKEND=terminusdb), over its HTTP document API.

The official Python client is synchronous (requests, pandas), so an asyncio worker
speaks the document API directly (aiohttp). Every write is one TerminusDB commit whose
author is the event's actor and whose message names the event and its command.

Mapping, per database:
- `_SpiceClass/<class id>` documents hold each class definition as JSON text with its
  version (the event's sequence number). Not `@metadata` on schema classes: TerminusDB
  keeps every JSON value ever written there (content-addressed nodes nobody deletes), so
  a class updated a thousand times would carry a thousand old definitions.
- Each ontology class is a schema class of the same id inheriting `_SpiceInstance`, and
  an instance is a document `<class id>/<percent-encoded id>` of it with:
  `_data`, the instance's JSON exactly as written (typed values come back as their
  types, numbers as numbers, key order kept); `_version`, the sequence number that wrote
  it; and `_links`, one `_SpiceLink` subdocument per relationship value (predicate,
  position, target document): the graph TerminusDB can traverse.
- The domain (spice/domain) is the schema authority, as with PostgreSQL: property types,
  required fields and inheritance are checked there, so a schema change the domain
  accepts is never refused here for instances written under an older definition.
  TerminusDB does check every link: a relationship target is a real document.

Versions: a write applies only over an older `_version` (classes: `version`), a delete
only over an older or equal one, so re-applying or replaying an older event changes
nothing (the GraphStore contract).

Known behaviour of v11 handled here: reading a deleted document can answer HTTP 200 with
a streamed body starting `Status: 404`; integers in typed fields come back as strings
(hence `int()` on versions).
"""
from __future__ import annotations

import asyncio
import base64
import json
from collections import defaultdict
from typing import Any
from urllib.parse import quote, unquote

import aiohttp

from spice.domain.envelope import Envelope
from spice.domain.graph_query import Direction, Route
from spice.domain.messages import EventType
from spice.domain.ontology import OntologyClass
from spice.domain.query import Where, matches
from spice.domain.schema import Schema
from spice.stores.coalesce import Coalescer
from spice.stores.errors import StoreUnavailable
from spice.stores.graph import Node, Step

TEAM = "admin"
QUERY_FANOUT = 16  # document reads in flight at once for one graph query level
REFERRER_CHUNK = 200  # targets per WOQL query of a reverse hop
INSTANCE_BASE = "terminusdb:///data/"  # the instance graph's @base, as WOQL answers IRIs
CLASS_DOC = "_SpiceClass"
BASE = "_SpiceInstance"
LINK = "_SpiceLink"
FRAME = [
    {"@type": "Class", "@id": CLASS_DOC, "@key": {"@type": "Random"},
     "definition": "xsd:string", "version": "xsd:integer"},
    {"@type": "Class", "@id": LINK, "@subdocument": [], "@key": {"@type": "Random"},
     "predicate": "xsd:string", "position": "xsd:integer", "target": BASE},
    {"@type": "Class", "@id": BASE, "@abstract": [],
     "_data": "xsd:string", "_version": "xsd:integer",
     "_links": {"@type": "Set", "@class": LINK}},
]


class NotFound(Exception):
    """The document or database does not exist (a 404, in either of v11's forms)."""


def basic_auth(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def instance_iri(class_id: str, instance_id: str) -> str:
    return f"{class_id}/{quote(instance_id, safe='')}"


def class_iri(class_id: str) -> str:
    return f"{CLASS_DOC}/{quote(class_id, safe='')}"


def schema_class(class_id: str) -> dict[str, Any]:
    return {"@type": "Class", "@id": class_id, "@inherits": [BASE]}


def instance_id_of(iri: str) -> str:
    return unquote(iri.split("/", 1)[1])


class TerminusGraphStore:
    def __init__(self, url: str, user: str, password: str, team: str = TEAM) -> None:
        self.url = url.rstrip("/")
        self.team = team
        self._session = aiohttp.ClientSession(headers={"Authorization": basic_auth(user, password)},
                                              timeout=aiohttp.ClientTimeout(total=60))
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        # (db, document, event): instance writes of many commands, one commit per database
        self._instance_writes: Coalescer[tuple[str, dict[str, Any], Envelope], None] = Coalescer(
            self._write_instances, self._write_instance, key=lambda item: (item[0], item[1]["@id"]))
        # (db, document id, graph): the reads of concurrent commands, one request per
        # database and graph. A document GET costs TerminusDB about as much as reading
        # two hundred at once; a batch of commands made one GET each and waited in line.
        self._reads: Coalescer[tuple[str, str, str], dict[str, Any] | None] = Coalescer(
            self._read_many, self._read_one, key=lambda item: item, share=True)
        # (db, type): every command reads its database's classes; concurrent ones share a read.
        self._listings: Coalescer[tuple[str, str], list[dict[str, Any]]] = Coalescer(
            self._list_many, self._list_one, key=lambda item: item, share=True)

    async def close(self) -> None:
        await self._session.close()

    # ---- HTTP -------------------------------------------------------------------

    async def _request(self, method: str, path: str, *, params: dict[str, str] | None = None,
                       body: Any = None, headers: dict[str, str] | None = None) -> Any:
        try:
            async with self._session.request(method, f"{self.url}{path}", params=params,
                                             json=body, headers=headers) as response:
                text = await response.text()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as error:
            raise StoreUnavailable("graph", f"TerminusDB unreachable: {type(error).__name__}: "
                                            f"{error}") from error
        if status == 404 or text.startswith("Status: 404"):
            raise NotFound(path)
        if status >= 400 or text.startswith("Status: "):
            raise StoreUnavailable("graph", f"TerminusDB answered {status} to {method} {path}: "
                                            f"{_message(text)}")
        if not text.strip():
            return None
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            # as_list=false answers with one JSON document per line
            return [json.loads(line) for line in text.splitlines() if line.strip()]

    def _docs(self, db: str) -> str:
        return f"/api/document/{self.team}/{db}"

    async def _get(self, db: str, iri: str, graph: str = "instance") -> dict[str, Any] | None:
        return await self._reads((db, iri, graph))

    async def _read_one(self, item: tuple[str, str, str]) -> dict[str, Any] | None:
        db, iri, graph = item
        try:
            doc = await self._request("GET", self._docs(db), params={"graph_type": graph, "id": iri})
        except NotFound:
            return None
        return doc if isinstance(doc, dict) else None

    async def _read_many(self, items: list[tuple[str, str, str]]) -> list[dict[str, Any] | None]:
        """Documents by id, one request per (database, graph): the document API's GET
        with an `ids` body (sent as POST with the method override). Ids that do not
        exist are left out of the answer."""
        groups: defaultdict[tuple[str, str], list[str]] = defaultdict(list)
        for db, iri, graph in items:
            groups[(db, graph)].append(iri)
        found: dict[tuple[str, str, str], dict[str, Any]] = {}

        async def read(db: str, graph: str, iris: list[str]) -> None:
            if len(iris) == 1:
                doc = await self._read_one((db, iris[0], graph))
                if doc is not None:
                    found[(db, iris[0], graph)] = doc
                return
            try:
                docs = await self._request(
                    "POST", self._docs(db), headers={"X-HTTP-Method-Override": "GET"},
                    body={"graph_type": graph, "ids": iris, "as_list": True}) or []
            except NotFound:
                return
            wanted = {unquote(iri): iri for iri in iris}
            for doc in docs:
                iri = wanted.get(unquote(str(doc.get("@id", ""))))
                if iri is not None:
                    found[(db, iri, graph)] = doc

        await asyncio.gather(*[read(db, graph, iris) for (db, graph), iris in groups.items()])
        return [found.get(item) for item in items]

    async def _of_type(self, db: str, class_id: str) -> list[dict[str, Any]]:
        return await self._listings((db, class_id))

    async def _list_many(self, items: list[tuple[str, str]]) -> list[list[dict[str, Any]]]:
        return list(await asyncio.gather(*[self._list_one(item) for item in items]))

    async def _list_one(self, item: tuple[str, str]) -> list[dict[str, Any]]:
        db, class_id = item
        try:
            return await self._request("GET", self._docs(db), params={
                "graph_type": "instance", "type": class_id, "as_list": "true"}) or []
        except NotFound:
            return []

    async def _put(self, db: str, docs: Any, event: Envelope, graph: str = "instance",
                   commit: dict[str, str] | None = None) -> None:
        async with self._locks[db]:
            await self._request("PUT", self._docs(db), body=docs, params={
                **(commit or self._commit(event, graph)), "create": "true"})

    async def _delete(self, db: str, iri: str, event: Envelope, graph: str = "instance") -> None:
        try:
            async with self._locks[db]:
                await self._request("DELETE", self._docs(db), params={
                    **self._commit(event, graph), "id": iri})
        except NotFound:
            pass

    async def _write_instances(self, items: list[tuple[str, dict[str, Any], Envelope]]) -> list[None]:
        by_db: defaultdict[str, list[tuple[str, dict[str, Any], Envelope]]] = defaultdict(list)
        for item in items:
            by_db[item[0]].append(item)
        await asyncio.gather(*[self._put(db, [doc for _, doc, _ in group], group[0][2],
                                         commit=self._batch_commit([e for _, _, e in group]))
                               for db, group in by_db.items()])
        return [None] * len(items)

    async def _write_instance(self, item: tuple[str, dict[str, Any], Envelope]) -> None:
        await self._put(item[0], item[1], item[2])

    @staticmethod
    def _batch_commit(events: list[Envelope]) -> dict[str, str]:
        """One commit for the instance writes of several commands: its author is their
        actor when they share one, and its message names every command."""
        if len(events) == 1:
            return TerminusGraphStore._commit(events[0], "instance")
        actors = {e.actor for e in events}
        commands = ", ".join(str(e.metadata.get("command_id", "")) for e in events)
        return {"graph_type": "instance", "author": actors.pop() if len(actors) == 1 else "spice",
                "message": f"{len(events)} instance writes, commands {commands}"}

    @staticmethod
    def _commit(event: Envelope, graph: str) -> dict[str, str]:
        return {"graph_type": graph, "author": event.actor or "spice",
                "message": f"{event.event_type} command {event.metadata.get('command_id', '')}"}

    # ---- writes -----------------------------------------------------------------

    async def apply(self, event: Envelope) -> None:
        kind, data, version = EventType(event.event_type), event.data, event.sequence_number or 0
        if kind is EventType.DATABASE_CREATED:
            await self._create_database(data, event)
        elif kind is EventType.DATABASE_DELETED:
            try:
                await self._request("DELETE", f"/api/db/{self.team}/{data['name']}")
            except NotFound:
                pass
        elif kind in (EventType.ONTOLOGY_CLASS_CREATED, EventType.ONTOLOGY_CLASS_UPDATED):
            cls = data["class"]
            current = await self._get(data["db"], class_iri(cls["id"]))
            if current is not None and int(current["version"]) >= version:
                return
            await self._put(data["db"], schema_class(cls["id"]), event, "schema")
            await self._put(data["db"], {"@type": CLASS_DOC, "@id": class_iri(cls["id"]),
                                         "definition": json.dumps(cls), "version": version}, event)
        elif kind is EventType.ONTOLOGY_CLASS_DELETED:
            # The schema class stays: it has no fields, and instances written under it
            # may still exist; what the service sees as classes is the _SpiceClass set.
            current = await self._get(data["db"], class_iri(data["class_id"]))
            if current is not None and int(current["version"]) <= version:
                await self._delete(data["db"], class_iri(data["class_id"]), event)
        elif kind in (EventType.INSTANCE_CREATED, EventType.INSTANCE_UPDATED):
            await self.apply_many([event])
        elif kind is EventType.INSTANCE_DELETED:
            iri = instance_iri(data["class_id"], data["instance_id"])
            current = await self._get(data["db"], iri)
            if current is not None and int(current["_version"]) <= version:
                await self._delete(data["db"], iri, event)
        # COMMAND_FAILED changes nothing in the graph.

    async def apply_many(self, events: list[Envelope]) -> None:
        """Instance writes of one database in one commit (the bulk path); anything else
        one by one, in order."""
        writes = [e for e in events if e.event_type in (EventType.INSTANCE_CREATED,
                                                          EventType.INSTANCE_UPDATED)]
        if len(writes) != len(events) or len({e.data["db"] for e in writes}) > 1:
            for event in events:
                if event.event_type in (EventType.INSTANCE_CREATED, EventType.INSTANCE_UPDATED):
                    await self.apply_many([event])
                else:
                    await self.apply(event)
            return
        db = writes[0].data["db"]
        schema = await self.schema(db)
        latest: dict[str, tuple[Envelope, dict[str, Any]]] = {}
        for event in writes:  # the newest write of each document wins within the batch
            doc = await self._instance_document(db, schema, event)
            if doc["@id"] not in latest or latest[doc["@id"]][1]["_version"] <= doc["_version"]:
                latest[doc["@id"]] = (event, doc)
        docs = []
        for iri, (event, doc) in latest.items():
            current = await self._get(db, iri) if event.event_type == EventType.INSTANCE_UPDATED \
                or len(writes) == 1 else None
            if current is not None and int(current["_version"]) >= doc["_version"]:
                continue
            docs.append(doc)
        if not docs:
            return
        if len(docs) > 1:
            # A bulk create that crashed halfway is retried: skip what already landed.
            present = {d["@id"]: d for d in await self._of_type(db, writes[0].data["class_id"])}
            docs = [d for d in docs if d["@id"] not in present
                    or int(present[d["@id"]]["_version"]) < d["_version"]]
            if docs:
                await self._put(db, docs, writes[-1])
            return
        await self._instance_writes((db, docs[0], latest[docs[0]["@id"]][0]))

    async def _create_database(self, data: dict[str, Any], event: Envelope) -> None:
        if not await self.database_exists(data["name"]):
            try:
                await self._request("POST", f"/api/db/{self.team}/{data['name']}", body={
                    "label": data["name"], "comment": json.dumps(data), "schema": True})
            except StoreUnavailable as error:
                if "already exists" not in str(error):  # a concurrent creator won
                    raise
        await self._put(data["name"], FRAME, event, "schema")

    async def _instance_document(self, db: str, schema: Schema, event: Envelope) -> dict[str, Any]:
        data = event.data
        links = []
        relationships = {r.predicate: r.target for r in schema.effective_relationships(data["class_id"])} \
            if data["class_id"] in schema.classes else {}
        for predicate, target in relationships.items():
            value = data["data"].get(predicate)
            if value is None:
                continue
            for position, ref in enumerate(value if isinstance(value, list) else [value]):
                links.append({"@type": LINK, "predicate": predicate, "position": position,
                              "target": await self._resolve(db, schema, target, str(ref))})
        return {"@type": data["class_id"], "@id": instance_iri(data["class_id"], data["instance_id"]),
                "_data": json.dumps(data["data"], ensure_ascii=False),
                "_version": event.sequence_number or 0, "_links": links}

    async def _resolve(self, db: str, schema: Schema, target: str, ref: str) -> str:
        """The document a relationship value names: an instance of the target class or of
        one of its subclasses (the domain checked that one exists)."""
        candidates, seen = [target], {target}
        while len(candidates) < len(schema.classes) + 1:
            more = [s for c in candidates for s in schema.subclasses(c) if s not in seen]
            if not more:
                break
            seen.update(more)
            candidates += more
        for candidate in candidates:
            if await self._get(db, instance_iri(candidate, ref)) is not None:
                return instance_iri(candidate, ref)
        return instance_iri(target, ref)  # TerminusDB refuses the write, naming the link

    # ---- reads ------------------------------------------------------------------

    async def database_exists(self, db: str) -> bool:
        try:
            async with self._session.head(f"{self.url}/api/db/{self.team}/{db}") as response:
                return response.status == 200
        except (aiohttp.ClientError, TimeoutError) as error:
            raise StoreUnavailable("graph", f"TerminusDB unreachable: {error}") from error

    async def list_databases(self) -> list[dict[str, Any]]:
        listed = await self._request("GET", "/api/db", params={"verbose": "true"}) or []
        prefix = f"{self.team}/"
        found = []
        for entry in listed:
            path = str(entry.get("path", ""))
            if path.startswith(prefix):
                try:
                    found.append(json.loads(entry.get("comment") or ""))
                except json.JSONDecodeError:
                    found.append({"name": path[len(prefix):]})
        return sorted(found, key=lambda d: d["name"])

    async def list_classes(self, db: str) -> list[dict[str, Any]]:
        docs = await self._of_type(db, CLASS_DOC)
        return sorted((json.loads(d["definition"]) for d in docs), key=lambda c: c["id"])

    async def schema(self, db: str) -> Schema:
        classes = [OntologyClass.model_validate(c) for c in await self.list_classes(db)]
        return Schema({c.id: c for c in classes})

    async def get_class(self, db: str, class_id: str) -> dict[str, Any] | None:
        doc = await self._get(db, class_iri(class_id))
        return json.loads(doc["definition"]) if doc else None

    async def get_instance(self, db: str, class_id: str, instance_id: str) -> dict[str, Any] | None:
        doc = await self._get(db, instance_iri(class_id, instance_id))
        if doc is None or doc.get("@type") != class_id:
            return None
        return json.loads(doc["_data"])  # type: ignore[no-any-return]

    async def class_version(self, db: str, class_id: str) -> tuple[dict[str, Any], int] | None:
        doc = await self._get(db, class_iri(class_id))
        return (json.loads(doc["definition"]), int(doc["version"])) if doc else None

    async def instance_version(self, db: str, class_id: str, instance_id: str
                               ) -> tuple[dict[str, Any], int] | None:
        doc = await self._get(db, instance_iri(class_id, instance_id))
        if doc is None or doc.get("@type") != class_id:
            return None
        return json.loads(doc["_data"]), int(doc["_version"])

    async def _instances(self, db: str, class_id: str) -> list[tuple[str, dict[str, Any]]]:
        """(instance id, data) of the class's own instances (not its subclasses'), by id."""
        return sorted((instance_id_of(d["@id"]), json.loads(d["_data"]))
                      for d in await self._of_type(db, class_id) if d.get("@type") == class_id)

    async def instance_counts(self, db: str) -> dict[str, int]:
        counts: dict[str, int] = {}
        for cls in await self.list_classes(db):
            count = len(await self._instances(db, cls["id"]))
            if count:
                counts[cls["id"]] = count
        return counts

    async def existing_instances(self, db: str, class_id: str, ids: list[str]) -> set[str]:
        wanted = set(ids)
        if len(wanted) <= 8:
            return {i for i in wanted if await self.get_instance(db, class_id, i) is not None}
        return {i for i, _ in await self._instances(db, class_id) if i in wanted}

    async def list_instances(self, db: str, class_id: str, limit: int = 100,
                             after: str | None = None) -> list[dict[str, Any]]:
        rows = [r for r in await self._instances(db, class_id) if after is None or r[0] > after]
        return [{"instance_id": i, "class_id": class_id, "data": d} for i, d in rows[:limit]]

    async def ping(self) -> None:
        await self._request("GET", "/api/ok")

    # ---- graph queries (spice/stores/graph_query.py runs them level by level) --------
    # Over the `_links` TerminusDB keeps: each holds the document a relationship value
    # was resolved to when it was written (the rank order of spice.domain.graph_query).

    async def _many(self, db: str, iris: list[str]) -> list[dict[str, Any]]:
        """The documents that exist among `iris`, read QUERY_FANOUT at a time."""
        found: list[dict[str, Any]] = []
        for start in range(0, len(iris), QUERY_FANOUT):
            docs = await asyncio.gather(*[self._get(db, iri) for iri in iris[start:start + QUERY_FANOUT]])
            found += [d for d in docs if d is not None]
        return found

    async def _referrers(self, db: str, targets: list[str]) -> list[tuple[str, str, int, str]]:
        """(document, predicate, position, target) of every link into `targets`, through
        TerminusDB's query interface (WOQL), REFERRER_CHUNK targets per query."""
        found: list[tuple[str, str, int, str]] = []
        for start in range(0, len(targets), REFERRER_CHUNK):
            chunk = targets[start:start + REFERRER_CHUNK]
            try:
                answer = await self._request("POST", f"/api/woql/{self.team}/{db}",
                                             body={"query": _referrers_query(chunk)})
            except NotFound:
                return []
            for row in answer.get("bindings", []):
                found.append((self._shorten(str(_value(row["Doc"]))), str(_value(row["Predicate"])),
                              int(_value(row["Position"])), self._shorten(str(_value(row["Target"])))))
        return found

    @staticmethod
    def _shorten(iri: str) -> str:
        return iri[len(INSTANCE_BASE):] if iri.startswith(INSTANCE_BASE) else iri

    async def query_nodes(self, db: str, classes: list[str], ids: list[str] | None,
                          where: Where | None, limit: int, timeout: float) -> list[Node]:
        if ids is not None:
            docs = await self._many(db, [instance_iri(c, i) for c in classes for i in ids])
        else:
            docs = [d for c in classes for d in await self._of_type(db, c)]
        nodes = {(d["@type"], instance_id_of(d["@id"])): json.loads(d["_data"]) for d in docs
                 if d.get("@type") in classes}
        return [(c, i, data) for (c, i), data in sorted(nodes.items()) if matches(where, data)][:limit]

    async def follow(self, db: str, frontier: list[Node], direction: Direction, routes: list[Route],
                     classes: list[str], where: Where | None, limit: int, timeout: float) -> list[Step]:
        wanted = set(classes)
        steps: list[Step] = []
        if direction == "forward":
            declared = {(r.source, r.predicate) for r in routes}
            sources = await self._many(db, [instance_iri(c, i) for c, i, _ in frontier])
            links = [(d, link) for d in sources for link in _sorted_links(d)
                     if (d["@type"], link["predicate"]) in declared]
            targets = {d["@id"]: d for d in await self._many(db, sorted({lk["target"] for _, lk in links}))}
            for source, link in links:
                target = targets.get(link["target"])
                if target is None or target.get("@type") not in wanted:
                    continue
                data = json.loads(target["_data"])
                if matches(where, data):
                    key = (target["@type"], instance_id_of(target["@id"]))
                    steps.append(((source["@type"], instance_id_of(source["@id"])), link["predicate"],
                                  key, (*key, data)))
        else:
            into = {instance_iri(c, i): (c, i) for c, i, _ in frontier}
            accepted = {(r.source, r.predicate, r.target) for r in routes}
            referrers = await self._referrers(db, sorted(into))
            docs = {d["@id"]: d for d in await self._many(db, sorted({doc for doc, _, _, _ in referrers}))}
            for doc_iri, predicate, _, into_iri in sorted(referrers, key=lambda r: (r[0], r[1], r[2])):
                referrer = docs.get(doc_iri)
                if referrer is None or referrer.get("@type") not in wanted or into_iri not in into:
                    continue
                key = (referrer["@type"], instance_id_of(doc_iri))
                if (key[0], predicate, into[into_iri][0]) not in accepted:
                    continue
                data = json.loads(referrer["_data"])
                if matches(where, data):
                    steps.append((key, predicate, into[into_iri], (*key, data)))
        return sorted(steps, key=lambda s: (s[0], s[1], s[2]))[:limit]


def _referrers_query(targets: list[str]) -> dict[str, Any]:
    """WOQL: every link whose target is one of `targets`, with the document holding it,
    its predicate and position. The target is bound first, so TerminusDB walks its
    object index from each target instead of reading every document of a class."""
    def node(value: str) -> dict[str, str]:
        return {"@type": "NodeValue", "node": value}

    def var(name: str, kind: str = "NodeValue") -> dict[str, str]:
        return {"@type": kind, "variable": name}

    def triple(subject: dict[str, str], predicate: str, obj: dict[str, str]) -> dict[str, Any]:
        return {"@type": "Triple", "subject": subject, "predicate": node(predicate), "object": obj}

    link_to = [{"@type": "And", "and": [
        {"@type": "Equals", "left": var("Target", "Value"), "right": {"@type": "Value", "node": t}},
        triple(var("Link"), "@schema:target", var("Target", "Value"))]} for t in targets]
    return {"@type": "Select", "variables": ["Doc", "Predicate", "Position", "Target"], "query": {
        "@type": "And", "and": [
            {"@type": "Or", "or": link_to},
            triple(var("Doc"), "@schema:_links", var("Link", "Value")),
            triple(var("Link"), "@schema:predicate", var("Predicate", "Value")),
            triple(var("Link"), "@schema:position", var("Position", "Value"))]}}


def _value(binding: Any) -> Any:
    """A WOQL binding's value: literals come as {"@type", "@value"}, nodes as IRIs."""
    return binding.get("@value") if isinstance(binding, dict) else binding


def _sorted_links(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """A document's links in (predicate, position) order (v11 answers integers as text)."""
    return sorted(doc.get("_links") or [], key=lambda link: (link["predicate"], int(link["position"])))


def _message(text: str) -> str:
    """TerminusDB's own `api:message` (and the first witness, which names the field)."""
    body = text.split("\n", 1)[1] if text.startswith("Status: ") else text
    try:
        answer = json.loads(body)
    except json.JSONDecodeError:
        return body[:300]
    message = str(answer.get("api:message", ""))
    witnesses = (answer.get("api:error") or {}).get("api:witnesses") or []
    if witnesses:
        message += f" ({json.dumps(witnesses[0])[:300]})"
    return message or body[:300]
