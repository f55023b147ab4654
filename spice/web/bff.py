"""Backend-for-frontend: the same commands, addressed by labels in the user's language.

The label index comes from the search read model (class documents, kept by the
projection agents from the ontology events and rebuilt with them), so writes
here wait until their command is projected by default: the next request can
then use the labels it just defined. `?async=true` answers 202 at once instead.
"""
from __future__ import annotations

import time
import uuid
from typing import Any

from faust.web import Request, Response

from spice.domain import bff, ids
from spice.domain.labels import LabelIndex
from spice.domain.messages import CommandType, class_aggregate, instance_aggregate
from spice.domain.ontology import OntologyClass
from spice.domain.parsing import parse
from spice.domain.structured import parse_structured
from spice.domain.text import normalise_language
from spice.web.auth import Access
from spice.web.http import ApiView, HttpError, json_body, query_number
from spice.web.reads import require_db
from spice.web.search import property_filters
from spice.web.waiting import outcome_response, remaining, wait_status
from spice.web.writes import Write, submit

DEFAULT_LANGUAGE = "en"
RESERVED_QUERY = {"q", "class", "limit", "cursor", "lang"}
INSTANCE_NAMESPACE = uuid.UUID("6f1f2a4e-53d8-4c0b-8f0e-2b8f1d7f3c11")


def request_language(request: Request) -> str:
    """?lang= wins; else the Accept-Language entry with the highest q; else English."""
    if request.query.get("lang"):
        return normalise_language(request.query["lang"])
    header = request.headers.get("Accept-Language", "")
    best, best_q = DEFAULT_LANGUAGE, -1.0
    for part in header.split(","):
        tag, _, params = part.strip().partition(";")
        if not tag or tag == "*":
            continue
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        if q > best_q:
            best, best_q = normalise_language(tag), q
    return best


class BffView(ApiView):
    async def index(self, db: str) -> LabelIndex:
        await require_db(self, db)
        return LabelIndex(await self.runtime.search.class_documents(db))

    async def command(self, request: Request, write: Write,
                      render: Any) -> Response:
        """Submit; then 202 (?async=true) or wait until projected and render the result."""
        started = time.monotonic()
        is_async = request.query.get("async", "false").lower() in ("1", "true", "yes")
        timeout = query_number(request, "timeout", 30.0, 0.1, 600.0)
        wait = request.query.get("wait", "projected")
        if wait not in ("applied", "projected"):
            raise HttpError(400, "'wait' must be 'applied' or 'projected'", field="wait")
        stored = await submit(self, request, write)
        if is_async:
            return self.json({"command_id": stored.command_id, "status": "PENDING"}, status=202)
        doc = await wait_status(self, stored.command_id, remaining(timeout, started), wait)
        if doc is None or doc.get("status") != "COMPLETED":
            return outcome_response(self, stored.command_id, doc, timeout, started)
        body = {"status": "success", "command_id": stored.command_id,
                "execution_time": round(time.monotonic() - started, 4)}
        if render is not None and wait == "projected":
            body.update(await render())
        return self.json(body, status=201 if write.command.name.startswith("CREATE") else 200)


    def _render(self, db: str, class_id: str, lang: str) -> Any:
        async def render() -> dict[str, Any]:
            index = await self.index(db)
            return {"class": bff.class_view(index, class_id, lang)} if class_id in index.classes else {}
        return render

    @staticmethod
    def new_instance_id(request: Request, db: str, class_id: str) -> str:
        # With an Idempotency-Key a retry must produce the same body, so the same id.
        key = request.headers.get("Idempotency-Key")
        raw = uuid.uuid5(INSTANCE_NAMESPACE, f"{db}|{class_id}|{key}") if key else uuid.uuid4()
        return f"{class_id.lower()}-{raw.hex[:12]}"

    async def instance_view(self, index: LabelIndex, db: str, class_id: str, instance_id: str,
                            data: dict[str, Any], lang: str) -> dict[str, Any]:
        rels = {r["predicate"]: r["target"] for c in index.lineage(class_id)
                for r in c.get("relationships", [])}
        targets: dict[tuple[str, str], str] = {}
        for predicate, target_class in rels.items():
            value = data.get(predicate)
            for target_id in (value if isinstance(value, list) else [value] if value else []):
                target = await self.runtime.graph.get_instance(db, target_class, str(target_id))
                if target is not None:
                    targets[(target_class, str(target_id))] = bff.display_label(
                        index, target_class, str(target_id), target, lang)
        return bff.instance_view(index, class_id, instance_id, data, lang, targets)


class LabelsView(BffView):
    async def get(self, request: Request, db: str) -> Response:
        index = await self.index(db)
        return self.json({"db": db, "labels": index.entries(), "ambiguous": index.ambiguities()})


class ClassesView(BffView):
    async def get(self, request: Request, db: str) -> Response:
        index, lang = await self.index(db), request_language(request)
        return self.json({"db": db, "language": lang,
                          "classes": [bff.class_view(index, c, lang) for c in sorted(index.classes)]})

    async def post(self, request: Request, db: str) -> Response:
        index, lang = await self.index(db), request_language(request)
        body = await json_body(request)
        cls = bff.class_from_labels(body, index, lang)
        if cls["id"] in index.classes:
            raise HttpError(409, f"class '{cls['id']}' already exists in '{db}'", field="class.id",
                            code="already_exists")
        parse(OntologyClass, cls, "class")
        write = Write(CommandType.CREATE_ONTOLOGY_CLASS, class_aggregate(db, cls["id"]),
                      {"db": db, "class": cls}, db)
        return await self.command(request, write, self._render(db, cls["id"], lang))


class ClassView(BffView):
    async def get(self, request: Request, db: str, class_ref: str) -> Response:
        index, lang = await self.index(db), request_language(request)
        class_id = index.resolve_class(class_ref, "class", status=404)
        return self.json(bff.class_view(index, class_id, lang))

    async def put(self, request: Request, db: str, class_ref: str) -> Response:
        index, lang = await self.index(db), request_language(request)
        class_id = index.resolve_class(class_ref, "class", status=404)
        body = await json_body(request)
        if body.get("id", class_id) != class_id:
            raise HttpError(422, f"class.id must be '{class_id}' (the class in the path)", field="class.id")
        cls = bff.class_from_labels(body, index, lang, current=index.classes[class_id])
        parse(OntologyClass, cls, "class")
        write = Write(CommandType.UPDATE_ONTOLOGY_CLASS, class_aggregate(db, class_id),
                      {"db": db, "class_id": class_id, "class": cls}, db)
        return await self.command(request, write, self._render(db, class_id, lang))

    async def delete(self, request: Request, db: str, class_ref: str) -> Response:
        index = await self.index(db)
        class_id = index.resolve_class(class_ref, "class", status=404)
        write = Write(CommandType.DELETE_ONTOLOGY_CLASS, class_aggregate(db, class_id),
                      {"db": db, "class_id": class_id}, db)
        return await self.command(request, write, None)


class InstancesView(BffView):
    async def get(self, request: Request, db: str, class_ref: str) -> Response:
        index, lang = await self.index(db), request_language(request)
        class_id = index.resolve_class(class_ref, "class", status=404)
        limit = int(query_number(request, "limit", 50, 1, 500))
        rows = await self.runtime.graph.list_instances(db, class_id, limit, request.query.get("after"))
        views = [await self.instance_view(index, db, class_id, r["instance_id"], r["data"], lang)
                 for r in rows]
        return self.json({"class": bff.class_ref(index, class_id, lang), "instances": views,
                          "after": rows[-1]["instance_id"] if len(rows) == limit else None})

    async def post(self, request: Request, db: str, class_ref: str) -> Response:
        index, lang = await self.index(db), request_language(request)
        class_id = index.resolve_class(class_ref, "class", status=404)
        body = await json_body(request, allowed={"instance_id", "data"})
        data = bff.data_from_labels(body.get("data"), index, class_id)
        instance_id = body.get("instance_id") or self.new_instance_id(request, db, class_id)
        ids.check_instance_id(instance_id)
        write = Write(CommandType.CREATE_INSTANCE, instance_aggregate(db, class_id, instance_id),
                      {"db": db, "class_id": class_id, "instance_id": instance_id, "data": data}, db)

        async def render() -> dict[str, Any]:
            stored = await self.runtime.graph.get_instance(db, class_id, instance_id)
            return {"instance": await self.instance_view(index, db, class_id, instance_id,
                                                         stored or data, lang)}
        return await self.command(request, write, render)

class InstanceView(BffView):
    async def get(self, request: Request, db: str, class_ref: str, instance_id: str) -> Response:
        index, lang = await self.index(db), request_language(request)
        class_id = index.resolve_class(class_ref, "class", status=404)
        ids.check_instance_id(instance_id)
        data = await self.runtime.graph.get_instance(db, class_id, instance_id)
        if data is None:
            raise HttpError(404, f"instance '{instance_id}' of '{class_id}' does not exist",
                            field="instance_id")
        return self.json(await self.instance_view(index, db, class_id, instance_id, data, lang))


class SearchView(BffView):
    async def get(self, request: Request, db: str) -> Response:
        index, lang = await self.index(db), request_language(request)
        class_id = None
        if request.query.get("class"):
            class_id = index.resolve_class(request.query["class"], "class")
        limit = int(query_number(request, "limit", 20, 1, 200))
        filters = {}
        for key, value in property_filters(request, RESERVED_QUERY).items():
            if class_id is None:
                raise HttpError(400, "property filters need a class (?class=label)", field=key)
            filters[index.member_resolver(class_id).resolve(key, key)] = value
        try:
            found = await self.runtime.search.search(
                db, request.query.get("q", ""), class_id=class_id, filters=filters, limit=limit,
                cursor=request.query.get("cursor"))
        except ValueError as error:
            raise HttpError(400, str(error), field="cursor") from None
        hits = []
        for hit in found["hits"]:
            cid, iid = hit["class_id"], hit["id"].split("/", 1)[-1]
            view = await self.instance_view(index, db, cid, iid, hit["document"], lang) \
                if cid in index.classes else {"id": iid, "class": {"id": cid, "label": cid}}
            hits.append({**view, "score": hit["score"]})
        return self.json({"total": found["total"], "hits": hits, "cursor": found["cursor"],
                          "language": lang})


class QueryView(BffView):
    """POST /bff/{db}/query: a structured query (docs/queries.md) whose class, properties,
    sort keys and fields are labels in any language; hits come back with labels."""

    access = {"post": Access.READ}

    async def post(self, request: Request, db: str) -> Response:
        index, lang = await self.index(db), request_language(request)
        body = await json_body(request, allowed={"class", "where", "sort", "fields", "limit",
                                                 "cursor", "include_subclasses"})
        class_id = index.resolve_class(body.get("class"), "class")
        members = index.member_resolver(class_id)

        def member(label: Any, field: str) -> str:
            """A property label, or `<label>.amount` / `<label>.currency` of a money one."""
            head, dot, part = str(label).rpartition(".")
            if dot and part in ("amount", "currency") and not members.lookup(str(label)):
                return f"{members.resolve(head, field)}.{part}"
            return members.resolve(label, field)

        def where(node: Any, field: str) -> Any:
            if not isinstance(node, dict):
                return node
            if "property" in node:
                return {**node, "property": member(node["property"], f"{field}.property")}
            return {k: [where(p, f"{field}.{k}[{i}]") for i, p in enumerate(v)] if isinstance(v, list)
                    else where(v, f"{field}.{k}") for k, v in node.items()}

        query: dict[str, Any] = {k: v for k, v in body.items() if k != "class"}
        query["class_id"] = class_id
        if "where" in body:
            query["where"] = where(body["where"], "where")
        if isinstance(body.get("sort"), list):
            query["sort"] = [
                {**key, "property": member(key.get("property"), f"sort[{i}].property")}
                if isinstance(key, dict) else
                ("-" if str(key).startswith("-") else "") + member(str(key).lstrip("-"), f"sort[{i}]")
                for i, key in enumerate(body["sort"])]
        if isinstance(body.get("fields"), list):
            query["fields"] = [member(f, f"fields[{i}]") for i, f in enumerate(body["fields"])]
        parsed = parse_structured(query, await self.runtime.graph.schema(db))
        try:
            found = await self.runtime.search.structured(db, parsed)
        except ValueError as error:
            raise HttpError(422, str(error), field="cursor") from None
        hits = []
        for hit in found["hits"]:
            cid = hit["class_id"]
            hits.append(await self.instance_view(index, db, cid, hit["instance_id"], hit["document"], lang)
                        if cid in index.classes else {"id": hit["instance_id"],
                                                      "class": {"id": cid, "label": cid}})
        return self.json({"total": found["total"], "hits": hits, "cursor": found["cursor"],
                          "language": lang})
