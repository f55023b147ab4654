"""Graph analysis over classes: inheritance cycles, relationship cycles, paths.

Everything is linear in classes + edges (iterative DFS, Tarjan's SCC), except
path enumeration, which is bounded by depth and a result limit.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Literal

from spice.domain.ontology import OntologyClass

Graph = Mapping[str, Iterable[str]]


def inheritance_graph(classes: Iterable[OntologyClass]) -> dict[str, list[str]]:
    return {c.id: list(c.parents) for c in classes}


def relationship_graph(classes: Iterable[OntologyClass]) -> dict[str, list[tuple[str, str]]]:
    """class -> [(predicate, target)]"""
    return {c.id: [(r.predicate, r.target) for r in c.relationships] for c in classes}


def find_cycle(graph: Graph) -> list[str] | None:
    """One cycle as a path [a, b, ..., a], or None. Iterative three-colour DFS."""
    white, grey, black = 0, 1, 2
    colour: dict[str, int] = {}
    for root in graph:
        if colour.get(root, white) != white:
            continue
        stack: list[tuple[str, Iterator[str]]] = [(root, iter(graph.get(root, ())))]
        path = [root]
        colour[root] = grey
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                colour[node] = black
                stack.pop()
                path.pop()
                continue
            state = colour.get(child, white)
            if state == grey:
                return path[path.index(child):] + [child]
            if state == white:
                colour[child] = grey
                stack.append((child, iter(graph.get(child, ()))))
                path.append(child)
    return None


def strongly_connected(graph: Graph) -> list[list[str]]:
    """Tarjan's algorithm, iteratively (deep ontologies must not hit the recursion limit)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(root, iter(graph.get(root, ())))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(graph.get(child, ()))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(component)
    return components


@dataclass(frozen=True)
class RelationshipCycle:
    kind: Literal["self", "direct", "indirect"]
    path: list[str]  # class ids, first == last


def relationship_cycles(classes: Iterable[OntologyClass]) -> list[RelationshipCycle]:
    edges = relationship_graph(classes)
    targets = {node: {t for _, t in out} for node, out in edges.items()}
    found: list[RelationshipCycle] = []
    for node in sorted(targets):
        if node in targets[node]:
            found.append(RelationshipCycle("self", [node, node]))
        for other in sorted(targets[node]):
            if node < other and node in targets.get(other, ()):
                found.append(RelationshipCycle("direct", [node, other, node]))
    for component in strongly_connected({n: sorted(t) for n, t in targets.items()}):
        if len(component) < 3:
            continue
        members = set(component)
        sub = {n: [t for t in sorted(targets.get(n, ())) if t in members and t != n]
               for n in sorted(members)}
        cycle = _long_cycle(sub)
        if cycle:
            found.append(RelationshipCycle("indirect", cycle))
    return found


def _long_cycle(graph: dict[str, list[str]]) -> list[str] | None:
    """A cycle of three or more classes inside one strongly connected component."""
    for root in graph:
        path = [root]
        on_path = {root}
        iters = [iter(graph[root])]
        while iters:
            child = next(iters[-1], None)
            if child is None:
                iters.pop()
                on_path.discard(path.pop())
                continue
            if child in on_path:
                start = path.index(child)
                if len(path) - start >= 3:
                    return path[start:] + [child]
                continue
            if len(path) < len(graph):
                path.append(child)
                on_path.add(child)
                iters.append(iter(graph[child]))
    return None


def find_paths(classes: Iterable[OntologyClass], source: str, target: str,
               max_depth: int = 5, limit: int = 100) -> list[list[tuple[str, str]]]:
    """Simple relationship paths source -> target as [(class, predicate), ...], shortest first."""
    edges = relationship_graph(classes)
    paths: list[list[tuple[str, str]]] = []
    frontier: list[tuple[str, list[tuple[str, str]], frozenset[str]]] = [
        (source, [], frozenset({source}))]
    for _ in range(max_depth):
        next_frontier = []
        for node, path, seen in frontier:
            for predicate, child in edges.get(node, ()):
                step = path + [(node, predicate)]
                if child == target:
                    paths.append(step)
                    if len(paths) >= limit:
                        return paths
                elif child not in seen:
                    next_frontier.append((child, step, seen | {child}))
        frontier = next_frontier
    return paths
