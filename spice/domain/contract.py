"""The topic contract: what `data` holds for each command type and each domain event,
as pydantic models. Commands produced straight to a topic are checked against these at
intake (spice/agents/intake.py) with the API's own rules, so a malformed one ends FAILED
naming its field instead of failing later for a misleading reason. The JSON Schemas
served at /api/v1/schemas and printed in docs/topics.md are generated from them.
"""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from spice.domain import ids
from spice.domain.envelope import Envelope
from spice.domain.messages import CommandType, EventType
from spice.domain.ontology import Database, OntologyClass
from spice.domain.parsing import parse

DB = Field(pattern=ids.DATABASE_NAME.pattern, max_length=100, description="the database",
           examples=["shop"])
CLASS_ID = Field(pattern=ids.CLASS_ID.pattern, max_length=200, examples=["Person"])
INSTANCE_ID = Field(pattern=ids.INSTANCE_ID.pattern, max_length=200, examples=["p1"])


class Data(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class CreateDatabaseData(Database):
    """CREATE_DATABASE: the database (its name, optional labels and description)."""

    expected_seq: int | None = Field(None, ge=0)


class DeleteDatabaseData(Data):
    """DELETE_DATABASE."""

    name: str = DB


class CreateClassData(Data):
    """CREATE_ONTOLOGY_CLASS: the class definition under `class`."""

    db: str = DB
    class_: OntologyClass = Field(alias="class")


class UpdateClassData(Data):
    """UPDATE_ONTOLOGY_CLASS: the whole new definition (it replaces the old one)."""

    db: str = DB
    class_id: str = CLASS_ID
    class_: OntologyClass = Field(alias="class")


class DeleteClassData(Data):
    """DELETE_ONTOLOGY_CLASS."""

    db: str = DB
    class_id: str = CLASS_ID


class InstanceData(Data):
    """CREATE_INSTANCE and UPDATE_INSTANCE: the instance's property values by name (an
    update replaces them all); checked against the class when applied."""

    db: str = DB
    class_id: str = CLASS_ID
    instance_id: str = INSTANCE_ID
    data: dict[str, Any] = Field(examples=[{"name": "Ann", "age": 31}])


class DeleteInstanceData(Data):
    """DELETE_INSTANCE."""

    db: str = DB
    class_id: str = CLASS_ID
    instance_id: str = INSTANCE_ID


class BulkItemData(Data):
    """One item; its id and values are checked when applied, item by item (a bad item
    is reported in the result, the others are created)."""

    instance_id: str = Field(max_length=200, examples=["p1"])
    data: dict[str, Any]


class BulkCreateData(Data):
    """BULK_CREATE_INSTANCES: many instances of one class; each succeeds or fails alone."""

    db: str = DB
    class_id: str = CLASS_ID
    items: list[BulkItemData] = Field(min_length=1)


COMMAND_DATA: dict[CommandType, type[BaseModel]] = {
    CommandType.CREATE_DATABASE: CreateDatabaseData,
    CommandType.DELETE_DATABASE: DeleteDatabaseData,
    CommandType.CREATE_ONTOLOGY_CLASS: CreateClassData,
    CommandType.UPDATE_ONTOLOGY_CLASS: UpdateClassData,
    CommandType.DELETE_ONTOLOGY_CLASS: DeleteClassData,
    CommandType.CREATE_INSTANCE: InstanceData,
    CommandType.UPDATE_INSTANCE: InstanceData,
    CommandType.DELETE_INSTANCE: DeleteInstanceData,
    CommandType.BULK_CREATE_INSTANCES: BulkCreateData,
}


class ClassEventData(Data):
    """ONTOLOGY_CLASS_CREATED and ONTOLOGY_CLASS_UPDATED: the class as stored."""

    db: str = DB
    class_id: str = CLASS_ID
    class_: dict[str, Any] = Field(alias="class", description="an OntologyClass")


class CommandFailedData(Data):
    """COMMAND_FAILED: why the command was refused."""

    error: dict[str, Any] = Field(description="code, message and the field at fault")
    command_type: str | None = None


EVENT_DATA: dict[EventType, type[BaseModel]] = {
    EventType.DATABASE_CREATED: Database,
    EventType.DATABASE_DELETED: DeleteDatabaseData,
    EventType.ONTOLOGY_CLASS_CREATED: ClassEventData,
    EventType.ONTOLOGY_CLASS_UPDATED: ClassEventData,
    EventType.ONTOLOGY_CLASS_DELETED: DeleteClassData,
    EventType.INSTANCE_CREATED: InstanceData,
    EventType.INSTANCE_UPDATED: InstanceData,
    EventType.INSTANCE_DELETED: DeleteInstanceData,
    EventType.COMMAND_FAILED: CommandFailedData,
}


def check_command(envelope: Envelope) -> None:
    """ValidationFailed (naming `data.<field>`) unless the command's data is what its
    type takes; ValueError for an unknown command type."""
    try:
        command = CommandType(str(envelope.metadata.get("command_type")))
    except ValueError:
        raise ValueError(f"metadata.command_type: not a command type; one of "
                         f"{', '.join(CommandType)}") from None
    parse(COMMAND_DATA[command], envelope.data, "data")


def schemas() -> dict[str, dict[str, Any]]:
    """Every published JSON Schema by name: the envelope, each command's data, each
    event's data."""
    out: dict[str, dict[str, Any]] = {"envelope": Envelope.model_json_schema()}
    for command, model in COMMAND_DATA.items():
        out[f"command.{command.value}"] = model.model_json_schema(by_alias=True)
    for event, model in EVENT_DATA.items():
        out[f"event.{event.value}"] = model.model_json_schema(by_alias=True)
    return out
