"""Cycles and strongly connected components of a directed graph, iteratively (deep
ontologies must not hit the recursion limit), linear in nodes + edges. Used for the
inheritance check of every class write and by spice.domain.analysis."""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

Graph = Mapping[str, Iterable[str]]


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
