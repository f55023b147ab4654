import pytest

from spice.domain.decisions import (
    DatabaseState,
    InstanceState,
    OntologyState,
    decide_bulk,
    decide_class,
    decide_database,
    decide_instance,
)
from spice.domain.envelope import Envelope
from spice.domain.errors import AlreadyExists, NotFound, ReferencedByOthers, ValidationFailed
from spice.domain.messages import CommandType as C
from spice.domain.messages import EventType as E
from spice.domain.messages import new_command, stamp
from spice.domain.ontology import OntologyClass
from spice.domain.schema import Schema


def schema(*defs):
    return Schema({d["id"]: OntologyClass.model_validate(d) for d in defs})


def test_database_create_and_delete():
    [event] = decide_database(C.CREATE_DATABASE, {"name": "shop"}, DatabaseState("shop", False), 1)
    assert event.event_type is E.DATABASE_CREATED and event.sequence_number == 1
    with pytest.raises(AlreadyExists):
        decide_database(C.CREATE_DATABASE, {"name": "shop"}, DatabaseState("shop", True), 2)
    with pytest.raises(NotFound):
        decide_database(C.DELETE_DATABASE, {}, DatabaseState("shop", False), 2)


def test_class_create_checks_references_and_cycles():
    state = OntologyState("shop", True, schema({"id": "A", "parents": ["B"]}, {"id": "B"}))
    with pytest.raises(ValidationFailed, match=r"parents\[0\]: class 'Z' does not exist"):
        decide_class(C.CREATE_ONTOLOGY_CLASS, {"class": {"id": "C", "parents": ["Z"]}}, state, 1)
    with pytest.raises(ValidationFailed, match="relationships"):
        decide_class(C.CREATE_ONTOLOGY_CLASS, {"class": {"id": "C", "relationships": [
            {"predicate": "r", "target": "Z"}]}}, state, 1)
    with pytest.raises(ValidationFailed, match="inheritance cycle"):
        decide_class(C.UPDATE_ONTOLOGY_CLASS, {"class_id": "B", "class": {"parents": ["A"]}}, state, 2)
    with pytest.raises(AlreadyExists):
        decide_class(C.CREATE_ONTOLOGY_CLASS, {"class": {"id": "A"}}, state, 1)
    [event] = decide_class(C.CREATE_ONTOLOGY_CLASS, {"class": {"id": "C", "parents": ["A"]}}, state, 1)
    assert event.aggregate_id == "shop:C" and event.data["class"]["parents"] == ["A"]


def test_class_delete_refuses_when_used():
    state = OntologyState("shop", True, schema(
        {"id": "A"}, {"id": "B", "parents": ["A"]},
        {"id": "C", "relationships": [{"predicate": "r", "target": "B"}]}), {"C": 3})
    with pytest.raises(ReferencedByOthers, match="subclasses"):
        decide_class(C.DELETE_ONTOLOGY_CLASS, {"class_id": "A"}, state, 2)
    with pytest.raises(ReferencedByOthers, match="relationships from"):
        decide_class(C.DELETE_ONTOLOGY_CLASS, {"class_id": "B"}, state, 2)
    with pytest.raises(ReferencedByOthers, match="3 instances"):
        decide_class(C.DELETE_ONTOLOGY_CLASS, {"class_id": "C"}, state, 2)
    with pytest.raises(NotFound):
        decide_class(C.DELETE_ONTOLOGY_CLASS, {"class_id": "Nope"}, state, 2)
    with pytest.raises(NotFound, match="database"):
        decide_class(C.DELETE_ONTOLOGY_CLASS, {"class_id": "A"},
                     OntologyState("shop", False, state.schema), 2)


def test_instances():
    s = schema({"id": "P", "properties": [{"name": "phone", "type": "phone"}]})
    absent = InstanceState("shop", True, s, None)
    [event] = decide_instance(C.CREATE_INSTANCE, {"class_id": "P", "instance_id": "p1",
                                                  "data": {"phone": "+44 20 7946 0958"}}, absent, 1)
    assert event.data["data"]["phone"] == "+442079460958"
    present = InstanceState("shop", True, s, {"phone": "+442079460958"})
    with pytest.raises(AlreadyExists):
        decide_instance(C.CREATE_INSTANCE, {"class_id": "P", "instance_id": "p1", "data": {}}, present, 2)
    with pytest.raises(NotFound):
        decide_instance(C.DELETE_INSTANCE, {"class_id": "P", "instance_id": "p1"}, absent, 2)
    [deleted] = decide_instance(C.DELETE_INSTANCE, {"class_id": "P", "instance_id": "p1"}, present, 2)
    assert deleted.event_type is E.INSTANCE_DELETED


def test_bulk_reports_item_errors():
    s = schema({"id": "P", "properties": [{"name": "n", "type": "integer"}]})
    decision = decide_bulk([{"instance_id": "a", "data": {"n": 1}}, {"instance_id": "b", "data": {"n": "x"}},
                            {"instance_id": "a", "data": {}}, {"instance_id": "bad/id", "data": {}}],
                           "shop", "P", InstanceState("shop", True, s, None), set())
    assert [e.data["instance_id"] for e in decision.events] == ["a"]
    assert [(e["index"], e["code"]) for e in decision.item_errors] == [
        (1, "invalid"), (2, "already_exists"), (3, "invalid")]


def test_domain_event_ids_are_deterministic_and_content_equal():
    command = new_command(C.CREATE_DATABASE, "shop", {"name": "shop"}, sequence_number=1)
    [draft] = decide_database(C.CREATE_DATABASE, {"name": "shop"}, DatabaseState("shop", False), 1)
    first, again = stamp(command, draft), stamp(command, draft)
    assert first.event_id == again.event_id and first.same_event(again)
    other = new_command(C.CREATE_DATABASE, "shop", {"name": "shop"}, sequence_number=1)
    assert stamp(other, draft).event_id != first.event_id
    assert Envelope.from_json(first.to_json()) == first
