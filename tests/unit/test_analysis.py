"""Schema analysis against independent computations over generated ontologies: the edges
are read off `Schema.effective_relationships` here, and paths, reachability, cycles and
components are found by brute force written in this file."""
from collections import deque

from hypothesis import given, settings
from hypothesis import strategies as st

from spice.domain import analysis
from spice.domain.ontology import OntologyClass
from spice.domain.schema import Schema

NAMES = [f"C{i}" for i in range(7)]


@st.composite
def schemas(draw):
    n = draw(st.integers(1, len(NAMES)))
    names = NAMES[:n]
    classes = {}
    for i, name in enumerate(names):
        parents = draw(st.lists(st.sampled_from(names[:i]), max_size=2, unique=True)) if i else []
        targets = draw(st.lists(st.sampled_from(names), max_size=3))
        rels = [{"predicate": f"r{j}", "target": t, "required": draw(st.booleans())}
                for j, t in enumerate(targets)]
        classes[name] = OntologyClass(id=name, parents=parents, relationships=rels)
    return Schema(classes)


def edge_list(schema):
    return {(c, r.predicate, r.target) for c in schema.classes
            for r in schema.effective_relationships(c)}


def simple_paths(schema, source, target, max_depth):
    edges = edge_list(schema)
    found = []

    def walk(node, path, seen):
        if len(path) == max_depth:
            return
        for (s, p, t) in sorted(edges):
            if s != node:
                continue
            if t == target:
                found.append(path + [(s, p, t)])
            elif t not in seen:
                walk(t, path + [(s, p, t)], seen | {t})

    walk(source, [], {source})
    return found


def as_triples(path):
    return [(e.source, e.predicate, e.target) for e in path]


@settings(max_examples=200, deadline=None)
@given(schemas(), st.data())
def test_paths_are_every_simple_path_and_shortest_is_their_least_length(schema, data):
    source = data.draw(st.sampled_from(sorted(schema.classes)))
    target = data.draw(st.sampled_from(sorted(schema.classes)))
    depth = data.draw(st.integers(1, 5))
    expected = simple_paths(schema, source, target, depth)
    every, truncated = analysis.find_paths(schema, source, target, mode="all", max_depth=depth,
                                           limit=10_000)
    assert not truncated
    assert sorted(map(as_triples, every)) == sorted(expected)
    assert [len(p) for p in every] == sorted(len(p) for p in every)
    shortest, _ = analysis.find_paths(schema, source, target, mode="shortest", max_depth=depth)
    least = min((len(p) for p in expected), default=None)
    assert sorted(map(as_triples, shortest)) == sorted(p for p in expected if len(p) == least)


def test_path_enumeration_stops_at_its_limit_and_says_so():
    rels = [{"predicate": f"p{i}", "target": "B"} for i in range(5)]
    schema = Schema({"A": OntologyClass(id="A", relationships=rels), "B": OntologyClass(id="B")})
    paths, truncated = analysis.find_paths(schema, "A", "B", mode="all", limit=3)
    assert len(paths) == 3 and truncated


@settings(max_examples=200, deadline=None)
@given(schemas(), st.data())
def test_reachable_is_the_breadth_first_closure_with_distances(schema, data):
    source = data.draw(st.sampled_from(sorted(schema.classes)))
    depth = data.draw(st.integers(1, 6))
    distance, queue = {source: 0}, deque([source])
    edges = edge_list(schema)
    while queue:
        node = queue.popleft()
        for s, _, t in edges:
            if s == node and t not in distance and distance[node] < depth:
                distance[t] = distance[node] + 1
                queue.append(t)
    del distance[source]
    found = analysis.reachable(schema, source, depth)
    assert {c: d for c, (d, _) in found.items()} == distance
    for class_id, (d, path) in found.items():
        assert len(path) == d and path[0].source == source and path[-1].target == class_id


def elementary_cycles(schema, max_length):
    """Every elementary cycle as a rotation-normalised tuple of edges, by brute force."""
    edges = sorted(edge_list(schema))
    found = set()

    def walk(start, node, path, seen):
        for (s, p, t) in edges:
            if s != node:
                continue
            if t == start:
                cycle = path + [(s, p, t)]
                i = cycle.index(min(cycle, key=lambda e: e[0]))
                found.add(tuple(cycle[i:] + cycle[:i]))
            elif t not in seen and len(path) + 1 < max_length:
                walk(start, t, path + [(s, p, t)], seen | {t})

    for start in schema.classes:
        walk(start, start, [], {start})
    return found


@settings(max_examples=200, deadline=None)
@given(schemas(), st.integers(1, 7))
def test_cycles_are_every_elementary_cycle_once_with_kind_and_severity(schema, max_length):
    found, truncated = analysis.cycles(schema, max_length=max_length, limit=100_000)
    assert not truncated
    listed = [tuple(as_triples(c.steps)) for c in found]
    assert len(listed) == len(set(listed))
    assert set(listed) == elementary_cycles(schema, max_length)
    for cycle in found:
        assert cycle.kind == {1: "self", 2: "direct"}.get(len(cycle.steps), "indirect")
        required = [schema_rel(schema, e).required for e in cycle.steps]
        assert cycle.severity == ("error" if all(required) else "warning" if any(required) else "info")


def schema_rel(schema, edge):
    return next(r for r in schema.effective_relationships(edge.source) if r.predicate == edge.predicate)


def test_cycle_severity_names_the_cycles_no_instance_can_enter():
    schema = Schema({
        "A": OntologyClass(id="A", relationships=[{"predicate": "b", "target": "B", "required": True}]),
        "B": OntologyClass(id="B", relationships=[{"predicate": "a", "target": "A", "required": True}]),
        "Node": OntologyClass(id="Node", relationships=[{"predicate": "parent", "target": "Node"}])})
    found, _ = analysis.cycles(schema)
    by_kind = {c.kind: c for c in found}
    assert by_kind["direct"].severity == "error" and by_kind["direct"].classes == ["A", "B", "A"]
    assert by_kind["self"].severity == "info"


def test_inherited_relationships_are_edges_of_the_subclass():
    schema = Schema({"Agent": OntologyClass(id="Agent", relationships=[{"predicate": "knows",
                                                                         "target": "Agent"}]),
                     "Person": OntologyClass(id="Person", parents=["Agent"])})
    [edge] = analysis.edges(schema)["Person"]
    assert (edge.predicate, edge.target, edge.inherited_from) == ("knows", "Agent", "Agent")
    assert analysis.reachable(schema, "Person")["Agent"][0] == 1


@settings(max_examples=200, deadline=None)
@given(schemas())
def test_network_degrees_and_components(schema):
    summary = analysis.network(schema, hubs=3)
    edges = [(s, t) for s, _, t in edge_list(schema)]
    assert summary["relationships"] == len(edges)
    for c in schema.classes:
        assert summary["degrees"][c] == {"out": sum(s == c for s, _ in edges),
                                         "in": sum(t == c for _, t in edges)}
    parent = {c: c for c in schema.classes}

    def root(c):
        while parent[c] != c:
            c = parent[c]
        return c

    for s, t in edges:
        parent[root(s)] = root(t)
    groups = {}
    for c in schema.classes:
        groups.setdefault(root(c), set()).add(c)
    assert sorted(map(sorted, groups.values())) == sorted(c["classes"] for c in summary["components"])
    assert summary["isolated"] == sorted(c for c in schema.classes
                                         if not any(c in (s, t) for s, t in edges))
    assert len(summary["hubs"]) <= 3
