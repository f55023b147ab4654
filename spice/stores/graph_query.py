"""Graph queries run over any GraphStore, one level at a time.

The store answers two questions (`query_nodes`, `follow`: spice/stores/graph.py), each
in one statement or request; this module strings them into traversals and path
searches, and enforces the limits. Level by level rather than one recursive statement
for the whole query: a limit that cuts the answer (nodes, edges, time) cuts it between
levels, so the answer holds everything found up to there and says where it stopped;
and every adapter runs the same traversal, so they answer alike by construction, with
the contract suite (tests/contracts/graph_query.py) checking the two questions.
"""
from __future__ import annotations

import asyncio
import time
from typing import Any

from spice.domain.graph_query import PathsPlan, TraversalPlan
from spice.stores.graph import GraphStore, Node, NodeKey, Step


class Answer:
    def __init__(self, plan: TraversalPlan | PathsPlan) -> None:
        self.plan = plan
        self.limits = plan.limits
        self.deadline = time.monotonic() + plan.limits.timeout_ms / 1000
        self.nodes: dict[NodeKey, tuple[int, dict[str, Any]]] = {}
        self.edges: dict[tuple[NodeKey, str, NodeKey], None] = {}
        self.levels: list[dict[str, Any]] = []
        self.cut: dict[str, Any] | None = None

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def stop(self, limit: str, level: int) -> None:
        if self.cut is None:
            self.cut = {"limit": limit, "at_level": level}

    def add_node(self, node: Node, depth: int) -> bool:
        """False when the node limit is reached (the node is then not added)."""
        key = (node[0], node[1])
        if key in self.nodes:
            return True
        if len(self.nodes) >= self.limits.max_nodes:
            self.stop("max_nodes", depth)
            return False
        self.nodes[key] = (depth, node[2])
        return True

    def body(self, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        documents = self.plan.include_documents

        def node(key: NodeKey, depth: int, data: dict[str, Any]) -> dict[str, Any]:
            item: dict[str, Any] = {"class_id": key[0], "instance_id": key[1], "depth": depth}
            if documents:
                item["data"] = data
            return item

        return {"nodes": [node(k, d, data) for k, (d, data) in self.nodes.items()],
                "edges": [{"from": {"class_id": a[0], "instance_id": a[1]}, "predicate": p,
                           "to": {"class_id": b[0], "instance_id": b[1]}} for a, p, b in self.edges],
                "truncated": self.cut is not None, "cut": self.cut, "levels": self.levels,
                **(extra or {})}


async def _timed(answer: Answer, level: int, call: Any, *args: Any) -> Any:
    """`call(*args, seconds left)` within what is left of the time limit; None when it
    ran out (the store is told the time too, so its statement stops as well)."""
    left = answer.remaining()
    if left <= 0:
        answer.stop("timeout_ms", level)
        return None
    try:
        return await asyncio.wait_for(call(*args, left), left)
    except TimeoutError:
        answer.stop("timeout_ms", level)
        return None


async def run_traversal(store: GraphStore, db: str, plan: TraversalPlan) -> dict[str, Any]:
    answer = Answer(plan)
    limits = plan.limits
    started = time.perf_counter()
    ids = list(plan.start_ids) if plan.start_ids is not None else None
    start = await _timed(answer, 0, store.query_nodes, db, list(plan.start_classes), ids,
                         plan.start_where, limits.max_nodes + 1)
    frontier: list[Node] = []
    for node in start or []:
        if not answer.add_node(node, 0):
            break
        frontier.append(node)
    answer.levels.append(_level(0, len(frontier), 0, started))
    for depth, hop in enumerate(plan.hops, start=1):
        if not frontier or answer.cut:
            break
        started = time.perf_counter()
        room = limits.max_edges - len(answer.edges)
        steps: list[Step] | None = await _timed(
            answer, depth, store.follow, db, frontier, hop.direction, list(hop.routes),
            list(hop.classes), hop.where, room + 1)
        if steps is None:
            break
        reached: dict[NodeKey, Node] = {}
        for source, predicate, target, node in steps:
            if (source, predicate, target) not in answer.edges:
                if len(answer.edges) >= limits.max_edges:
                    answer.stop("max_edges", depth)
                    break
                if not answer.add_node(node, depth):
                    break
                answer.edges[(source, predicate, target)] = None
            reached[(node[0], node[1])] = node
        frontier = list(reached.values())
        answer.levels.append(_level(depth, len(frontier), len(steps), started))
    return answer.body()


def _level(depth: int, nodes: int, steps: int, started: float) -> dict[str, Any]:
    return {"depth": depth, "nodes": nodes, "steps": steps,
            "ms": round((time.perf_counter() - started) * 1000, 2)}


async def run_paths(store: GraphStore, db: str, plan: PathsPlan) -> dict[str, Any]:
    """Every shortest path (up to `limit`) from one instance to another, breadth-first:
    each level follows every route from the nodes first reached at the level before.
    A step walks a relationship forward, or (direction "any") against it."""
    answer = Answer(plan)
    ends = []
    for key in (plan.source, plan.target):
        ends.append(await _timed(answer, 0, store.query_nodes, db, [key[0]], [key[1]], None, 1))
    if not ends[0] or not ends[1]:
        missing = "from" if not ends[0] else "to"
        return {"count": 0, "length": None, "paths": [], "missing": missing,
                "truncated": answer.cut is not None, "cut": answer.cut, "levels": []}
    parents: dict[NodeKey, list[Link]] = {}
    depth_of: dict[NodeKey, int] = {plan.source: 0}
    data: dict[NodeKey, dict[str, Any]] = {plan.source: ends[0][0][2]}
    frontier: list[Node] = list(ends[0])
    depth = 0
    while frontier and plan.target not in depth_of and depth < plan.max_depth:
        depth += 1
        started = time.perf_counter()
        walked: list[tuple[Link, NodeKey, Node]] = []
        for forward, routes in ((True, plan.forward), (False, plan.reverse)):
            if not routes:
                continue
            classes = sorted({r.target if forward else r.source for r in routes})
            got = await _timed(answer, depth, store.follow, db, frontier,
                               "forward" if forward else "reverse", list(routes), classes, None,
                               plan.limits.max_edges + 1)
            if got is None:
                break
            for source, predicate, target, node in got:
                here, there = (source, target) if forward else (target, source)
                walked.append(((here, predicate, there, forward), there, node))
        if answer.cut:
            break
        reached: dict[NodeKey, Node] = {}
        for link, key, node in walked:
            if depth_of.get(key, depth) < depth:
                continue  # reached sooner: not on a shortest path through here
            depth_of[key] = depth
            data[key] = node[2]
            if link not in parents.setdefault(key, []):
                parents[key].append(link)
            reached[key] = node
        if len(depth_of) > plan.limits.max_nodes:
            answer.stop("max_nodes", depth)
            break
        frontier = list(reached.values())
        answer.levels.append(_level(depth, len(frontier), len(walked), started))
    paths = _unwind(parents, plan.source, plan.target, plan.limit) if plan.target in depth_of else []
    body: dict[str, Any] = {
        "count": len(paths), "length": len(paths[0]) if paths else None,
        "truncated": answer.cut is not None, "cut": answer.cut, "levels": answer.levels,
        "paths": [[{"from": {"class_id": a[0], "instance_id": a[1]}, "predicate": p,
                    "to": {"class_id": b[0], "instance_id": b[1]},
                    "direction": "forward" if forward else "reverse"} for a, p, b, forward in path]
                  for path in paths]}
    if plan.include_documents:
        keys = sorted({key for path in paths for link in path for key in (link[0], link[2])})
        body["documents"] = [{"class_id": k[0], "instance_id": k[1], "data": data[k]} for k in keys]
    return body


Link = tuple[NodeKey, str, NodeKey, bool]  # (walked from, predicate, walked to, forward)


def _unwind(parents: dict[NodeKey, list[Link]], source: NodeKey, target: NodeKey,
            limit: int) -> list[list[Link]]:
    """Every shortest path source -> target from the parent links, up to `limit`."""
    paths: list[list[Link]] = []
    stack: list[tuple[NodeKey, list[Link]]] = [(target, [])]
    while stack and len(paths) < limit:
        node, suffix = stack.pop()
        if node == source:
            paths.append(suffix)
            continue
        for link in reversed(parents.get(node, [])):
            stack.append((link[0], [link, *suffix]))
    return paths
