from spice.stores.graph_terminus import instance_iri, schema_document


def test_schema_document_keeps_the_definition_and_maps_types():
    cls = {"id": "Person", "parents": ["Agent"], "abstract": True,
           "properties": [{"name": "name", "type": "string", "required": True},
                          {"name": "salary", "type": "money"}, {"name": "tags", "type": "array<string>"}],
           "relationships": [{"predicate": "knows", "target": "Person", "cardinality": "n:m"},
                             {"predicate": "employer", "target": "Org"}]}
    doc = schema_document(cls)
    assert doc["@metadata"]["spice"] == cls
    assert doc["@inherits"] == ["Agent"] and doc["@abstract"] == []
    assert doc["name"] == "xsd:string"
    assert doc["salary"] == {"@type": "Optional", "@class": "sys:JSON"}
    assert doc["tags"] == {"@type": "Optional", "@class": "sys:JSON"}
    assert doc["knows"] == {"@type": "Set", "@class": "Person"}
    assert doc["employer"] == {"@type": "Optional", "@class": "Org"}


def test_instance_iris_encode_reserved_characters():
    assert instance_iri("Person", "a:b") == "Person/a%3Ab"
