from hypothesis import given, settings
from hypothesis import strategies as st

from spice.domain.graph import find_cycle, strongly_connected


def test_deep_chain_does_not_recurse():
    n = 20000
    graph = {f"c{i}": [f"c{i+1}"] for i in range(n)}
    graph[f"c{n}"] = ["c0"]
    cycle = find_cycle(graph)
    assert cycle is not None and len(cycle) == n + 2
    assert max(len(c) for c in strongly_connected(graph)) == n + 1


graphs = st.integers(1, 12).flatmap(lambda n: st.dictionaries(
    st.sampled_from([f"n{i}" for i in range(n)]),
    st.lists(st.sampled_from([f"n{i}" for i in range(n)]), max_size=4), max_size=n))


def has_cycle_bruteforce(graph):
    nodes = set(graph) | {t for ts in graph.values() for t in ts}
    reach = {n: set(graph.get(n, ())) for n in nodes}
    for _ in nodes:
        for n in nodes:
            reach[n] |= {x for m in list(reach[n]) for x in reach.get(m, ())}
    return any(n in reach[n] for n in nodes)


@settings(max_examples=300)
@given(graphs)
def test_find_cycle_agrees_with_transitive_closure(graph):
    cycle = find_cycle(graph)
    assert (cycle is not None) is has_cycle_bruteforce(graph)
    if cycle:
        assert cycle[0] == cycle[-1]
        assert all(b in graph.get(a, ()) for a, b in zip(cycle, cycle[1:], strict=False))


@settings(max_examples=300)
@given(graphs)
def test_scc_partitions_nodes_and_members_reach_each_other(graph):
    components = strongly_connected(graph)
    members = [n for c in components for n in c]
    assert len(members) == len(set(members))
    assert set(graph) <= set(members)
    for component in components:
        if len(component) > 1:
            sub = {n: [t for t in graph.get(n, ()) if t in component] for n in component}
            assert find_cycle(sub) is not None
