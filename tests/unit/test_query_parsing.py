"""Filters and graph queries are checked against the schema before any store sees them:
each problem names its field."""
import pytest

from spice.domain.errors import ValidationFailed
from spice.domain.graph_query import MAX_HOPS, PathsPlan, TraversalPlan, parse_query
from spice.domain.ontology import OntologyClass
from spice.domain.query import matches, parse_where
from spice.domain.schema import Schema

SCHEMA = Schema({c["id"]: OntologyClass.model_validate(c) for c in [
    {"id": "Person", "properties": [
        {"name": "name", "type": "string"}, {"name": "age", "type": "integer"},
        {"name": "born", "type": "date"}, {"name": "seen", "type": "datetime"},
        {"name": "salary", "type": "money"}, {"name": "tags", "type": "array<string>"},
        {"name": "active", "type": "boolean"}],
     "relationships": [{"predicate": "knows", "target": "Person", "cardinality": "n:m"},
                       {"predicate": "employer", "target": "Org"}]},
    {"id": "Employee", "parents": ["Person"]},
    {"id": "Org", "properties": [{"name": "name", "type": "string"}]}]})


def where(raw):
    return parse_where(raw, SCHEMA, ["Person"], "where")


def field_of(call):
    with pytest.raises(ValidationFailed) as caught:
        call()
    return caught.value.errors[0].field


@pytest.mark.parametrize("raw, field", [
    ({"property": "nope", "op": "eq", "value": 1}, "where.property"),
    ({"property": "age", "op": "contains", "value": 1}, "where.op"),
    ({"property": "age", "op": "gt", "value": "old"}, "where.value"),
    ({"property": "born", "op": "lt", "value": "2024-13-01"}, "where.value"),
    ({"property": "name", "op": "in", "value": []}, "where.value"),
    ({"property": "active", "op": "gt", "value": True}, "where.op"),
    ({"property": "salary.cents", "op": "gt", "value": 1}, "where.property"),
    ({"and": [{"property": "age", "op": "gt", "value": 1}, {"property": "x", "value": 1}]},
     "where.and[1].property"),
    ({"or": []}, "where.or"),
    ({"property": "age", "op": "gt", "value": 1, "extra": 2}, "where.extra"),
])
def test_bad_filters_name_their_field(raw, field):
    assert field_of(lambda: where(raw)) == field


def test_filters_compare_by_type():
    data = {"name": "Ann Lee", "age": 30, "born": "1994-05-01", "seen": "2024-01-01T10:00:00+02:00",
            "salary": {"amount": "100.50", "currency": "EUR"}, "tags": ["a", "b"], "active": True,
            "knows": ["p2"]}
    assert matches(where({"property": "name", "op": "eq", "value": "ann lee"}), data)
    assert matches(where({"property": "name", "op": "starts_with", "value": "AN"}), data)
    assert matches(where({"property": "age", "op": "gte", "value": 30}), data)
    assert matches(where({"property": "born", "op": "lt", "value": "2000-01-01"}), data)
    assert matches(where({"property": "seen", "op": "lt", "value": "2024-01-01T09:00:00Z"}), data)
    assert matches(where({"property": "salary", "op": "gt",
                          "value": {"amount": "100", "currency": "EUR"}}), data)
    assert not matches(where({"property": "salary", "op": "gt",
                              "value": {"amount": "1", "currency": "USD"}}), data)
    assert matches(where({"property": "salary.currency", "op": "in", "value": ["eur"]}), data)
    assert matches(where({"property": "tags", "op": "contains", "value": "b"}), data)
    assert matches(where({"property": "knows", "op": "contains", "value": "p2"}), data)
    assert matches(where({"property": "employer", "op": "exists", "value": False}), data)
    assert matches(where({"property": "employer", "op": "ne", "value": "o1"}), data)
    assert matches(where({"not": {"property": "active", "op": "eq", "value": False}}), data)


@pytest.mark.parametrize("body, field", [
    ({"start": {"class_id": "Nope"}}, "start.class_id"),
    ({"start": {"class_id": "Person"}, "hops": [{"predicate": "likes"}]}, "hops[0].predicate"),
    ({"start": {"class_id": "Org"}, "hops": [{"predicate": "knows"}]}, "hops[0].predicate"),
    ({"start": {"class_id": "Person"}, "hops": [{"predicate": "knows"}] * (MAX_HOPS + 1)}, "hops"),
    ({"start": {"class_id": "Person"}, "hops": [{"predicate": "employer", "class_id": "Person"}]},
     "hops[0].class_id"),
    ({"start": {"class_id": "Person"}, "hops": [{"predicate": "employer",
                                                  "where": {"property": "age", "value": 1}}]},
     "hops[0].where.property"),
    ({"start": {"class_id": "Person"}, "hops": [{"predicate": "knows", "direction": "up"}]},
     "hops[0].direction"),
    ({"start": {"class_id": "Person"}, "limits": {"max_nodes": 0}}, "limits.max_nodes"),
    ({"start": {"class_id": "Person", "ids": ["bad id!"]}}, "start.ids[0]"),
    ({"paths": {"from": {"class_id": "Person", "instance_id": "a"},
                "to": {"class_id": "Person", "instance_id": "b"}, "max_depth": 99}}, "paths.max_depth"),
    ({"paths": {"from": {"class_id": "Person", "instance_id": "a"},
                "to": {"class_id": "Person", "instance_id": "b"}, "predicates": ["x"]}},
     "paths.predicates[0]"),
    ({"start": {"class_id": "Person"}, "surprise": 1}, "surprise"),
])
def test_bad_graph_queries_name_their_field(body, field):
    assert field_of(lambda: parse_query(body, SCHEMA)) == field


def test_plans_resolve_subclasses_in_rank_order_and_reverse_routes():
    plan = parse_query({"start": {"class_id": "Org"}, "hops": [
        {"predicate": "employer", "direction": "reverse", "class_id": "Employee"}]}, SCHEMA)
    assert isinstance(plan, TraversalPlan)
    [hop] = plan.hops
    assert hop.classes == ("Employee",) and {r.source for r in hop.routes} == {"Employee"}
    plan = parse_query({"start": {"class_id": "Person"}, "hops": [{"predicate": "knows"}]}, SCHEMA)
    assert plan.start_classes == ("Person", "Employee")
    ranks = [(r.source, r.target, r.rank) for r in plan.hops[0].routes]
    assert ("Person", "Person", 0) in ranks and ("Person", "Employee", 1) in ranks
    paths = parse_query({"paths": {"from": {"class_id": "Person", "instance_id": "a"},
                                   "to": {"class_id": "Org", "instance_id": "o"},
                                   "direction": "any"}}, SCHEMA)
    assert isinstance(paths, PathsPlan) and paths.reverse == paths.forward
