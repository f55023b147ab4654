"""The production graph store: TerminusDB over its HTTP document API (aiohttp).

The official Python client is synchronous (requests, pandas), so an asyncio worker
speaks the document API directly. Classes live in the schema graph, instances in
the instance graph; every write's commit message carries the command id.

Mapping: our class definition is kept whole in the class's `@metadata.spice`, so
reads return exactly what was written; the TerminusDB properties are derived from
it (xsd primitives where they exist, `sys:JSON` for money, coordinate, address,
objects and arrays; relationships are `Optional`/`Set` of the target class).
Instance ids are `Class/<percent-encoded id>`.
"""
from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote, unquote

import aiohttp

from spice.domain.envelope import Envelope
from spice.domain.messages import EventType
from spice.domain.ontology import OntologyClass
from spice.domain.schema import Schema

TEAM = "admin"
XSD = {"string": "xsd:string", "integer": "xsd:integer", "decimal": "xsd:decimal",
       "boolean": "xsd:boolean", "date": "xsd:date", "datetime": "xsd:dateTime",
       "email": "xsd:string", "phone": "xsd:string", "url": "xsd:string", "enum": "xsd:string"}


def schema_document(cls: dict[str, Any]) -> dict[str, Any]:
    doc: dict[str, Any] = {"@type": "Class", "@id": cls["id"], "@metadata": {"spice": cls}}
    if cls.get("parents"):
        doc["@inherits"] = cls["parents"]
    if cls.get("abstract"):
        doc["@abstract"] = []
    for prop in cls.get("properties", []):
        kind = XSD.get(prop["type"], "sys:JSON")
        doc[prop["name"]] = kind if prop.get("required") else {"@type": "Optional", "@class": kind}
    for rel in cls.get("relationships", []):
        many = rel.get("cardinality", "n:1") in ("1:n", "n:m")
        doc[rel["predicate"]] = {"@type": "Set" if many else "Optional", "@class": rel["target"]}
    return doc


def instance_iri(class_id: str, instance_id: str) -> str:
    return f"{class_id}/{quote(instance_id, safe='')}"


class TerminusGraphStore:
    def __init__(self, url: str, user: str, password: str, team: str = TEAM) -> None:
        self.url = url.rstrip("/")
        self.team = team
        self._session = aiohttp.ClientSession(auth=aiohttp.BasicAuth(user, password),
                                              timeout=aiohttp.ClientTimeout(total=30))

    async def close(self) -> None:
        await self._session.close()

    async def _request(self, method: str, path: str, *, params: dict[str, str] | None = None,
                       body: Any = None, ok_missing: bool = False) -> Any:
        async with self._session.request(method, f"{self.url}{path}", params=params,
                                         json=body) as response:
            if ok_missing and response.status == 404:
                return None
            text = await response.text()
            if response.status >= 400:
                raise RuntimeError(f"TerminusDB {method} {path}: {response.status} {text[:300]}")
            if not text:
                return None
            try:
                return json.loads(text)
            except json.JSONDecodeError:
                # as_list=false answers with one JSON document per line
                return [json.loads(line) for line in text.splitlines() if line.strip()]

    def _docs(self, db: str) -> str:
        return f"/api/document/{self.team}/{db}"

    @staticmethod
    def _commit(event: Envelope, graph: str) -> dict[str, str]:
        return {"graph_type": graph, "author": event.actor,
                "message": f"{event.event_type} command {event.command_id}"}

    async def apply(self, event: Envelope) -> None:
        kind, data = EventType(event.event_type), event.data
        if kind is EventType.DATABASE_CREATED:
            if not await self.database_exists(data["name"]):
                await self._request("POST", f"/api/db/{self.team}/{data['name']}", body={
                    "label": data["name"], "comment": json.dumps(data), "schema": True})
        elif kind is EventType.DATABASE_DELETED:
            await self._request("DELETE", f"/api/db/{self.team}/{data['name']}", ok_missing=True)
        elif kind in (EventType.ONTOLOGY_CLASS_CREATED, EventType.ONTOLOGY_CLASS_UPDATED):
            await self._request("PUT", self._docs(data["db"]),
                                params={**self._commit(event, "schema"), "create": "true"},
                                body=schema_document(data["class"]))
        elif kind is EventType.ONTOLOGY_CLASS_DELETED:
            await self._request("DELETE", self._docs(data["db"]), ok_missing=True,
                                params={**self._commit(event, "schema"), "id": data["class_id"]})
        elif kind in (EventType.INSTANCE_CREATED, EventType.INSTANCE_UPDATED):
            await self._request("PUT", self._docs(data["db"]),
                                params={**self._commit(event, "instance"), "create": "true"},
                                body=await self._instance_document(data))
        elif kind is EventType.INSTANCE_DELETED:
            await self._request("DELETE", self._docs(data["db"]), ok_missing=True, params={
                **self._commit(event, "instance"),
                "id": instance_iri(data["class_id"], data["instance_id"])})

    async def _instance_document(self, data: dict[str, Any]) -> dict[str, Any]:
        cls = await self.get_class(data["db"], data["class_id"]) or {}
        targets = {r["predicate"]: r["target"] for r in cls.get("relationships", [])}
        doc: dict[str, Any] = {"@type": data["class_id"],
                               "@id": instance_iri(data["class_id"], data["instance_id"])}
        for key, value in data["data"].items():
            if key in targets:
                ids = value if isinstance(value, list) else [value]
                refs = [instance_iri(targets[key], str(i)) for i in ids]
                doc[key] = refs if isinstance(value, list) else refs[0]
            else:
                doc[key] = value
        return doc

    async def database_exists(self, db: str) -> bool:
        async with self._session.head(f"{self.url}/api/db/{self.team}/{db}") as response:
            return response.status == 200

    async def list_databases(self) -> list[dict[str, Any]]:
        listed = await self._request("GET", "/api/db", params={"verbose": "true"}) or []
        prefix = f"{self.team}/"
        return [{"name": d["path"][len(prefix):]} for d in listed
                if str(d.get("path", "")).startswith(prefix)]

    async def list_classes(self, db: str) -> list[dict[str, Any]]:
        docs = await self._request("GET", self._docs(db),
                                   params={"graph_type": "schema", "as_list": "true"}) or []
        classes = [d["@metadata"]["spice"] for d in docs
                   if d.get("@type") == "Class" and "spice" in (d.get("@metadata") or {})]
        return sorted(classes, key=lambda c: c["id"])

    async def schema(self, db: str) -> Schema:
        classes = [OntologyClass.model_validate(c) for c in await self.list_classes(db)]
        return Schema({c.id: c for c in classes})

    async def get_class(self, db: str, class_id: str) -> dict[str, Any] | None:
        doc = await self._request("GET", self._docs(db), ok_missing=True,
                                  params={"graph_type": "schema", "id": class_id})
        if not doc or "spice" not in (doc.get("@metadata") or {}):
            return None
        return doc["@metadata"]["spice"]  # type: ignore[no-any-return]

    def _from_document(self, doc: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        instance_id = unquote(doc["@id"].split("/", 1)[1])

        def plain(value: Any) -> Any:
            if isinstance(value, str) and "/" in value and value.split("/", 1)[0][:1].isupper():
                return unquote(value.split("/", 1)[1])
            return value

        data = {k: ([plain(v) for v in value] if isinstance(value, list) else plain(value))
                for k, value in doc.items() if not k.startswith("@")}
        return instance_id, data

    async def get_instance(self, db: str, class_id: str, instance_id: str) -> dict[str, Any] | None:
        doc = await self._request("GET", self._docs(db), ok_missing=True, params={
            "graph_type": "instance", "id": instance_iri(class_id, instance_id)})
        return self._from_document(doc)[1] if doc else None

    async def _all_instances(self, db: str, class_id: str) -> list[dict[str, Any]]:
        return await self._request("GET", self._docs(db), params={
            "graph_type": "instance", "type": class_id, "as_list": "true"}) or []

    async def instance_counts(self, db: str) -> dict[str, int]:
        counts: dict[str, int] = {}
        for cls in await self.list_classes(db):
            count = len(await self._all_instances(db, cls["id"]))
            if count:
                counts[cls["id"]] = count
        return counts

    async def existing_instances(self, db: str, class_id: str, ids: list[str]) -> set[str]:
        wanted = set(ids)
        return {i for i, _ in map(self._from_document, await self._all_instances(db, class_id))
                if i in wanted}

    async def list_instances(self, db: str, class_id: str, limit: int = 100,
                             after: str | None = None) -> list[dict[str, Any]]:
        rows = sorted(map(self._from_document, await self._all_instances(db, class_id)))
        rows = [r for r in rows if after is None or r[0] > after][:limit]
        return [{"instance_id": i, "class_id": class_id, "data": d} for i, d in rows]

    async def ping(self) -> None:
        await self._request("GET", "/api/ok")
