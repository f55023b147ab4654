"""The topic contract: commands produced to a topic meet the API's rules at intake, and
a refusal names the field; the published schemas cover every command and event type."""
import pytest

from spice.agents import intake
from spice.domain.contract import COMMAND_DATA, EVENT_DATA, schemas
from spice.domain.messages import CommandType, EventType, new_command


def command(command_type, data, **metadata):
    return new_command(command_type, "shop:Person", data, metadata=metadata).to_json()


def test_the_original_systems_shape_is_refused_naming_the_fields():
    raw = command(CommandType.CREATE_ONTOLOGY_CLASS, {"payload": {"db_name": "shop"}})
    with pytest.raises(intake.Refused) as refused:
        intake.decode(raw, "command")
    assert refused.value.field in ("data.db", "data.payload", "data.class")
    assert "data.payload: unknown field" in str(refused.value)
    assert "data.db" in str(refused.value)


def test_what_the_api_sends_passes():
    cases = {
        CommandType.CREATE_DATABASE: {"name": "shop", "label": {"en": "Shop"}},
        CommandType.DELETE_DATABASE: {"name": "shop"},
        CommandType.CREATE_ONTOLOGY_CLASS: {"db": "shop", "class": {"id": "Person"}},
        CommandType.UPDATE_ONTOLOGY_CLASS: {"db": "shop", "class_id": "Person",
                                            "class": {"id": "Person", "properties": []}},
        CommandType.DELETE_ONTOLOGY_CLASS: {"db": "shop", "class_id": "Person"},
        CommandType.CREATE_INSTANCE: {"db": "shop", "class_id": "Person", "instance_id": "p1",
                                      "data": {"name": "Ann"}},
        CommandType.UPDATE_INSTANCE: {"db": "shop", "class_id": "Person", "instance_id": "p1",
                                      "data": {}},
        CommandType.DELETE_INSTANCE: {"db": "shop", "class_id": "Person", "instance_id": "p1"},
        CommandType.BULK_CREATE_INSTANCES: {"db": "shop", "class_id": "Person",
                                            "items": [{"instance_id": "p1", "data": {}}]},
    }
    assert set(cases) == set(CommandType)
    for command_type, data in cases.items():
        intake.decode(command(command_type, data), "command")


def test_bad_values_name_their_field():
    for kind, data, field in (
            (CommandType.DELETE_ONTOLOGY_CLASS, {"db": "Shop!", "class_id": "Person"}, "data.db"),
            (CommandType.CREATE_INSTANCE, {"db": "shop", "class_id": "Person", "instance_id": "p 1",
                                           "data": {}}, "data.instance_id"),
            (CommandType.CREATE_ONTOLOGY_CLASS,
             {"db": "shop", "class": {"id": "Person", "properties": [{"name": "x"}]}},
             "data.class.properties[0].type")):
        with pytest.raises(intake.Refused) as refused:
            intake.decode(command(kind, data), "command")
        assert refused.value.field == field, str(refused.value)


def test_every_command_and_event_type_has_a_published_schema():
    published = schemas()
    assert set(COMMAND_DATA) == set(CommandType) and set(EVENT_DATA) == set(EventType)
    assert {f"command.{c}" for c in CommandType} | {f"event.{e}" for e in EventType} | {"envelope"} \
        == set(published)
    assert "class" in published["command.CREATE_ONTOLOGY_CLASS"]["properties"]
