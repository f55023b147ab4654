"""Commands (imperative) and events (past tense), their aggregates and topics."""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from spice.domain.envelope import Envelope, domain_event_id, now
from spice.domain.json_values import check_json_value


class CommandType(StrEnum):
    CREATE_DATABASE = "CREATE_DATABASE"
    DELETE_DATABASE = "DELETE_DATABASE"
    CREATE_ONTOLOGY_CLASS = "CREATE_ONTOLOGY_CLASS"
    UPDATE_ONTOLOGY_CLASS = "UPDATE_ONTOLOGY_CLASS"
    DELETE_ONTOLOGY_CLASS = "DELETE_ONTOLOGY_CLASS"
    CREATE_INSTANCE = "CREATE_INSTANCE"
    UPDATE_INSTANCE = "UPDATE_INSTANCE"
    DELETE_INSTANCE = "DELETE_INSTANCE"
    BULK_CREATE_INSTANCES = "BULK_CREATE_INSTANCES"


class EventType(StrEnum):
    DATABASE_CREATED = "DATABASE_CREATED"
    DATABASE_DELETED = "DATABASE_DELETED"
    ONTOLOGY_CLASS_CREATED = "ONTOLOGY_CLASS_CREATED"
    ONTOLOGY_CLASS_UPDATED = "ONTOLOGY_CLASS_UPDATED"
    ONTOLOGY_CLASS_DELETED = "ONTOLOGY_CLASS_DELETED"
    INSTANCE_CREATED = "INSTANCE_CREATED"
    INSTANCE_UPDATED = "INSTANCE_UPDATED"
    INSTANCE_DELETED = "INSTANCE_DELETED"
    COMMAND_FAILED = "COMMAND_FAILED"


class AggregateType(StrEnum):
    DATABASE = "Database"
    ONTOLOGY_CLASS = "OntologyClass"
    INSTANCE = "Instance"
    INSTANCE_BATCH = "InstanceBatch"


COMMAND_AGGREGATE = {
    CommandType.CREATE_DATABASE: AggregateType.DATABASE,
    CommandType.DELETE_DATABASE: AggregateType.DATABASE,
    CommandType.CREATE_ONTOLOGY_CLASS: AggregateType.ONTOLOGY_CLASS,
    CommandType.UPDATE_ONTOLOGY_CLASS: AggregateType.ONTOLOGY_CLASS,
    CommandType.DELETE_ONTOLOGY_CLASS: AggregateType.ONTOLOGY_CLASS,
    CommandType.CREATE_INSTANCE: AggregateType.INSTANCE,
    CommandType.UPDATE_INSTANCE: AggregateType.INSTANCE,
    CommandType.DELETE_INSTANCE: AggregateType.INSTANCE,
    CommandType.BULK_CREATE_INSTANCES: AggregateType.INSTANCE_BATCH,
}
# The event a command produces when it succeeds (else COMMAND_FAILED).
SUCCESS_EVENTS = {
    CommandType.CREATE_DATABASE: EventType.DATABASE_CREATED,
    CommandType.DELETE_DATABASE: EventType.DATABASE_DELETED,
    CommandType.CREATE_ONTOLOGY_CLASS: EventType.ONTOLOGY_CLASS_CREATED,
    CommandType.UPDATE_ONTOLOGY_CLASS: EventType.ONTOLOGY_CLASS_UPDATED,
    CommandType.DELETE_ONTOLOGY_CLASS: EventType.ONTOLOGY_CLASS_DELETED,
    CommandType.CREATE_INSTANCE: EventType.INSTANCE_CREATED,
    CommandType.UPDATE_INSTANCE: EventType.INSTANCE_UPDATED,
    CommandType.DELETE_INSTANCE: EventType.INSTANCE_DELETED,
}
COMMAND_TOPIC = {
    AggregateType.DATABASE: "database_commands",
    AggregateType.ONTOLOGY_CLASS: "ontology_commands",
    AggregateType.INSTANCE: "instance_commands",
    AggregateType.INSTANCE_BATCH: "instance_commands",
}
EVENT_TOPIC = {
    AggregateType.DATABASE: "database_events",
    AggregateType.ONTOLOGY_CLASS: "ontology_events",
    AggregateType.INSTANCE: "instance_events",
    AggregateType.INSTANCE_BATCH: "instance_events",
}


def database_aggregate(db: str) -> str:
    return db


def class_aggregate(db: str, class_id: str) -> str:
    # Database names cannot contain ':', so the first ':' always splits db from class.
    return f"{db}:{class_id}"


def instance_aggregate(db: str, class_id: str, instance_id: str) -> str:
    return f"{db}:{class_id}/{instance_id}"


def new_command(
    command_type: CommandType,
    aggregate_id: str,
    data: dict[str, Any],
    *,
    actor: str = "anonymous",
    command_id: str | None = None,
    sequence_number: int | None = None,
    metadata: dict[str, Any] | None = None,
) -> Envelope:
    aggregate_type = COMMAND_AGGREGATE[command_type]
    command_id = command_id or str(uuid.uuid4())
    return Envelope(
        event_id=command_id,
        event_type=f"{command_type.value}_REQUESTED",
        aggregate_type=aggregate_type.value,
        aggregate_id=aggregate_id,
        occurred_at=now(),
        actor=actor,
        data=data,
        metadata={
            **(metadata or {}),
            "kind": "command",
            "command_id": command_id,
            "command_type": command_type.value,
            "kafka_topic": COMMAND_TOPIC[aggregate_type],
        },
        sequence_number=sequence_number,
    )


def database_of(envelope: Envelope) -> str | None:
    """The database a command belongs to: who may see its status depends on it. The API
    puts it in the metadata; a command produced at topic level names it in its data."""
    db = envelope.metadata.get("db") or envelope.data.get("db")
    if db is None and envelope.aggregate_type == AggregateType.DATABASE:
        db = envelope.data.get("name")
    return db if isinstance(db, str) else None


def command_type_of(envelope: Envelope) -> CommandType:
    return CommandType(envelope.metadata["command_type"])


@dataclass(frozen=True)
class EventDraft:
    """What a decision produces; the worker stamps it into an envelope."""

    event_type: EventType
    aggregate_type: AggregateType
    aggregate_id: str
    data: dict[str, Any]
    sequence_number: int | None


def stamp(command: Envelope, draft: EventDraft) -> Envelope:
    # No success event for a change no store could take: the values a decision produced
    # (defaults, normalised values) meet the same rules as the command's own, else the
    # command is refused (a ValidationFailed) before anything is appended.
    check_json_value(draft.data, "data")
    # occurred_at comes from the command so that a retried command rebuilds the
    # very same envelope (same id, same content) instead of a conflicting one.
    return Envelope(
        event_id=domain_event_id(command.command_id, draft.event_type, draft.aggregate_id),
        event_type=draft.event_type.value,
        aggregate_type=draft.aggregate_type.value,
        aggregate_id=draft.aggregate_id,
        occurred_at=command.occurred_at,
        actor=command.actor,
        data=draft.data,
        metadata={
            "kind": "domain",
            "command_id": command.command_id,
            "command_type": command.metadata.get("command_type"),
            "kafka_topic": EVENT_TOPIC[draft.aggregate_type],
            # The trace continues from the HTTP request through the worker to the
            # projection; the same value on a retry keeps the envelope identical.
            **({"traceparent": command.metadata["traceparent"]}
               if "traceparent" in command.metadata else {}),
            # A revert (spice/web/revert.py) says so in its events' history too.
            **({"revert_to": command.metadata["revert_to"]}
               if "revert_to" in command.metadata else {}),
        },
        sequence_number=draft.sequence_number,
    )


def command_failed(command: Envelope, error: dict[str, Any]) -> Envelope:
    aggregate_type = AggregateType(command.aggregate_type)
    draft = EventDraft(EventType.COMMAND_FAILED, aggregate_type, command.aggregate_id,
                       {"error": error, "command_type": command.metadata.get("command_type")},
                       command.sequence_number)
    return stamp(command, draft)
