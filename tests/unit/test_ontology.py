import pytest

from spice.domain.errors import ValidationFailed
from spice.domain.ontology import OntologyClass
from spice.domain.parsing import parse
from spice.domain.schema import Schema


def cls(**kw):
    return parse(OntologyClass, kw, "class")


def test_class_with_everything():
    person = cls(id="Person", label={"en": "Person", "ko": "사람"}, abstract=False,
                 properties=[{"name": "name", "type": "string", "required": True}],
                 relationships=[{"predicate": "knows", "target": "Person", "cardinality": "n:m",
                                 "inverse_predicate": "known_by"}])
    assert person.relationships[0].many


@pytest.mark.parametrize("body,fragment", [
    ({"id": "1x"}, "class.id"),
    ({"id": "P", "properties": [{"name": "a", "type": "string"}, {"name": "a", "type": "integer"}]},
     "duplicate property names: a"),
    ({"id": "P", "relationships": [{"predicate": "r", "target": "Q"}, {"predicate": "r", "target": "Q"}]},
     "duplicate relationship predicates: r"),
    ({"id": "P", "properties": [{"name": "r", "type": "string"}],
      "relationships": [{"predicate": "r", "target": "Q"}]}, "both property and relationship"),
    ({"id": "P", "relationships": [{"predicate": "r", "target": "Q", "cardinality": "2:2"}]},
     "class.relationships[0].cardinality"),
    ({"id": "P", "parents": ["P"]}, "own parent"),
    ({"id": "P", "label": 5}, "class.label"),
    ({"id": "P", "colour": "red"}, "class.colour: unknown field"),
])
def test_invalid_classes_name_the_field(body, fragment):
    with pytest.raises(ValidationFailed) as error:
        cls(**body)
    assert fragment in str(error.value)


def schema(*classes):
    return Schema({c.id: c for c in classes})


def test_inherited_properties_and_overrides():
    s = schema(
        cls(id="Agent", abstract=True, properties=[{"name": "name", "type": "string", "required": True},
                                                   {"name": "age", "type": "string"}]),
        cls(id="Person", parents=["Agent"], properties=[{"name": "age", "type": "integer"}],
            relationships=[{"predicate": "employer", "target": "Org"}]),
        cls(id="Org"),
    )
    assert [p.name for p in s.effective_properties("Person")] == ["name", "age"]
    assert s.effective_properties("Person")[1].type == "integer"
    assert s.validate_instance("Person", {"name": "Ann", "age": 3, "employer": "o1"}) == {
        "name": "Ann", "age": 3, "employer": "o1"}
    with pytest.raises(ValidationFailed) as error:
        s.validate_instance("Person", {"age": "x", "employer": "bad id!"})
    text = str(error.value)
    assert "data.name: is required" in text and "data.age: must be an integer" in text
    assert "data.employer" in text
    with pytest.raises(ValidationFailed, match="abstract"):
        s.validate_instance("Agent", {"name": "x"})
    with pytest.raises(ValidationFailed, match="does not exist"):
        s.validate_instance("Nope", {})


def test_many_relationship_needs_a_list():
    s = schema(cls(id="P", relationships=[{"predicate": "friends", "target": "P", "cardinality": "n:m"}]))
    assert s.validate_instance("P", {"friends": ["a", "b"]}) == {"friends": ["a", "b"]}
    with pytest.raises(ValidationFailed, match="list of instance ids"):
        s.validate_instance("P", {"friends": "a"})


def test_diamond_inheritance_is_fine():
    s = schema(cls(id="A", properties=[{"name": "a", "type": "string"}]), cls(id="B", parents=["A"]),
               cls(id="C", parents=["A"]), cls(id="D", parents=["B", "C"]))
    assert s.ancestors("D") == ["B", "C", "A"]
    assert [p.name for p in s.effective_properties("D")] == ["a"]
