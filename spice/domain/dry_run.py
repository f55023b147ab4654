"""Dry-run validation of class writes: what the commands would do, without doing it.

A list of class definitions is checked in order, each against the schema as the ones
before it would leave it (so a set of new classes that refer to each other validates as
a set), by the same decision function the command workers use: the errors are the ones
the commands would fail with. Nothing is stored, nothing is sent.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any

from spice.domain.analysis import cycles
from spice.domain.decisions import OntologyState, decide_class
from spice.domain.errors import DomainError, FieldError, ValidationFailed
from spice.domain.messages import CommandType
from spice.domain.ontology import OntologyClass
from spice.domain.schema import Schema

MAX_CLASSES = 500


def dry_run(db: str, schema: Schema, bodies: list[Any]) -> dict[str, Any]:
    """`bodies`: class definitions, each created if its id is new, else replaced."""
    if len(bodies) > MAX_CLASSES:
        raise ValidationFailed(FieldError("classes", f"at most {MAX_CLASSES} classes per dry run"))
    current = schema
    results = []
    for index, body in enumerate(bodies):
        class_id = body.get("id") if isinstance(body, dict) else None
        exists = isinstance(class_id, str) and class_id in current.classes
        command = CommandType.UPDATE_ONTOLOGY_CLASS if exists else CommandType.CREATE_ONTOLOGY_CLASS
        data: dict[str, Any] = {"class": body, **({"class_id": class_id} if exists else {})}
        result: dict[str, Any] = {"index": index, "class_id": class_id,
                                  "operation": "update" if exists else "create"}
        try:
            [event] = decide_class(command, data, OntologyState(db, True, current), None)
        except DomainError as error:
            result.update(valid=False, errors=_errors(error))
            results.append(result)
            continue
        cls = OntologyClass.model_validate(event.data["class"])
        before = schema.classes.get(cls.id)
        result.update(valid=True, errors=[], change=class_change(before, cls))
        results.append(result)
        current = replace(current, classes={**current.classes, cls.id: cls})
    introduced = _new_cycles(schema, current)
    return {"db": db, "valid": all(r["valid"] for r in results), "results": results,
            "cycles_introduced": [c.to_dict() for c in introduced]}


def _errors(error: DomainError) -> list[dict[str, str]]:
    if isinstance(error, ValidationFailed):
        return [{"field": e.field, "message": e.message} for e in error.errors]
    return [{"field": error.field or "class", "message": error.message, "code": error.code}]


def _new_cycles(before: Schema, after: Schema) -> list[Any]:
    def signature(cycle: Any) -> tuple[Any, ...]:
        return tuple((s.source, s.predicate, s.target) for s in cycle.steps)

    known = {signature(c) for c in cycles(before)[0]}
    return [c for c in cycles(after)[0] if signature(c) not in known]


def class_change(before: OntologyClass | None, after: OntologyClass) -> dict[str, Any]:
    """What replacing `before` by `after` changes: class fields, and properties and
    relationships added, removed or changed (with both versions)."""
    new = after.model_dump(mode="json", exclude_defaults=True)
    if before is None:
        return {"created": True, "properties": {"added": [p.name for p in after.properties],
                                                "removed": [], "changed": []},
                "relationships": {"added": [r.predicate for r in after.relationships],
                                  "removed": [], "changed": []}, "fields": []}
    old = before.model_dump(mode="json", exclude_defaults=True)
    fields = sorted(k for k in set(old) | set(new)
                    if k not in ("properties", "relationships") and old.get(k) != new.get(k))
    return {"created": False, "fields": fields,
            "properties": _members(old.get("properties", []), new.get("properties", []), "name"),
            "relationships": _members(old.get("relationships", []), new.get("relationships", []),
                                      "predicate")}


def _members(old: list[dict[str, Any]], new: list[dict[str, Any]], key: str) -> dict[str, Any]:
    before = {m[key]: m for m in old}
    after = {m[key]: m for m in new}
    return {"added": [k for k in after if k not in before],
            "removed": [k for k in before if k not in after],
            "changed": [{key: k, "before": before[k], "after": after[k]}
                        for k in after if k in before and before[k] != after[k]]}
