"""Write endpoints: each turns a request into a command, then answers 202 (async)
or waits for the outcome (sync)."""
from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from faust.web import Request, Response

from spice import tracing
from spice.domain import ids
from spice.domain.envelope import Envelope
from spice.domain.errors import FieldError, ValidationFailed
from spice.domain.json_values import json_value_problem
from spice.domain.messages import (
    CommandType,
    class_aggregate,
    database_aggregate,
    instance_aggregate,
)
from spice.domain.ontology import Database, OntologyClass
from spice.domain.parsing import parse
from spice.handlers.submit import CommandSubmitter
from spice.settings import get_settings
from spice.web.auth import ANONYMOUS, Access
from spice.web.bodies import BulkCreate, InstanceCreate, InstanceUpdate
from spice.web.http import ApiView, HttpError, json_body, optional_int, query_number
from spice.web.waiting import wait_for_outcome


@dataclass(frozen=True)
class Write:
    command: CommandType
    aggregate_id: str
    data: dict[str, Any]
    db: str
    expected_seq: int | None = None
    metadata: dict[str, Any] | None = None  # recorded with the command (revert_to)


Builder = Callable[[Request, dict[str, str]], Awaitable[Write]]


def _expected_seq(request: Request, body: dict[str, Any] | None = None) -> int | None:
    """`expected_seq` (query or body) or `If-Match` (the ETag a read returned); both at
    once must agree."""
    value = request.query.get("expected_seq")
    if value is None and body is not None:
        value = body.pop("expected_seq", None)
    expected = optional_int(value, "expected_seq")
    header = request.headers.get("If-Match")
    if header is None:
        return expected
    tag = header.strip().removeprefix("W/").strip('"')
    if not (tag.isascii() and tag.isdigit()) or len(tag) > 18:
        raise HttpError(400, "If-Match must be an ETag a read returned (a quoted sequence "
                        "number such as \"3\")", field="If-Match")
    if expected is not None and expected != int(tag):
        raise HttpError(400, f"If-Match ({tag}) and expected_seq ({expected}) disagree",
                        field="If-Match")
    return int(tag)


async def create_database(request: Request, match: dict[str, str]) -> Write:
    body = await json_body(request)
    database = parse(Database, body)
    return Write(CommandType.CREATE_DATABASE, database_aggregate(database.name),
                 database.model_dump(mode="json", exclude_none=True), database.name)


async def delete_database(request: Request, match: dict[str, str]) -> Write:
    db = ids.check_database_name(match["db"])
    return Write(CommandType.DELETE_DATABASE, database_aggregate(db), {"name": db}, db,
                 _expected_seq(request))


async def create_class(request: Request, match: dict[str, str]) -> Write:
    db = ids.check_database_name(match["db"])
    body = await json_body(request)
    expected = _expected_seq(request, body)
    cls = parse(OntologyClass, body, "class")
    return Write(CommandType.CREATE_ONTOLOGY_CLASS, class_aggregate(db, cls.id),
                 {"db": db, "class": body}, db, expected)


async def update_class(request: Request, match: dict[str, str]) -> Write:
    db = ids.check_database_name(match["db"])
    class_id = ids.check_class_id(match["class_id"])
    body = await json_body(request)
    expected = _expected_seq(request, body)
    read_version = optional_int(body.pop("version", None), "version")  # what a read returned
    expected = expected if expected is not None else read_version
    if body.setdefault("id", class_id) != class_id:
        raise ValidationFailed(FieldError("class.id", f"must equal the path's class id '{class_id}'"))
    parse(OntologyClass, body, "class")
    return Write(CommandType.UPDATE_ONTOLOGY_CLASS, class_aggregate(db, class_id),
                 {"db": db, "class_id": class_id, "class": body}, db, expected)


async def delete_class(request: Request, match: dict[str, str]) -> Write:
    db = ids.check_database_name(match["db"])
    class_id = ids.check_class_id(match["class_id"])
    return Write(CommandType.DELETE_ONTOLOGY_CLASS, class_aggregate(db, class_id),
                 {"db": db, "class_id": class_id}, db, _expected_seq(request))


async def _instance_write(command: CommandType, request: Request, db: str, class_id: str,
                          instance_id: str | None) -> Write:
    """Create (instance id in the body) and update (in the path) take the same body, parsed
    with the models the OpenAPI document shows (spice/web/bodies.py)."""
    body = await json_body(request)
    expected = _expected_seq(request, body)
    if instance_id is None:
        created = parse(InstanceCreate, body)
        instance_id, data = ids.check_instance_id(created.instance_id), created.data
    else:
        data = parse(InstanceUpdate, body).data
    return Write(command, instance_aggregate(db, class_id, instance_id),
                 {"db": db, "class_id": class_id, "instance_id": instance_id, "data": data},
                 db, expected)


async def create_instance(request: Request, match: dict[str, str]) -> Write:
    db, class_id = ids.check_database_name(match["db"]), ids.check_class_id(match["class_id"])
    return await _instance_write(CommandType.CREATE_INSTANCE, request, db, class_id, None)


async def update_instance(request: Request, match: dict[str, str]) -> Write:
    db, class_id = ids.check_database_name(match["db"]), ids.check_class_id(match["class_id"])
    instance_id = ids.check_instance_id(match["instance_id"])
    return await _instance_write(CommandType.UPDATE_INSTANCE, request, db, class_id, instance_id)


async def delete_instance(request: Request, match: dict[str, str]) -> Write:
    db, class_id = ids.check_database_name(match["db"]), ids.check_class_id(match["class_id"])
    instance_id = ids.check_instance_id(match["instance_id"])
    return Write(CommandType.DELETE_INSTANCE, instance_aggregate(db, class_id, instance_id),
                 {"db": db, "class_id": class_id, "instance_id": instance_id}, db,
                 _expected_seq(request))


async def bulk_create(request: Request, match: dict[str, str]) -> Write:
    db, class_id = ids.check_database_name(match["db"]), ids.check_class_id(match["class_id"])
    body = await json_body(request)
    items = body.get("items")
    limit = get_settings().max_bulk_items
    if isinstance(items, list) and len(items) > limit:  # before parsing them all
        raise HttpError(413, f"at most {limit} items per request (MAX_BULK_ITEMS)", field="items")
    parsed = parse(BulkCreate, body)
    return Write(CommandType.BULK_CREATE_INSTANCES, f"{db}:{class_id}",
                 {"db": db, "class_id": class_id,
                  "items": [item.model_dump() for item in parsed.items]}, db)


def actor_of(view: ApiView, request: Request) -> str:
    """The authenticated principal; with authentication off, X-Actor or 'anonymous'."""
    principal = view.principal(request)
    if principal is ANONYMOUS:
        actor = request.headers.get("X-Actor", "anonymous")
        if len(actor) > 200 or json_value_problem(actor) is not None:
            raise HttpError(400, "X-Actor must be at most 200 characters of text", field="X-Actor")
        return actor
    return principal.name


def idempotency_scope(view: ApiView, request: Request) -> str:
    """Whose Idempotency-Keys these are: one key or token subject, never a name two
    principals could share."""
    principal = view.principal(request)
    return actor_of(view, request) if principal is ANONYMOUS else principal.bucket


async def submit(view: ApiView, request: Request, write: Write) -> Envelope:
    """Append the command and mark it PENDING: what a 202 promises."""
    submitter = CommandSubmitter(view.runtime.event_store, view.runtime.status)
    return await submitter.submit(
        write.command, write.aggregate_id, write.data, actor=actor_of(view, request),
        db=write.db, expected_seq=write.expected_seq, scope=idempotency_scope(view, request),
        idempotency_key=request.headers.get("Idempotency-Key"),
        metadata={**(write.metadata or {}), "traceparent": tracing.for_command(request.headers)})


class WriteView(ApiView):
    builders: dict[str, Builder] = {}
    sync = False

    def allowed_methods(self) -> set[str]:
        return {method.upper() for method in self.builders}

    async def build(self, request: Request, match: dict[str, str], method: str) -> Write:
        return await self.builders[method](request, match)

    async def _write(self, request: Request, match: dict[str, str], method: str) -> Response:
        started = time.monotonic()
        write = await self.build(request, match, method)
        if self.sync:  # validate the wait parameters before anything is stored
            timeout = query_number(request, "timeout", 30.0, 0.1, 600.0)
            query_number(request, "poll_interval", 0.5, 0.05, 60.0)
        stored = await submit(self, request, write)
        if not self.sync:
            return self.json({"command_id": stored.command_id, "status": "PENDING",
                              "sequence_number": stored.sequence_number}, status=202)
        return await wait_for_outcome(self, stored.command_id, timeout, started,
                                      request.query.get("wait", "applied"))

    async def post(self, request: Request, **match: str) -> Response:
        return await self._write(request, match, "post")

    async def put(self, request: Request, **match: str) -> Response:
        return await self._write(request, match, "put")

    async def delete(self, request: Request, **match: str) -> Response:
        return await self._write(request, match, "delete")


def write_view(name: str, sync: bool = False, access: Access = Access.WRITE,
               **builders: Builder) -> type[WriteView]:
    return type(name, (WriteView,), {"builders": builders, "sync": sync,
                                     "access": {method: access for method in builders}})
