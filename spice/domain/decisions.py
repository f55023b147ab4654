"""Pure decision functions: current state + command -> events, or a typed error.

The workers load the state, call these, and apply what comes back; nothing
here knows about stores, Kafka or time.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from spice.domain import ids
from spice.domain.errors import (
    AlreadyExists,
    DomainError,
    FieldError,
    NotFound,
    ReferencedByOthers,
    ValidationFailed,
)
from spice.domain.graph import find_cycle
from spice.domain.messages import (
    AggregateType,
    CommandType,
    EventDraft,
    EventType,
    class_aggregate,
    instance_aggregate,
)
from spice.domain.ontology import Database, OntologyClass
from spice.domain.parsing import parse
from spice.domain.schema import Schema


@dataclass(frozen=True)
class DatabaseState:
    name: str
    exists: bool


@dataclass(frozen=True)
class OntologyState:
    db: str
    db_exists: bool
    schema: Schema
    instance_counts: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class InstanceState:
    db: str
    db_exists: bool
    schema: Schema
    current: dict[str, Any] | None  # the stored instance data, None if absent


def decide_database(command: CommandType, data: dict[str, Any], state: DatabaseState,
                    seq: int | None) -> list[EventDraft]:
    if command is CommandType.CREATE_DATABASE:
        if state.exists:
            raise AlreadyExists(f"database '{state.name}' already exists", field="name")
        database = parse(Database, {k: v for k, v in data.items() if k != "expected_seq"})
        return [EventDraft(EventType.DATABASE_CREATED, AggregateType.DATABASE, state.name,
                           database.model_dump(mode="json", exclude_defaults=True), seq)]
    if command is CommandType.DELETE_DATABASE:
        if not state.exists:
            raise NotFound(f"database '{state.name}' does not exist", field="db")
        return [EventDraft(EventType.DATABASE_DELETED, AggregateType.DATABASE, state.name,
                           {"name": state.name}, seq)]
    raise ValueError(f"not a database command: {command}")


def _require_db(exists: bool, db: str) -> None:
    if not exists:
        raise NotFound(f"database '{db}' does not exist", field="db")


def _check_class_references(cls: OntologyClass, schema: Schema) -> None:
    known = set(schema.classes) | {cls.id}
    problems = [FieldError(f"parents[{i}]", f"class '{p}' does not exist")
                for i, p in enumerate(cls.parents) if p not in known]
    problems += [FieldError(f"relationships[{i}].target", f"class '{r.target}' does not exist")
                 for i, r in enumerate(cls.relationships) if r.target not in known]
    if problems:
        raise ValidationFailed(problems)
    merged = {**{c: list(k.parents) for c, k in schema.classes.items()}, cls.id: cls.parents}
    cycle = find_cycle(merged)
    if cycle:
        raise ValidationFailed(FieldError(
            "parents", f"inheritance cycle: {' -> '.join(cycle)} (no class may be its own ancestor)"))


def decide_class(command: CommandType, data: dict[str, Any], state: OntologyState,
                 seq: int | None) -> list[EventDraft]:
    _require_db(state.db_exists, state.db)
    if command is CommandType.CREATE_ONTOLOGY_CLASS:
        cls = parse(OntologyClass, data.get("class"), "class")
        if cls.id in state.schema.classes:
            raise AlreadyExists(f"class '{cls.id}' already exists in '{state.db}'", field="class.id")
        _check_class_references(cls, state.schema)
        return [_class_event(EventType.ONTOLOGY_CLASS_CREATED, state.db, cls, seq)]
    class_id = ids.check_class_id(data.get("class_id"))
    if class_id not in state.schema.classes:
        raise NotFound(f"class '{class_id}' does not exist in '{state.db}'", field="class_id")
    if command is CommandType.UPDATE_ONTOLOGY_CLASS:
        body = dict(data.get("class") or {})
        if body.setdefault("id", class_id) != class_id:
            raise ValidationFailed(FieldError("class.id", f"must equal the path's class id '{class_id}'"))
        cls = parse(OntologyClass, body, "class")
        _check_class_references(cls, state.schema)
        return [_class_event(EventType.ONTOLOGY_CLASS_UPDATED, state.db, cls, seq)]
    if command is CommandType.DELETE_ONTOLOGY_CLASS:
        blockers = []
        if state.schema.subclasses(class_id):
            blockers.append(f"subclasses {state.schema.subclasses(class_id)}")
        if state.schema.referrers(class_id):
            blockers.append(f"relationships from {state.schema.referrers(class_id)}")
        if state.instance_counts.get(class_id):
            blockers.append(f"{state.instance_counts[class_id]} instances")
        if blockers:
            raise ReferencedByOthers(
                f"class '{class_id}' is still used by {' and '.join(blockers)}", field="class_id")
        return [EventDraft(EventType.ONTOLOGY_CLASS_DELETED, AggregateType.ONTOLOGY_CLASS,
                           class_aggregate(state.db, class_id),
                           {"db": state.db, "class_id": class_id}, seq)]
    raise ValueError(f"not an ontology command: {command}")


def _class_event(event: EventType, db: str, cls: OntologyClass, seq: int | None) -> EventDraft:
    return EventDraft(event, AggregateType.ONTOLOGY_CLASS, class_aggregate(db, cls.id),
                      {"db": db, "class_id": cls.id,
                       "class": cls.model_dump(mode="json", exclude_defaults=True)}, seq)


def decide_instance(command: CommandType, data: dict[str, Any], state: InstanceState,
                    seq: int | None) -> list[EventDraft]:
    _require_db(state.db_exists, state.db)
    class_id = ids.check_class_id(data.get("class_id"))
    instance_id = ids.check_instance_id(data.get("instance_id"))
    aggregate = instance_aggregate(state.db, class_id, instance_id)
    key = {"db": state.db, "class_id": class_id, "instance_id": instance_id}
    if command is CommandType.CREATE_INSTANCE:
        if state.current is not None:
            raise AlreadyExists(f"instance '{instance_id}' of '{class_id}' already exists",
                                field="instance_id")
        stored = state.schema.validate_instance(class_id, data.get("data"))
        return [EventDraft(EventType.INSTANCE_CREATED, AggregateType.INSTANCE, aggregate,
                           {**key, "data": stored}, seq)]
    if state.current is None:
        raise NotFound(f"instance '{instance_id}' of '{class_id}' does not exist",
                       field="instance_id")
    if command is CommandType.UPDATE_INSTANCE:
        stored = state.schema.validate_instance(class_id, data.get("data"))
        return [EventDraft(EventType.INSTANCE_UPDATED, AggregateType.INSTANCE, aggregate,
                           {**key, "data": stored}, seq)]
    if command is CommandType.DELETE_INSTANCE:
        return [EventDraft(EventType.INSTANCE_DELETED, AggregateType.INSTANCE, aggregate, key, seq)]
    raise ValueError(f"not an instance command: {command}")


@dataclass(frozen=True)
class BulkDecision:
    events: list[EventDraft]
    item_errors: list[dict[str, Any]]


def decide_bulk(items: list[dict[str, Any]], db: str, class_id: str, state: InstanceState,
                existing: set[str]) -> BulkDecision:
    """Each item succeeds or fails on its own; the failures are listed, not fatal."""
    _require_db(state.db_exists, db)
    events: list[EventDraft] = []
    errors: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        instance_id = item.get("instance_id")
        try:
            ids.check_instance_id(instance_id, f"items[{index}].instance_id")
            if instance_id in existing:
                raise AlreadyExists(f"instance '{instance_id}' already exists",
                                    field=f"items[{index}].instance_id")
            stored = state.schema.validate_instance(class_id, item.get("data"),
                                                    f"items[{index}].data")
        except DomainError as error:
            errors.append({"index": index, "instance_id": instance_id, **error.to_dict()})
            continue
        existing.add(str(instance_id))
        events.append(EventDraft(
            EventType.INSTANCE_CREATED, AggregateType.INSTANCE,
            instance_aggregate(db, class_id, str(instance_id)),
            {"db": db, "class_id": class_id, "instance_id": instance_id, "data": stored},
            item.get("sequence_number")))
    return BulkDecision(events, errors)
