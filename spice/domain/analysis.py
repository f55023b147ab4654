"""Analysis of a database's relationship graph: paths, reachability, cycles, the network.

The graph's nodes are classes; its edges are every class's *effective* relationships
(its own and those it inherits, spice.domain.schema), each from the class to the
relationship's target. Everything is breadth-first or bounded: a route on a
500-class ontology answers in milliseconds, and no input makes the work unbounded
(path and cycle enumeration stop at a depth and a count, and say when they did).
"""
from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from spice.domain.graph import strongly_connected
from spice.domain.ontology import Relationship
from spice.domain.schema import Schema

MAX_DEPTH = 10
MAX_PATHS = 1000
MAX_CYCLES = 1000


@dataclass(frozen=True)
class Edge:
    source: str
    predicate: str
    target: str
    cardinality: str
    required: bool
    inherited_from: str | None  # the ancestor that declares it, None for the class itself

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"from": self.source, "predicate": self.predicate, "to": self.target,
                                "cardinality": self.cardinality, "required": self.required}
        if self.inherited_from:
            body["inherited_from"] = self.inherited_from
        return body


def edges(schema: Schema) -> dict[str, list[Edge]]:
    """class -> its outgoing edges, sorted by predicate; every class is a key."""
    out: dict[str, list[Edge]] = {}
    for class_id in sorted(schema.classes):
        declared = {r.predicate for r in schema.classes[class_id].relationships}
        found = []
        for rel in schema.effective_relationships(class_id):
            owner = None if rel.predicate in declared else _declaring(schema, class_id, rel)
            found.append(Edge(class_id, rel.predicate, rel.target, rel.cardinality, rel.required, owner))
        out[class_id] = sorted(found, key=lambda e: (e.predicate, e.target))
    return out


def _declaring(schema: Schema, class_id: str, rel: Relationship) -> str | None:
    for ancestor in schema.ancestors(class_id):
        if rel in schema.classes[ancestor].relationships:
            return ancestor
    return None


Path = list[Edge]


def find_paths(schema: Schema, source: str, target: str, *, mode: Literal["shortest", "all"],
               max_depth: int = 5, limit: int = 100) -> tuple[list[Path], bool]:
    """Relationship paths source -> target: (paths, truncated).

    `shortest`: every path of the least length (breadth-first, so the first level that
    reaches the target is the answer). `all`: every simple path (no class twice) of at
    most `max_depth` relationships, shortest first. Both stop at `limit` paths, and say
    so. A path from a class to itself is a cycle through it (length one or more).
    """
    graph = edges(schema)
    paths: list[Path] = []
    frontier: list[tuple[str, Path, frozenset[str]]] = [(source, [], frozenset({source}))]
    for _ in range(max_depth):
        next_frontier = []
        for node, path, seen in frontier:
            for edge in graph.get(node, ()):
                step = path + [edge]
                if edge.target == target:
                    paths.append(step)
                    if len(paths) >= limit:
                        return paths, True
                elif edge.target not in seen:
                    next_frontier.append((edge.target, step, seen | {edge.target}))
        if paths and mode == "shortest":
            return paths, False
        frontier = next_frontier
        if not frontier:
            break
    return paths, False


def reachable(schema: Schema, source: str, max_depth: int = MAX_DEPTH) -> dict[str, tuple[int, Path]]:
    """Every class reachable from `source` in at most `max_depth` relationships, with its
    distance and one shortest path (breadth-first, predicates in order)."""
    graph = edges(schema)
    found: dict[str, tuple[int, Path]] = {}
    queue: deque[tuple[str, Path]] = deque([(source, [])])
    seen = {source}
    while queue:
        node, path = queue.popleft()
        if len(path) >= max_depth:
            continue
        for edge in graph.get(node, ()):
            if edge.target in seen:
                continue
            seen.add(edge.target)
            found[edge.target] = (len(path) + 1, path + [edge])
            queue.append((edge.target, path + [edge]))
    return found


Severity = Literal["error", "warning", "info"]


@dataclass(frozen=True)
class Cycle:
    kind: Literal["self", "direct", "indirect"]
    steps: Path  # steps[i].target == steps[i + 1].source, last target == first source

    @property
    def classes(self) -> list[str]:
        return [s.source for s in self.steps] + [self.steps[0].source]

    @property
    def severity(self) -> Severity:
        """`error`: every relationship on the cycle is required, so no instance on it can
        ever be created (each needs another to exist first). `warning`: some are required,
        so instances must be created in an order and deleted in the reverse one. `info`:
        all optional, a legitimate recursive structure (a hierarchy, a network)."""
        required = sum(s.required for s in self.steps)
        return "error" if required == len(self.steps) else "warning" if required else "info"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "severity": self.severity, "classes": self.classes,
                "relationships": [s.to_dict() for s in self.steps]}


def cycles(schema: Schema, max_length: int = MAX_DEPTH, limit: int = MAX_CYCLES
           ) -> tuple[list[Cycle], bool]:
    """Every elementary relationship cycle of at most `max_length` relationships:
    (cycles, truncated). `self`: a class relating to itself; `direct`: two classes
    relating to each other; `indirect`: three or more. Each cycle is listed once,
    starting at its least class id; parallel relationships (two predicates between the
    same classes) make distinct cycles. Only strongly connected components are searched."""
    graph = edges(schema)
    found: list[Cycle] = []
    components = strongly_connected({n: [e.target for e in out] for n, out in graph.items()})
    for component in sorted(sorted(c) for c in components):
        members = set(component)
        for start in component:
            for steps in _cycles_from(graph, start, members, max_length):
                kind: Literal["self", "direct", "indirect"] = (
                    "self" if len(steps) == 1 else "direct" if len(steps) == 2 else "indirect")
                found.append(Cycle(kind, steps))
                if len(found) >= limit:
                    return found, True
    return found, False


def _cycles_from(graph: dict[str, list[Edge]], start: str, members: set[str],
                 max_length: int) -> Iterator[Path]:
    """Elementary cycles through `start` whose other classes all sort after it (so each
    cycle is produced once, from its least class), depth-first and bounded."""
    path: Path = []
    on_path = {start}
    stack: list[Iterator[Edge]] = [iter(graph[start])]
    while stack:
        edge = next(stack[-1], None)
        if edge is None:
            stack.pop()
            if path:
                on_path.discard(path.pop().target)
            continue
        if edge.target == start:
            yield path + [edge]
            continue
        if (edge.target in members and edge.target > start and edge.target not in on_path
                and len(path) + 1 < max_length):
            path.append(edge)
            on_path.add(edge.target)
            stack.append(iter(graph[edge.target]))


def network(schema: Schema, hubs: int = 10) -> dict[str, Any]:
    """The relationship network in numbers: degrees, hubs, isolated classes, and the
    weakly connected components (classes linked by relationships either way)."""
    graph = edges(schema)
    out_degree = {c: len(out) for c, out in graph.items()}
    in_degree = dict.fromkeys(graph, 0)
    neighbours: dict[str, set[str]] = {c: set() for c in graph}
    for source, out in graph.items():
        for edge in out:
            if edge.target in in_degree:
                in_degree[edge.target] += 1
                neighbours[source].add(edge.target)
                neighbours[edge.target].add(source)
    degree = {c: in_degree[c] + out_degree[c] for c in graph}
    components = _components(neighbours)
    ranked = sorted(graph, key=lambda c: (-degree[c], c))
    return {
        "classes": len(graph),
        "relationships": sum(out_degree.values()),
        "declared_relationships": sum(len(c.relationships) for c in schema.classes.values()),
        "degrees": {c: {"in": in_degree[c], "out": out_degree[c]} for c in sorted(graph)},
        "hubs": [{"class_id": c, "degree": degree[c], "in": in_degree[c], "out": out_degree[c]}
                 for c in ranked[:hubs] if degree[c] > 0],
        "isolated": sorted(c for c in graph if degree[c] == 0),
        "components": [{"size": len(c), "classes": c} for c in components],
    }


def _components(neighbours: dict[str, set[str]]) -> list[list[str]]:
    """Connected components, largest first (ties by least class id), members sorted."""
    seen: set[str] = set()
    components = []
    for root in sorted(neighbours):
        if root in seen:
            continue
        seen.add(root)
        queue, members = deque([root]), [root]
        while queue:
            for other in neighbours[queue.popleft()]:
                if other not in seen:
                    seen.add(other)
                    members.append(other)
                    queue.append(other)
        components.append(sorted(members))
    return sorted(components, key=lambda c: (-len(c), c[0]))
