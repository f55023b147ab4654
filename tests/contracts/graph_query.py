"""The graph-query contract: every GraphStore answers traversals and paths as a
breadth-first search written here, over generated graphs (hypothesis) with cycles,
self-references, subclasses, reverse hops and filters.

Each example writes a fresh database into the real store and runs several queries on
it. The tests are synchronous and run each example in its own event loop, with a store
made for that loop (`make_graph`), because hypothesis drives plain functions.
"""
import asyncio
from collections import deque

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spice.domain.graph_query import parse_query
from spice.domain.messages import AggregateType, EventType
from spice.domain.ontology import OntologyClass
from spice.domain.schema import Schema
from spice.stores.graph_query import run_paths, run_traversal
from tests.contracts.graph_store import db_name, event

CLASSES = [
    {"id": "A", "properties": [{"name": "n", "type": "integer"}, {"name": "name", "type": "string"}],
     "relationships": [{"predicate": "link", "target": "A", "cardinality": "n:m"},
                       {"predicate": "owner", "target": "C"}]},
    {"id": "B", "parents": ["A"]},
    {"id": "C", "properties": [{"name": "n", "type": "integer"}],
     "relationships": [{"predicate": "peer", "target": "C", "cardinality": "n:m"}]},
]
SCHEMA = Schema({c["id"]: OntologyClass.model_validate(c) for c in CLASSES})
FAMILY = {"A": ["A", "B"], "B": ["B"], "C": ["C"]}
# (level classes) -> [(predicate, direction, classes reached)]
MOVES = {
    "AB": [("link", "forward", "AB"), ("link", "reverse", "AB"), ("owner", "forward", "C")],
    "C": [("peer", "forward", "C"), ("peer", "reverse", "C"), ("owner", "reverse", "AB")],
}


@st.composite
def graphs(draw):
    sizes = {"A": draw(st.integers(1, 6)), "B": draw(st.integers(0, 4)), "C": draw(st.integers(1, 5))}
    ids = {c: [f"{c.lower()}{i}" for i in range(n)] for c, n in sizes.items()}
    ab = ids["A"] + ids["B"]
    nodes = {}
    for cls in ("A", "B", "C"):
        for i in ids[cls]:
            data = {"n": draw(st.integers(0, 9))}
            if cls == "C":
                data["peer"] = draw(st.lists(st.sampled_from(ids["C"]), max_size=3))
            else:
                data["name"] = draw(st.sampled_from(["Ann", "bob", "ANNA"]))
                data["link"] = draw(st.lists(st.sampled_from(ab), max_size=3))
                if draw(st.booleans()):
                    data["owner"] = draw(st.sampled_from(ids["C"]))
            nodes[(cls, i)] = data
    return nodes


@st.composite
def traversals(draw):
    start = draw(st.sampled_from(["A", "B", "C"]))
    level = "C" if start == "C" else "AB"
    body = {"start": {"class_id": start}, "hops": [],
            "limits": {"max_nodes": 10_000, "max_edges": 50_000,
                       # generous: a loaded runner and a slow server must not cut a small graph
                       "timeout_ms": 30_000}}
    if draw(st.booleans()):
        body["start"]["where"] = {"property": "n", "op": draw(st.sampled_from(["gt", "lte"])),
                                  "value": draw(st.integers(0, 9))}
    for _ in range(draw(st.integers(1, 3))):
        predicate, direction, reached = draw(st.sampled_from(MOVES[level]))
        hop = {"predicate": predicate, "direction": direction}
        if reached == "AB" and draw(st.booleans()):
            hop["class_id"] = "B"
        if reached == "AB" and draw(st.booleans()):
            hop["where"] = {"property": "name", "op": "eq", "value": "ann"}
        body["hops"].append(hop)
        level = reached
    return body


def edges_of(nodes):
    """Every relationship value resolved to the instance it names (ids are unique here)."""
    where = {i: c for c, i in nodes}
    found = set()
    for (cls, i), data in nodes.items():
        for predicate in ("link", "owner", "peer"):
            value = data.get(predicate)
            for target in (value if isinstance(value, list) else [value] if value else []):
                found.add(((cls, i), predicate, (where[target], target)))
    return found


def passes(where, data):
    if where is None:
        return True
    value = data.get(where["property"])
    if where["op"] == "gt":
        return value > where["value"]
    if where["op"] == "lte":
        return value <= where["value"]
    return isinstance(value, str) and value.lower() == where["value"].lower()


def expected_traversal(nodes, body):
    edges = edges_of(nodes)
    start = body["start"]
    frontier = {k for k in nodes if k[0] in FAMILY[start["class_id"]]
                and passes(start.get("where"), nodes[k])}
    depth = {k: 0 for k in frontier}
    taken = set()
    for level, hop in enumerate(body["hops"], start=1):
        allowed = FAMILY.get(hop.get("class_id"), None)
        reached = set()
        for s, p, t in edges:
            if p != hop["predicate"]:
                continue
            here, there = (s, t) if hop["direction"] == "forward" else (t, s)
            if here in frontier and (allowed is None or there[0] in allowed) \
                    and passes(hop.get("where"), nodes[there]):
                reached.add(there)
                taken.add((s, p, t))
                depth.setdefault(there, level)
        frontier = reached
    return depth, taken


def shortest(nodes, source, target, any_direction, max_depth):
    edges = edges_of(nodes)
    distance, queue = {source: 0}, deque([source])
    while queue:
        here = queue.popleft()
        for s, _, t in edges:
            steps = [(s, t)] + ([(t, s)] if any_direction else [])
            for a, b in steps:
                if a == here and b not in distance and distance[here] < max_depth:
                    distance[b] = distance[here] + 1
                    queue.append(b)
    return distance.get(target)


async def write(graph, nodes):
    db = db_name()
    await graph.apply(event(EventType.DATABASE_CREATED, {"name": db}, 1, AggregateType.DATABASE))
    for cls in CLASSES:
        await graph.apply(event(EventType.ONTOLOGY_CLASS_CREATED, {"db": db, "class_id": cls["id"],
                                "class": cls}, 1, AggregateType.ONTOLOGY_CLASS))
    # Instances first, then their relationships: every target exists when a link is written.
    for version, keep_links in ((1, False), (2, True)):
        for cls in ("A", "B", "C"):
            batch = [event(EventType.INSTANCE_CREATED if version == 1 else EventType.INSTANCE_UPDATED, {
                "db": db, "class_id": c, "instance_id": i,
                "data": data if keep_links else {"n": data["n"]}}, version, AggregateType.INSTANCE)
                for (c, i), data in nodes.items() if c == cls]
            if batch:
                await graph.apply_many(batch)
    return db


QUERIES = settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))


class GraphQueryContract:
    examples = QUERIES

    @QUERIES
    @given(graphs(), st.lists(traversals(), min_size=1, max_size=6))
    def test_traversals_agree_with_breadth_first_search(self, make_graph, nodes, bodies):
        async def check():
            async with make_graph() as graph:
                db = await write(graph, nodes)
                for body in bodies:
                    answer = await run_traversal(graph, db, parse_query(body, SCHEMA))
                    depth, taken = expected_traversal(nodes, body)
                    assert not answer["truncated"], (body, answer.get("cut"))
                    got = {(n["class_id"], n["instance_id"]): n["depth"] for n in answer["nodes"]}
                    assert got == depth, body
                    assert {((e["from"]["class_id"], e["from"]["instance_id"]), e["predicate"],
                             (e["to"]["class_id"], e["to"]["instance_id"]))
                            for e in answer["edges"]} == taken, body
        asyncio.run(check())

    @QUERIES
    @given(graphs(), st.data())
    def test_paths_are_shortest_and_real(self, make_graph, nodes, data):
        keys = sorted(nodes)
        pairs = data.draw(st.lists(st.tuples(st.sampled_from(keys), st.sampled_from(keys)),
                                   min_size=1, max_size=4))
        direction = data.draw(st.sampled_from(["forward", "any"]))

        async def check():
            async with make_graph() as graph:
                db = await write(graph, nodes)
                edges = edges_of(nodes)
                for source, target in pairs:
                    body = {"paths": {"from": {"class_id": source[0], "instance_id": source[1]},
                                      "to": {"class_id": target[0], "instance_id": target[1]},
                                      "max_depth": 4, "direction": direction, "limit": 100}}
                    answer = await run_paths(graph, db, parse_query(body, SCHEMA))
                    least = shortest(nodes, source, target, direction == "any", 4)
                    if source == target:
                        assert answer["length"] == 0 and answer["paths"] == [[]]
                        continue
                    assert answer["length"] == least, (body, answer)
                    for path in answer["paths"]:
                        assert len(path) == least
                        here = source
                        for step in path:
                            a = (step["from"]["class_id"], step["from"]["instance_id"])
                            b = (step["to"]["class_id"], step["to"]["instance_id"])
                            relation = (a, step["predicate"], b) if step["direction"] == "forward" \
                                else (b, step["predicate"], a)
                            assert a == here and relation in edges
                            here = b
                        assert here == target
        asyncio.run(check())

    def test_limits_cut_between_levels_and_say_where(self, make_graph):
        nodes = {("A", f"a{i}"): {"n": i, "name": "x", "link": [f"a{(i + 1) % 30}", f"a{(i + 7) % 30}"]}
                 for i in range(30)}

        async def check():
            async with make_graph() as graph:
                db = await write(graph, nodes)
                body = {"start": {"class_id": "A", "ids": ["a0"]},
                        "hops": [{"predicate": "link"}] * 4, "limits": {"max_nodes": 5}}
                answer = await run_traversal(graph, db, parse_query(body, SCHEMA))
                assert answer["truncated"] and answer["cut"]["limit"] == "max_nodes"
                assert len(answer["nodes"]) == 5
                body["limits"] = {"max_edges": 3}
                answer = await run_traversal(graph, db, parse_query(body, SCHEMA))
                assert answer["cut"]["limit"] == "max_edges" and len(answer["edges"]) == 3
        asyncio.run(check())
