"""Structured queries over the read model: a class, a filter (spice.domain.query), sort
keys, a field projection and a page, checked against the schema.

Sort keys compare as their type does (numbers as numbers, dates as instants, text
case-insensitively, money by currency then amount); documents without the key come
last whatever the order, and the instance id breaks ties, so pages never overlap.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from spice.domain import ids
from spice.domain.errors import FieldError, ValidationFailed
from spice.domain.graph_query import descendants
from spice.domain.query import Where, filterable_members, member_kind, parse_where
from spice.domain.schema import Schema

SORTABLE = frozenset({"text", "integer", "decimal", "date", "datetime", "money", "boolean"})
MAX_SORT_KEYS = 5
MAX_LIMIT = 200


@dataclass(frozen=True)
class SortKey:
    path: tuple[str, ...]
    kind: str
    descending: bool


@dataclass(frozen=True)
class StructuredQuery:
    classes: tuple[str, ...]
    where: Where | None
    sort: tuple[SortKey, ...]
    fields: tuple[str, ...] | None
    limit: int
    cursor: str | None


def parse_structured(body: dict[str, Any], schema: Schema) -> StructuredQuery:
    allowed = {"class_id", "where", "sort", "fields", "limit", "cursor", "include_subclasses"}
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise ValidationFailed([FieldError(k, "unknown field; known: " + ", ".join(sorted(allowed)))
                                for k in unknown])
    class_id: str = body.get("class_id")  # type: ignore[assignment]  # checked below
    problem = ids.class_id_problem(class_id)
    if problem:
        raise ValidationFailed(FieldError("class_id", problem))
    if class_id not in schema.classes:
        raise ValidationFailed(FieldError("class_id", f"class '{class_id}' does not exist"))
    subclasses = body.get("include_subclasses", True)
    if not isinstance(subclasses, bool):
        raise ValidationFailed(FieldError("include_subclasses", "must be true or false"))
    classes = descendants(schema, class_id) if subclasses else [class_id]
    where = parse_where(body.get("where"), schema, classes, "where")
    members = filterable_members(schema, classes)
    sort = []
    raw_sort = body.get("sort", [])
    if not isinstance(raw_sort, list) or len(raw_sort) > MAX_SORT_KEYS:
        raise ValidationFailed(FieldError("sort", f"must be a list of at most {MAX_SORT_KEYS} keys"))
    for i, key in enumerate(raw_sort):
        field = f"sort[{i}]"
        if isinstance(key, str):  # "age" or "-age"
            key = {"property": key.lstrip("-"), "order": "desc" if key.startswith("-") else "asc"}
        if not isinstance(key, dict) or set(key) - {"property", "order"}:
            raise ValidationFailed(FieldError(field, "must be {\"property\", \"order\"} or a name"))
        name = key.get("property")
        head, _, part = str(name).partition(".")
        if not isinstance(name, str) or head not in members:
            raise ValidationFailed(FieldError(f"{field}.property", f"unknown property '{str(name)[:100]}'"))
        kind, _ = member_kind(members[head], part, f"{field}.property")
        if kind not in SORTABLE:
            raise ValidationFailed(FieldError(f"{field}.property", f"'{name}' ({kind}) cannot be sorted on"))
        order = key.get("order", "asc")
        if order not in ("asc", "desc"):
            raise ValidationFailed(FieldError(f"{field}.order", "must be 'asc' or 'desc'"))
        sort.append(SortKey((head, part) if part else (head,), kind, order == "desc"))
    fields = body.get("fields")
    if fields is not None:
        if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
            raise ValidationFailed(FieldError("fields", "must be a list of property names"))
        for i, name in enumerate(fields):
            if name not in members:
                raise ValidationFailed(FieldError(f"fields[{i}]", f"unknown property '{name[:100]}'"))
    limit = body.get("limit", 20)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise ValidationFailed(FieldError("limit", f"must be an integer from 1 to {MAX_LIMIT}"))
    cursor = body.get("cursor")
    if cursor is not None and not isinstance(cursor, str):
        raise ValidationFailed(FieldError("cursor", "must be a cursor this API returned"))
    return StructuredQuery(tuple(classes), where, tuple(sort),
                           tuple(fields) if fields is not None else None, limit, cursor)


def project(document: dict[str, Any], fields: tuple[str, ...] | None) -> dict[str, Any]:
    if fields is None:
        return document
    return {name: document[name] for name in fields if name in document}
