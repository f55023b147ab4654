"""Reads from the graph store, and the legacy direct write."""
from __future__ import annotations

from faust.web import Request, Response

from spice.domain import ids
from spice.domain.ontology import OntologyClass
from spice.domain.parsing import parse
from spice.web.auth import Access
from spice.web.http import ApiView, HttpError, json_body, query_number


class DatabaseListView(ApiView):
    access = {"get": Access.AUTHENTICATED}

    async def get(self, request: Request) -> Response:
        principal = self.principal(request)
        databases = [d for d in await self.runtime.graph.list_databases()
                     if principal.can_see(d.get("name"))]
        return self.json({"databases": databases})


class DatabaseExistsView(ApiView):
    async def get(self, request: Request, db: str) -> Response:
        ids.check_database_name(db)
        return self.json({"db": db, "exists": await self.runtime.graph.database_exists(db)})


async def require_db(view: ApiView, db: str) -> str:
    ids.check_database_name(db)
    if not await view.runtime.graph.database_exists(db):
        raise HttpError(404, f"database '{db}' does not exist", field="db")
    return db


class ClassListView(ApiView):
    async def get(self, request: Request, db: str) -> Response:
        await require_db(self, db)
        return self.json({"db": db, "classes": await self.runtime.graph.list_classes(db)})


class ClassView(ApiView):
    async def get(self, request: Request, db: str, class_id: str) -> Response:
        await require_db(self, db)
        ids.check_class_id(class_id)
        cls = await self.runtime.graph.get_class(db, class_id)
        if cls is None:
            raise HttpError(404, f"class '{class_id}' does not exist in '{db}'", field="class_id")
        return self.json(cls)


class LegacyCreateClassView(ApiView):
    """Writes the graph store directly: no command, no event, no status. Kept for
    older clients only; it bypasses the event store, so a rebuild will not see it."""

    async def post(self, request: Request, db: str) -> Response:
        await require_db(self, db)
        cls = parse(OntologyClass, await json_body(request), "class")
        await self.runtime.graph.put_class_direct(db, cls.model_dump(mode="json", exclude_defaults=True))
        return self.json({"status": "success", "class_id": cls.id,
                          "warning": "legacy direct write: not event-sourced, not tracked"}, status=201)


class InstanceListView(ApiView):
    async def get(self, request: Request, db: str, class_id: str) -> Response:
        await require_db(self, db)
        ids.check_class_id(class_id)
        limit = int(query_number(request, "limit", 100, 1, 1000))
        after = request.query.get("after")
        items = await self.runtime.graph.list_instances(db, class_id, limit, after)
        next_after = items[-1]["instance_id"] if len(items) == limit else None
        return self.json({"db": db, "class_id": class_id, "instances": items, "next": next_after})


class InstanceView(ApiView):
    async def get(self, request: Request, db: str, class_id: str, instance_id: str) -> Response:
        await require_db(self, db)
        ids.check_class_id(class_id)
        ids.check_instance_id(instance_id)
        data = await self.runtime.graph.get_instance(db, class_id, instance_id)
        if data is None:
            raise HttpError(404, f"instance '{instance_id}' of '{class_id}' does not exist",
                            field="instance_id")
        return self.json({"db": db, "class_id": class_id, "instance_id": instance_id, "data": data})
