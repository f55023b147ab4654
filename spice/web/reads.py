"""Reads from the graph store, and the legacy direct write."""
from __future__ import annotations

import time

from faust.web import Request, Response

from spice.domain import ids
from spice.domain.ontology import OntologyClass
from spice.domain.parsing import parse
from spice.web import history
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


def etag(version: int) -> dict[str, str]:
    """The sequence number as an ETag: send it back as If-Match (or expected_seq) to write
    only over this version."""
    return {"ETag": f'"{version}"', "X-Spice-Version": str(version)}


async def require_db(view: ApiView, db: str) -> str:
    ids.check_database_name(db)
    if not await view.runtime.graph.database_exists(db):
        raise HttpError(404, f"database '{db}' does not exist", field="db")
    return db


class ClassListView(ApiView):
    async def get(self, request: Request, db: str) -> Response:
        if "as_of" in request.query:  # time travel: also to before the database was deleted
            ids.check_database_name(db)
            return await history.schema_as_of(self, db, request.query["as_of"])
        await require_db(self, db)
        return self.json({"db": db, "classes": await self.runtime.graph.list_classes(db)})


class ClassView(ApiView):
    async def get(self, request: Request, db: str, class_id: str) -> Response:
        if "as_of" in request.query:
            ids.check_database_name(db)
            ids.check_class_id(class_id)
            return await history.class_as_of(self, db, class_id, request.query["as_of"])
        await require_db(self, db)
        ids.check_class_id(class_id)
        found = await self.runtime.graph.class_version(db, class_id)
        if found is None:
            raise HttpError(404, f"class '{class_id}' does not exist in '{db}'", field="class_id")
        cls, version = found
        # A replace (PUT) takes `version` back as its expected sequence number, so a
        # read-modify-write of this body is safe as it stands.
        return self.json({**cls, "version": version}, headers=etag(version))


class LegacyCreateClassView(ApiView):
    """The seed's direct class write, kept for older clients with its answer (201, no
    command id to follow). It takes an admin grant on the database, and the change goes
    through the command pipeline like any other (a create, or an update of an existing
    class), so the event store records it with its actor and search and the BFF follow;
    the answer comes once it is applied."""

    access = {"post": Access.ADMIN}
    TIMEOUT_SECONDS = 30.0

    async def post(self, request: Request, db: str) -> Response:
        from spice.web import writes
        from spice.web.waiting import outcome_response, wait_status

        await require_db(self, db)
        started = time.monotonic()
        cls = parse(OntologyClass, await json_body(request), "class")
        exists = await self.runtime.graph.get_class(db, cls.id) is not None
        build = writes.update_class if exists else writes.create_class
        write = await build(request, {"db": db, "class_id": cls.id})
        stored = await writes.submit(self, request, write)
        doc = await wait_status(self, stored.command_id, self.TIMEOUT_SECONDS, "applied")
        if doc is None or doc.get("status") != "COMPLETED":
            return outcome_response(self, stored.command_id, doc, self.TIMEOUT_SECONDS, started)
        return self.json({"status": "success", "class_id": cls.id,
                          "warning": "legacy route: use /ontology/{db}/sync/create"}, status=201)


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
        if "as_of" in request.query:
            ids.check_database_name(db)
            ids.check_class_id(class_id)
            ids.check_instance_id(instance_id)
            return await history.instance_as_of(self, db, class_id, instance_id,
                                                request.query["as_of"])
        await require_db(self, db)
        ids.check_class_id(class_id)
        ids.check_instance_id(instance_id)
        found = await self.runtime.graph.instance_version(db, class_id, instance_id)
        if found is None:
            raise HttpError(404, f"instance '{instance_id}' of '{class_id}' does not exist",
                            field="instance_id")
        data, version = found
        return self.json({"db": db, "class_id": class_id, "instance_id": instance_id, "data": data,
                          "version": version}, headers=etag(version))
