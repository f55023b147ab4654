"""Instance graph queries, parsed and planned against the schema.

A query starts from instances of a class (and its subclasses), optionally only some ids
and those matching a filter, then follows hops: each along one relationship, forward
(from the instance holding the value to the one it names) or reverse, each with its
own class restriction and filter (spice.domain.query). The `paths` form asks for the
shortest relationship paths between two instances instead.

Planning resolves everything the schema decides before any store is asked: which
classes each level can hold, and for each hop its routes (predicate, holding class,
target class, rank). A relationship value names an instance of the relationship's
target class or of a subclass; when several of them hold the id, the target class
comes first, then subclasses breadth-first (`rank`), as the writes resolve it. Every
problem is a 422 naming the field.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from spice.domain import ids
from spice.domain.errors import FieldError, ValidationFailed
from spice.domain.query import Where, parse_where
from spice.domain.schema import Schema

MAX_HOPS = 6
MAX_START_IDS = 1000
LIMITS = {"max_nodes": (1000, 1, 10_000), "max_edges": (5000, 1, 50_000),
          "timeout_ms": (5000, 10, 30_000)}
MAX_PATHS = 100

Direction = Literal["forward", "reverse"]


@dataclass(frozen=True)
class Route:
    predicate: str
    source: str  # the class holding the relationship value
    target: str  # a class the value may name
    rank: int  # resolution order among the targets of one (source, predicate)


@dataclass(frozen=True)
class Hop:
    direction: Direction
    routes: tuple[Route, ...]
    classes: tuple[str, ...]  # what this hop may reach
    where: Where | None


@dataclass(frozen=True)
class Limits:
    max_nodes: int
    max_edges: int
    timeout_ms: int


@dataclass(frozen=True)
class TraversalPlan:
    start_classes: tuple[str, ...]
    start_ids: tuple[str, ...] | None
    start_where: Where | None
    hops: tuple[Hop, ...]
    limits: Limits
    include_documents: bool


@dataclass(frozen=True)
class PathsPlan:
    source: tuple[str, str]  # (class id, instance id)
    target: tuple[str, str]
    max_depth: int
    forward: tuple[Route, ...]  # every route the paths may take forward
    reverse: tuple[Route, ...]  # and against the relationship (direction "any")
    limit: int
    limits: Limits
    include_documents: bool


def descendants(schema: Schema, class_id: str) -> list[str]:
    """The class and every subclass, breadth-first: the resolution order of a value."""
    order, seen = [class_id], {class_id}
    for current in order:
        for sub in schema.subclasses(current):
            if sub not in seen:
                seen.add(sub)
                order.append(sub)
    return order


def forward_routes(schema: Schema, sources: list[str], predicate: str | None) -> list[Route]:
    routes = []
    for source in sources:
        for rel in schema.effective_relationships(source):
            if predicate is None or rel.predicate == predicate:
                routes += [Route(rel.predicate, source, target, rank)
                           for rank, target in enumerate(descendants(schema, rel.target))]
    return routes


def reverse_routes(schema: Schema, targets: list[str], predicate: str | None) -> list[Route]:
    wanted = set(targets)
    return [r for r in forward_routes(schema, sorted(schema.classes), predicate) if r.target in wanted]


def parse_query(body: dict[str, Any], schema: Schema) -> TraversalPlan | PathsPlan:
    unknown = sorted(set(body) - {"start", "hops", "paths", "limits", "include_documents"})
    if unknown:
        raise ValidationFailed([FieldError(k, "unknown field") for k in unknown])
    limits = _limits(body.get("limits"))
    documents = body.get("include_documents", False)
    if not isinstance(documents, bool):
        raise ValidationFailed(FieldError("include_documents", "must be true or false"))
    if "paths" in body:
        if "start" in body or "hops" in body:
            raise ValidationFailed(FieldError("paths", "a query has either start and hops, or paths"))
        return _paths(body["paths"], schema, limits, documents)
    if "start" not in body:
        raise ValidationFailed(FieldError("start", "is required (or send 'paths')"))
    start = _object(body["start"], "start", {"class_id", "ids", "where"})
    start_class = _class(schema, start.get("class_id"), "start.class_id")
    start_ids = None
    if "ids" in start:
        raw = start["ids"]
        if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_START_IDS:
            raise ValidationFailed(FieldError("start.ids", f"must be a list of 1 to {MAX_START_IDS} "
                                              "instance ids"))
        start_ids = tuple(_instance_id(v, f"start.ids[{i}]") for i, v in enumerate(raw))
    classes = descendants(schema, start_class)
    where = parse_where(start.get("where"), schema, classes, "start.where")
    hops_raw = body.get("hops", [])
    if not isinstance(hops_raw, list):
        raise ValidationFailed(FieldError("hops", "must be a list of hops"))
    if len(hops_raw) > MAX_HOPS:
        raise ValidationFailed(FieldError("hops", f"at most {MAX_HOPS} hops (got {len(hops_raw)})"))
    hops = []
    for i, raw in enumerate(hops_raw):
        hop = _hop(raw, schema, classes, f"hops[{i}]")
        hops.append(hop)
        classes = list(hop.classes)
    return TraversalPlan(tuple(descendants(schema, start_class)), start_ids, where, tuple(hops),
                         limits, documents)


def _hop(raw: Any, schema: Schema, level: list[str], field: str) -> Hop:
    hop = _object(raw, field, {"predicate", "direction", "class_id", "where"})
    predicate = hop.get("predicate")
    if not isinstance(predicate, str) or not predicate:
        raise ValidationFailed(FieldError(f"{field}.predicate", "must be a relationship predicate"))
    direction = hop.get("direction", "forward")
    if direction not in ("forward", "reverse"):
        raise ValidationFailed(FieldError(f"{field}.direction", "must be 'forward' or 'reverse'"))
    if direction == "forward":
        routes = forward_routes(schema, level, predicate)
        reached = [r.target for r in routes]
    else:
        routes = reverse_routes(schema, level, predicate)
        reached = [r.source for r in routes]
    if not routes:
        where = "from" if direction == "forward" else "into"
        raise ValidationFailed(FieldError(f"{field}.predicate", f"no relationship '{predicate[:100]}' "
                                          f"leads {where} the classes this hop starts at "
                                          f"({', '.join(level[:10])})"))
    classes = list(dict.fromkeys(reached))
    if "class_id" in hop:
        wanted = set(descendants(schema, _class(schema, hop["class_id"], f"{field}.class_id")))
        classes = [c for c in classes if c in wanted]
        if not classes:
            raise ValidationFailed(FieldError(f"{field}.class_id", f"'{hop['class_id']}' is never "
                                              f"reached by '{predicate}' from here"))
        if direction == "reverse":  # forward keeps every route: the rank order resolves
            routes = [r for r in routes if r.source in classes]
    return Hop(direction, tuple(routes), tuple(classes),
               parse_where(hop.get("where"), schema, classes, f"{field}.where"))


def _paths(raw: Any, schema: Schema, limits: Limits, documents: bool) -> PathsPlan:
    body = _object(raw, "paths", {"from", "to", "max_depth", "direction", "predicates", "limit"})
    ends = []
    for end in ("from", "to"):
        node = _object(body.get(end), f"paths.{end}", {"class_id", "instance_id"})
        ends.append((_class(schema, node.get("class_id"), f"paths.{end}.class_id"),
                     _instance_id(node.get("instance_id"), f"paths.{end}.instance_id")))
    depth = _int(body.get("max_depth", 4), "paths.max_depth", 1, MAX_HOPS)
    limit = _int(body.get("limit", 10), "paths.limit", 1, MAX_PATHS)
    direction = body.get("direction", "forward")
    if direction not in ("forward", "any"):
        raise ValidationFailed(FieldError("paths.direction", "must be 'forward' or 'any'"))
    predicates = body.get("predicates")
    every = forward_routes(schema, sorted(schema.classes), None)
    if predicates is not None:
        known = {r.predicate for r in every}
        if not isinstance(predicates, list) or not predicates:
            raise ValidationFailed(FieldError("paths.predicates", "must be a non-empty list"))
        for i, p in enumerate(predicates):
            if p not in known:
                raise ValidationFailed(FieldError(f"paths.predicates[{i}]",
                                                  f"no class has a relationship '{str(p)[:100]}'"))
        every = [r for r in every if r.predicate in predicates]
    return PathsPlan(ends[0], ends[1], depth, tuple(every),
                     tuple(every) if direction == "any" else (), limit, limits, documents)


def _limits(raw: Any) -> Limits:
    body = _object(raw if raw is not None else {}, "limits", set(LIMITS))
    return Limits(**{name: _int(body.get(name, default), f"limits.{name}", low, high)
                     for name, (default, low, high) in LIMITS.items()})


def _object(raw: Any, field: str, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ValidationFailed(FieldError(field, "must be an object"))
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ValidationFailed(FieldError(f"{field}.{unknown[0]}", "unknown field; known: "
                                          + ", ".join(sorted(allowed))))
    return raw


def _class(schema: Schema, raw: Any, field: str) -> str:
    problem = ids.class_id_problem(raw)
    if problem:
        raise ValidationFailed(FieldError(field, problem))
    if raw not in schema.classes:
        raise ValidationFailed(FieldError(field, f"class '{raw}' does not exist"))
    return str(raw)


def _instance_id(raw: Any, field: str) -> str:
    problem = ids.instance_id_problem(raw)
    if problem:
        raise ValidationFailed(FieldError(field, problem))
    return str(raw)


def _int(raw: Any, field: str, low: int, high: int) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or not low <= raw <= high:
        raise ValidationFailed(FieldError(field, f"must be an integer from {low} to {high}"))
    return raw
