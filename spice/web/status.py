"""Command status: Redis first, the Faust table (on the worker that owns the key) after,
the event store last. An API process has no table: it asks a worker (spice/web/workers.py)."""
from __future__ import annotations

import time
import uuid
from typing import Any

from faust.web import Request, Response
from redis.exceptions import RedisError

from spice.app import app
from spice.domain.envelope import domain_event_id
from spice.domain.messages import SUCCESS_EVENTS, CommandType, EventType, database_of
from spice.web import workers
from spice.web.auth import Access
from spice.web.http import ApiView, HttpError, query_number
from spice.web.waiting import outcome_response, wait_for_outcome


def check_command_id(command_id: str) -> str:
    try:
        return str(uuid.UUID(command_id))
    except ValueError:
        raise HttpError(400, f"'{command_id}' is not a valid command id (a UUID)",
                        field="command_id") from None


def status_body(doc: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {
        "command_id": doc["command_id"], "status": doc.get("status"),
        "result": {"progress": doc.get("progress"), "history": doc.get("history", []),
                   "result": doc.get("result"), "projected": bool(doc.get("projected"))},
        "command_type": doc.get("command_type"), "db": doc.get("db"),
        "aggregate_id": doc.get("aggregate_id"), "created_at": doc.get("created_at"),
        "updated_at": doc.get("updated_at")}
    if doc.get("error"):
        body["error"] = doc["error"]
    return body


def unknown(command_id: str) -> HttpError:
    return HttpError(404, f"command '{command_id}' is unknown (or older than the status TTL)",
                     field="command_id")


def visible(view: ApiView, request: Request, command_id: str,
            doc: dict[str, Any] | None) -> dict[str, Any]:
    """A command of a database the caller may not read is answered as unknown: its
    existence is not the caller's business."""
    if doc is None or not view.principal(request).can_see(doc.get("db")):
        raise unknown(command_id)
    return doc


class CommandStatusView(ApiView):
    access = {"get": Access.AUTHENTICATED}

    async def get(self, request: Request, command_id: str, **_: str) -> Response:
        command_id = check_command_id(command_id)
        try:
            doc = await self.runtime.status.get(command_id)
        except (RedisError, OSError):
            doc = None
        if doc is not None:
            return self.json({**status_body(visible(self, request, command_id, doc)), "source": "redis"})
        if not self.runtime.tables.here:
            answer = await workers.forward(self, request)
            if answer is not None:
                return answer
        return await self.runtime.tables.routed(  # type: ignore[no-any-return]
            self, request, command_id, lambda: self.from_table(request, command_id))

    async def from_table(self, request: Request, command_id: str) -> Response:
        doc = self.runtime.tables.status(command_id)
        if doc is None:
            stored = visible(self, request, command_id, await stored_command(self, command_id))
            return self.json({**status_body(stored), "source": "event_store"})
        return self.json({**status_body(visible(self, request, command_id, doc)), "source": "table",
                          "worker": str(app.conf.canonical_url)})


async def stored_command(view: ApiView, command_id: str) -> dict[str, Any] | None:
    """What the event store, the source of truth, says of a command no status records
    (its status expired or was flushed, or it was produced straight to a topic): its
    outcome event if there is one (COMPLETED or FAILED), else PENDING (accepted)."""
    store = view.runtime.event_store
    envelope = await store.get(command_id)
    if envelope is None or envelope.kind != "command":
        return None
    at = envelope.occurred_at.timestamp()
    doc: dict[str, Any] = {
        "command_id": command_id, "status": "PENDING", "created_at": at, "updated_at": at,
        "command_type": envelope.metadata.get("command_type"), "db": database_of(envelope),
        "history": [{"status": "PENDING", "timestamp": at, "message": "stored"}]}
    outcomes = [(EventType.COMMAND_FAILED, "FAILED")]
    try:
        success = SUCCESS_EVENTS.get(CommandType(doc["command_type"]))
    except ValueError:  # BULK_CREATE_INSTANCES: one event per item, not one per command
        success = None
    if success is not None:
        outcomes.insert(0, (success, "COMPLETED"))
    for event_type, status in outcomes:
        event = await store.get(domain_event_id(command_id, event_type, envelope.aggregate_id))
        if event is not None:
            doc.update(status=status, updated_at=at, result={"event_ids": [event.event_id]})
            if status == "FAILED":
                doc["error"] = event.data.get("error")
            doc["history"].append({"status": status, "timestamp": at,
                                   "message": f"from the event store: {event.event_type}"})
            break
    return doc


class CommandWaitView(ApiView):
    access = {"get": Access.AUTHENTICATED}

    async def get(self, request: Request, command_id: str, **_: str) -> Response:
        command_id = check_command_id(command_id)
        started = time.monotonic()
        timeout = query_number(request, "timeout", 30.0, 0.1, 600.0)
        query_number(request, "poll_interval", 0.5, 0.05, 60.0)
        try:
            known = await self.runtime.status.get(command_id)
        except (RedisError, OSError):
            known = self.runtime.tables.status(command_id)
        if known is None:
            known = await stored_command(self, command_id)
            if known is not None and known["status"] in ("COMPLETED", "FAILED") and \
                    request.query.get("wait", "applied") == "applied":
                # Long finished (its status expired): the event store has the outcome.
                visible(self, request, command_id, known)
                return outcome_response(self, command_id, known, timeout, started)
        visible(self, request, command_id, known)
        return await wait_for_outcome(self, command_id, timeout, started,
                                      request.query.get("wait", "applied"))


class CommandCountsView(ApiView):
    access = {"get": Access.OPS}

    async def get(self, request: Request) -> Response:
        return await self.runtime.tables.or_forward(  # type: ignore[no-any-return]
            self, request, self.counts)

    async def counts(self) -> Response:
        from spice.web.metrics import probe

        tables = self.runtime.tables.module()
        return self.json({**tables.counts(), "rates": tables.rates(),
                          "window_seconds": tables.WINDOW_SECONDS,
                          "dlq_depth": await probe.dlq_depth(),
                          "worker": str(app.conf.canonical_url),
                          "partitions_here": sorted({tp.partition for tp in app.assignor.assigned_actives()
                                                     if tp.topic == tables.status_topic.get_topic_name()})})
