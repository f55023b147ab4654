"""History as pure functions: the state of a class, an instance or a database schema
folded from its events, the change one event made, and JSON Patch (RFC 6902) between
two states.

Every success event carries the whole new state (a class definition, an instance's
data), so the state at a version is the last such event at or before it; a delete of
the aggregate, or of its database, ends it. The store hands these functions the
events in their recorded order (spice/stores/audit.py); nothing here reads a store.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from spice.domain.messages import EventType

CLASS_EVENTS = {EventType.ONTOLOGY_CLASS_CREATED, EventType.ONTOLOGY_CLASS_UPDATED}
INSTANCE_EVENTS = {EventType.INSTANCE_CREATED, EventType.INSTANCE_UPDATED}
ENDS = {EventType.ONTOLOGY_CLASS_DELETED, EventType.INSTANCE_DELETED, EventType.DATABASE_DELETED}


@dataclass(frozen=True)
class Fact:
    """One recorded success event, as the fold needs it."""

    event_type: str
    data: dict[str, Any]


def state_of(fact: Fact) -> dict[str, Any] | None:
    """The aggregate's state right after this event (None: it does not exist)."""
    kind = EventType(fact.event_type)
    if kind in CLASS_EVENTS:
        return dict(fact.data["class"])
    if kind in INSTANCE_EVENTS:
        return dict(fact.data["data"])
    if kind in ENDS:
        return None
    raise ValueError(f"{fact.event_type} does not change a class or an instance")


def fold(facts: Iterable[Fact]) -> dict[str, Any] | None:
    """A class's or an instance's state after its events (and its database's deletes)."""
    state: dict[str, Any] | None = None
    for fact in facts:
        state = state_of(fact)
    return state


def fold_schema(facts: Iterable[Fact]) -> dict[str, dict[str, Any]]:
    """A database's classes after its class events and database deletes, by class id."""
    classes: dict[str, dict[str, Any]] = {}
    for fact in facts:
        kind = EventType(fact.event_type)
        if kind is EventType.DATABASE_DELETED:
            classes.clear()
        elif kind in CLASS_EVENTS:
            classes[fact.data["class"]["id"]] = dict(fact.data["class"])
        elif kind is EventType.ONTOLOGY_CLASS_DELETED:
            classes.pop(fact.data["class_id"], None)
    return dict(sorted(classes.items()))


def database_exists(facts: Iterable[Fact]) -> bool:
    """Whether the database exists after its events (the Database aggregate's)."""
    exists = False
    for fact in facts:
        if fact.event_type == EventType.DATABASE_CREATED:
            exists = True
        elif fact.event_type == EventType.DATABASE_DELETED:
            exists = False
    return exists


# ---- what changed -----------------------------------------------------------------


def _members(cls: dict[str, Any] | None, kind: str, key: str) -> dict[str, Any]:
    return {m[key]: m for m in (cls or {}).get(kind, []) if isinstance(m, dict) and key in m}


def _compare(before: dict[str, Any], after: dict[str, Any]) -> dict[str, list[str]]:
    return {"added": sorted(set(after) - set(before)),
            "removed": sorted(set(before) - set(after)),
            "changed": sorted(k for k in set(before) & set(after) if before[k] != after[k])}


def class_changes(before: dict[str, Any] | None, after: dict[str, Any] | None) -> dict[str, Any]:
    """Properties and relationships added/removed/changed (by name and predicate), and the
    class's other fields that changed (label, description, parent, ...)."""
    fields = (set(before or {}) | set(after or {})) - {"properties", "relationships"}
    return {"properties": _compare(_members(before, "properties", "name"),
                                   _members(after, "properties", "name")),
            "relationships": _compare(_members(before, "relationships", "predicate"),
                                      _members(after, "relationships", "predicate")),
            "fields": sorted(f for f in fields if (before or {}).get(f) != (after or {}).get(f))}


def instance_changes(before: dict[str, Any] | None, after: dict[str, Any] | None
                     ) -> dict[str, Any]:
    """Property values added, removed and changed (with the value before and after)."""
    before, after = before or {}, after or {}
    return {"added": {k: after[k] for k in sorted(set(after) - set(before))},
            "removed": {k: before[k] for k in sorted(set(before) - set(after))},
            "changed": {k: {"from": before[k], "to": after[k]}
                        for k in sorted(set(before) & set(after)) if before[k] != after[k]}}


# ---- JSON Patch (RFC 6902) --------------------------------------------------------


def pointer(parts: Iterable[str | int]) -> str:
    """A JSON Pointer (RFC 6901): '~' and '/' in a name are escaped."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def json_patch(before: Any, after: Any) -> list[dict[str, Any]]:
    """The operations that turn `before` into `after`. Objects are compared member by
    member; an array or a scalar that differs is replaced whole (short, and never
    wrong about positions). A state that does not exist is null."""
    ops: list[dict[str, Any]] = []
    _diff(before, after, [], ops)
    return ops


def _diff(before: Any, after: Any, path: list[str | int], ops: list[dict[str, Any]]) -> None:
    if type(before) is type(after) and before == after:
        return
    if isinstance(before, dict) and isinstance(after, dict):
        for key in sorted(before):
            if key not in after:
                ops.append({"op": "remove", "path": pointer([*path, key])})
        for key in sorted(after):
            if key not in before:
                ops.append({"op": "add", "path": pointer([*path, key]), "value": after[key]})
            else:
                _diff(before[key], after[key], [*path, key], ops)
        return
    ops.append({"op": "replace", "path": pointer(path), "value": after})
