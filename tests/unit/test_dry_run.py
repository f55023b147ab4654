from spice.domain.dry_run import dry_run
from spice.domain.ontology import OntologyClass
from spice.domain.schema import Schema

PERSON = OntologyClass(id="Person", properties=[{"name": "name", "type": "string"}],
                       relationships=[{"predicate": "employer", "target": "Org"}])
SCHEMA = Schema({"Person": PERSON, "Org": OntologyClass(id="Org")})


def test_a_set_of_new_classes_that_refer_to_each_other_validates_as_a_set():
    result = dry_run("db", SCHEMA, [
        {"id": "Team", "relationships": [{"predicate": "lead", "target": "Manager"}]},
        {"id": "Manager", "parents": ["Person"],
         "relationships": [{"predicate": "team", "target": "Team"}]}])
    assert result["valid"] is False  # Team names Manager before Manager exists
    assert result["results"][0]["errors"][0]["field"] == "relationships[0].target"
    result = dry_run("db", SCHEMA, [
        {"id": "Manager", "parents": ["Person"]},
        {"id": "Team", "relationships": [{"predicate": "lead", "target": "Manager"}]},
        {"id": "Manager", "parents": ["Person"],
         "relationships": [{"predicate": "team", "target": "Team"}]}])
    assert result["valid"] is True
    assert [r["operation"] for r in result["results"]] == ["create", "create", "update"]
    [cycle] = result["cycles_introduced"]
    assert cycle["kind"] == "direct" and cycle["classes"] == ["Manager", "Team", "Manager"]


def test_an_update_reports_what_it_changes_against_the_stored_version():
    result = dry_run("db", SCHEMA, [{
        "id": "Person", "label": "A person",
        "properties": [{"name": "name", "type": "string", "required": True},
                       {"name": "age", "type": "integer"}]}])
    change = result["results"][0]["change"]
    assert change["fields"] == ["label"]
    assert change["properties"]["added"] == ["age"]
    assert change["properties"]["changed"][0]["name"] == "name"
    assert change["relationships"]["removed"] == ["employer"]


def test_errors_are_the_ones_the_command_would_get():
    result = dry_run("db", SCHEMA, [{"id": "Bad", "parents": ["Nope"],
                                     "properties": [{"name": "x", "type": "nonsense"}]}, 7])
    assert result["valid"] is False
    first, second = result["results"]
    assert any("properties" in e["field"] for e in first["errors"])
    assert second["errors"] and second["class_id"] is None
