"""History, time travel, diffs and the audit log, read from the audit index
(spice/stores/audit.py) and folded by spice/domain/history.py.

Versions of a class or an instance are its sequence numbers; versions of a database
schema are positions in the database's audit chain; any of them can also be given as
a time (ISO 8601, the time the store recorded the event). A database a caller may not
read answers 404 here, whether it exists or not: its history is nobody else's
business, not even that it has one.
"""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from faust.web import Request, Response

from spice.domain import ids
from spice.domain.history import (
    CLASS_EVENTS,
    INSTANCE_EVENTS,
    Fact,
    class_changes,
    database_exists,
    fold,
    fold_schema,
    instance_changes,
    json_patch,
    state_of,
)
from spice.domain.json_values import string_problem
from spice.domain.messages import EventType, class_aggregate, instance_aggregate
from spice.stores.audit import EntryFilter
from spice.web.auth import Access
from spice.web.http import ApiView, HttpError, query_number

Point = int | datetime
OUTCOMES = ("requested", "succeeded", "failed")
KINDS = {"command": "command", "event": "domain"}
TIME_EXAMPLE = "2026-12-05T10:00:00Z"


def parse_point(raw: str, name: str) -> Point:
    """A version (a non-negative integer) or a time (ISO 8601; without an offset, UTC)."""
    text = raw.strip()
    if text.isascii() and text.isdigit() and len(text) <= 18:  # not "³", which int() refuses
        return int(text)
    if "T" in text:  # an offset's '+' sent unencoded in a query string arrives as ' '
        text = text.replace(" ", "+")
    try:
        stamp = datetime.fromisoformat(text)
    except ValueError:
        raise HttpError(400, f"'{name}' must be a version (a non-negative integer) or an "
                        f"ISO 8601 time such as {TIME_EXAMPLE}", field=name) from None
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)


def optional_time(request: Request, name: str) -> datetime | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    point = parse_point(raw, name)
    if not isinstance(point, datetime):
        raise HttpError(400, f"'{name}' must be an ISO 8601 time such as {TIME_EXAMPLE}",
                        field=name)
    return point


def iso(stamp: datetime | None) -> str | None:
    return stamp.astimezone(UTC).isoformat().replace("+00:00", "Z") if stamp else None


def entry(row: dict[str, Any], with_db: bool = False) -> dict[str, Any]:
    """One history or audit entry: who, when, what, and for a success event the change
    it made to its class or instance."""
    data = _json(row["data"])
    metadata = _json(row["metadata"])
    out: dict[str, Any] = {
        "chain_position": row["chain_position"], "recorded_at": iso(row["recorded_at"]),
        "occurred_at": iso(row["occurred_at"]),
        "kind": "command" if row["kind"] == "command" else "event",
        "type": row["event_type"], "command_type": row["command_type"],
        "command_id": row["command_id"], "actor": row["actor"],
        "aggregate_type": row["aggregate_type"], "aggregate_id": row["aggregate_id"],
        "sequence_number": row["sequence_number"], "outcome": row["outcome"]}
    if with_db:
        out = {"db": row["db"], **out}
    if "revert_to" in metadata:
        out["revert_to"] = metadata["revert_to"]
    if row["outcome"] == "failed":
        out["error"] = data.get("error")
    elif row["outcome"] == "succeeded":
        kind = EventType(row["event_type"]) if row["event_type"] in EventType.__members__ else None
        previous = (state_of(Fact(row["previous_type"], _json(row["previous"])))
                    if row.get("previous") is not None else None)
        current = state_of(Fact(row["event_type"], data)) if kind not in (
            EventType.DATABASE_CREATED, EventType.DATABASE_DELETED, None) else None
        if kind in CLASS_EVENTS or kind is EventType.ONTOLOGY_CLASS_DELETED:
            out["changes"] = class_changes(previous, current)
        elif kind in INSTANCE_EVENTS or kind is EventType.INSTANCE_DELETED:
            out["changes"] = instance_changes(previous, current)
    return out


def _json(value: Any) -> Any:
    return orjson.loads(value) if isinstance(value, str | bytes) else value


class HistoryView(ApiView):
    """Read access to the database; any refusal is a 404 (see the module's note)."""

    access = {"get": Access.READ}

    async def guard(self, request: Any, method: str) -> None:
        try:
            await super().guard(request, method)
        except HttpError as error:
            db = request.match_info.get("db")
            if error.status == 403 and db:
                raise HttpError(404, f"database '{db}' does not exist", field="db") from None
            raise

    async def listing(self, request: Request, where: EntryFilter, **extra: Any) -> Response:
        limit = int(query_number(request, "limit", 50, 1, 500))
        order = request.query.get("order", "desc")
        if order not in ("asc", "desc"):
            raise HttpError(400, "'order' must be asc or desc", field="order")
        try:
            rows, cursor = await self.runtime.audit.entries(
                where, descending=order == "desc", cursor=request.query.get("cursor"), limit=limit)
        except ValueError as error:
            raise HttpError(400, str(error), field="cursor") from None
        return self.json({**extra, "order": order,
                          "entries": [entry(r, with_db=where.db is None) for r in rows],
                          "cursor": cursor})


async def point_state(runtime: Any, db: str, aggregate_id: str, point: Point, name: str
                  ) -> tuple[dict[str, Any] | None, int | None]:
    """A class's or an instance's state at a version or a time, and its version."""
    audit = runtime.audit
    if isinstance(point, int):
        last = await runtime.event_store.last_sequence(aggregate_id)
        if point > last:
            raise HttpError(404, f"version {point} does not exist (the latest is {last})",
                            field=name)
        found = await audit.version_fact(aggregate_id, point)
        if found is None:
            return None, None
        fact, version = found
        return fold([fact]), version
    facts, version = await audit.facts_at_time(db, aggregate_id, point)
    return fold(facts), version


async def schema_state(runtime: Any, db: str, point: Point, name: str = "as_of"
                       ) -> tuple[bool, dict[str, Any], int]:
    """(whether the database existed, its classes, the chain position reached)."""
    audit = runtime.audit
    if isinstance(point, int):
        head = await audit.head(db)
        last = head["chain_position"] if head else 0
        if point > last:
            raise HttpError(404, f"position {point} does not exist in the history of "
                            f"'{db}' (the latest is {last})", field=name)
        facts, reached = await audit.schema_facts(db, position=point)
    else:
        facts, reached = await audit.schema_facts(db, at=point)
    database = [f for f in facts if f.event_type in (EventType.DATABASE_CREATED,
                                                      EventType.DATABASE_DELETED)]
    return database_exists(database), fold_schema(facts), reached


def aggregate_filter(request: Request, db: str, aggregate_id: str) -> EntryFilter:
    kind = request.query.get("kind")
    if kind is not None and kind not in KINDS:
        raise HttpError(400, "'kind' must be command or event", field="kind")
    return EntryFilter(db, aggregate_id=aggregate_id, kind=KINDS.get(kind or ""))


class ClassHistoryView(HistoryView):
    async def get(self, request: Request, db: str, class_id: str) -> Response:
        ids.check_database_name(db)
        ids.check_class_id(class_id)
        return await self.listing(request, aggregate_filter(request, db, class_aggregate(db, class_id)),
                                  db=db, class_id=class_id)


class InstanceHistoryView(HistoryView):
    async def get(self, request: Request, db: str, class_id: str, instance_id: str) -> Response:
        ids.check_database_name(db)
        ids.check_class_id(class_id)
        ids.check_instance_id(instance_id)
        aggregate = instance_aggregate(db, class_id, instance_id)
        return await self.listing(request, aggregate_filter(request, db, aggregate), db=db,
                                  class_id=class_id, instance_id=instance_id)


def audit_filter(request: Request, db: str | None) -> EntryFilter:
    outcome = request.query.get("outcome")
    if outcome is not None and outcome not in OUTCOMES:
        raise HttpError(400, f"'outcome' must be one of {', '.join(OUTCOMES)}", field="outcome")
    kind = request.query.get("kind")
    if kind is not None and kind not in KINDS:
        raise HttpError(400, "'kind' must be command or event", field="kind")
    for name in ("actor", "command_type", "aggregate"):
        value = request.query.get(name)
        if value is not None and not 0 < len(value) <= 600:
            raise HttpError(400, f"'{name}' must be 1 to 600 characters", field=name)
        problem = string_problem(value) if value is not None else None
        if problem:  # PostgreSQL text holds no NUL: refused here, not a 500 there
            raise HttpError(400, f"'{name}' {problem}", field=name)
    return EntryFilter(db, aggregate_id=request.query.get("aggregate"),
                       actor=request.query.get("actor"),
                       command_type=request.query.get("command_type"), outcome=outcome,
                       kind=KINDS.get(kind or ""), since=optional_time(request, "since"),
                       until=optional_time(request, "until"))


class DatabaseHistoryView(HistoryView):
    async def get(self, request: Request, db: str) -> Response:
        ids.check_database_name(db)
        return await self.listing(request, audit_filter(request, db), db=db)


class AuditView(HistoryView):
    async def get(self, request: Request, db: str) -> Response:
        ids.check_database_name(db)
        return await self.listing(request, audit_filter(request, db), db=db)


class AuditAllView(HistoryView):
    """Every database's audit log at once: for '*' admins."""

    access = {"get": Access.ADMIN}

    async def get(self, request: Request) -> Response:
        db = request.query.get("db")
        if db is not None:
            ids.check_database_name(db)
        return await self.listing(request, audit_filter(request, db))


class ChainHeadView(HistoryView):
    async def get(self, request: Request, db: str) -> Response:
        ids.check_database_name(db)
        head = await self.runtime.audit.head(db)
        if head is None:
            raise HttpError(404, f"database '{db}' has no recorded history", field="db")
        return self.json({"db": db, "chain_position": head["chain_position"],
                          "chain_hash": head["chain_hash"], "recorded_at": iso(head["recorded_at"]),
                          "algorithm": "sha256(previous link hex || sha256(stored line) hex)"})


def points(request: Request) -> tuple[Point, Point | None]:
    raw_from = request.query.get("from")
    if raw_from is None:
        raise HttpError(400, "'from' is required: a version or an ISO 8601 time", field="from")
    raw_to = request.query.get("to")
    return parse_point(raw_from, "from"), None if raw_to is None else parse_point(raw_to, "to")


def describe(point: Point, state: dict[str, Any] | None, version: int | None) -> dict[str, Any]:
    return {"requested": _shown(point), "version": version, "exists": state is not None}


class AggregateDiff(HistoryView):
    async def diff(self, request: Request, db: str, aggregate_id: str, **names: str) -> Response:
        start, end = points(request)
        if end is None:
            end = await self.runtime.event_store.last_sequence(aggregate_id)
        before, before_version = await point_state(self.runtime, db, aggregate_id, start, "from")
        after, after_version = await point_state(self.runtime, db, aggregate_id, end, "to")
        return self.json({"db": db, **names, "from": describe(start, before, before_version),
                          "to": describe(end, after, after_version),
                          "format": "JSON Patch (RFC 6902)", "patch": json_patch(before, after)})


class ClassDiffView(AggregateDiff):
    async def get(self, request: Request, db: str, class_id: str) -> Response:
        ids.check_database_name(db)
        ids.check_class_id(class_id)
        return await self.diff(request, db, class_aggregate(db, class_id), class_id=class_id)


class InstanceDiffView(AggregateDiff):
    async def get(self, request: Request, db: str, class_id: str, instance_id: str) -> Response:
        ids.check_database_name(db)
        ids.check_class_id(class_id)
        ids.check_instance_id(instance_id)
        return await self.diff(request, db, instance_aggregate(db, class_id, instance_id),
                               class_id=class_id, instance_id=instance_id)


class SchemaDiffView(HistoryView):
    async def get(self, request: Request, db: str) -> Response:
        ids.check_database_name(db)
        start, end = points(request)
        if end is None:
            head = await self.runtime.audit.head(db)
            end = head["chain_position"] if head else 0
        _, before, before_position = await schema_state(self.runtime, db, start, "from")
        _, after, after_position = await schema_state(self.runtime, db, end, "to")
        return self.json({"db": db, "from": {"requested": _shown(start), "position": before_position},
                          "to": {"requested": _shown(end), "position": after_position},
                          "format": "JSON Patch (RFC 6902) over {class id: class}",
                          "patch": json_patch(before, after)})


def _shown(point: Point) -> Any:
    return iso(point) if isinstance(point, datetime) else point


# ---- time travel on the plain reads (spice/web/reads.py calls these) ---------------


async def class_as_of(view: ApiView, db: str, class_id: str, raw: str) -> Response:
    point = parse_point(raw, "as_of")
    state, version = await point_state(view.runtime, db, class_aggregate(db, class_id), point, "as_of")
    if state is None:
        raise HttpError(404, f"class '{class_id}' did not exist in '{db}' at {_shown(point)}",
                        field="class_id")
    return view.json({**state, "version": version, "as_of": _shown(point)})


async def instance_as_of(view: ApiView, db: str, class_id: str, instance_id: str,
                         raw: str) -> Response:
    point = parse_point(raw, "as_of")
    state, version = await point_state(
        view.runtime, db, instance_aggregate(db, class_id, instance_id), point, "as_of")
    if state is None:
        raise HttpError(404, f"instance '{instance_id}' of '{class_id}' did not exist at "
                        f"{_shown(point)}", field="instance_id")
    return view.json({"db": db, "class_id": class_id, "instance_id": instance_id, "data": state,
                      "version": version, "as_of": _shown(point)})


async def schema_as_of(view: ApiView, db: str, raw: str) -> Response:
    point = parse_point(raw, "as_of")
    exists, classes, position = await schema_state(view.runtime, db, point)
    if not exists:
        raise HttpError(404, f"database '{db}' did not exist at {_shown(point)}", field="db")
    return view.json({"db": db, "classes": list(classes.values()), "position": position,
                      "as_of": _shown(point)})
