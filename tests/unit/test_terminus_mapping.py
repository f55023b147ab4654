from spice.stores.graph_terminus import BASE, _message, class_iri, instance_id_of, instance_iri, schema_class


def test_every_ontology_class_is_a_schema_class_under_the_instance_base():
    assert schema_class("Person") == {"@type": "Class", "@id": "Person", "@inherits": [BASE]}


def test_instance_iris_encode_reserved_characters_and_round_trip():
    assert instance_iri("Person", "a:b/c d") == "Person/a%3Ab%2Fc%20d"
    assert instance_id_of(instance_iri("Person", "a:b/c d")) == "a:b/c d"
    assert class_iri("Per son") == "_SpiceClass/Per%20son"


def test_server_messages_name_the_witness_in_either_form_of_a_v11_answer():
    body = ('{"api:message": "Schema check failure", '
            '"api:error": {"api:witnesses": [{"@type": "not_a_valid_link", "field": "knows"}]}}')
    assert _message(body).startswith("Schema check failure (")
    assert '"knows"' in _message(body)
    assert _message("Status: 404\n" + '{"api:message": "Document not found"}') == "Document not found"
    assert _message("plain text answer") == "plain text answer"
