"""Produce commands straight to their topics, as another service would (docs/topics.md).

    envelope = command_envelope("CREATE_INSTANCE", {"db": "shop", "class_id": "Person",
                                                    "instance_id": "p1", "data": {"name": "Ann"}},
                                actor="svc:importer")
    await produce(settings, [envelope])

`command_envelope` checks `data` with the rules intake applies (spice/domain/contract.py),
so what it builds is accepted; the key is the aggregate id, so one aggregate's commands
stay in order on one partition. Leave `sequence_number` out and the worker gives the
command the aggregate's next number when it records it; set it (with the number the
aggregate is at, plus one) and it is applied only in that place.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaProducer

from spice.domain.contract import COMMAND_DATA
from spice.domain.envelope import Envelope
from spice.domain.messages import (
    CommandType,
    class_aggregate,
    database_aggregate,
    instance_aggregate,
    new_command,
)
from spice.domain.parsing import parse
from spice.kafka_client import kafka_options
from spice.settings import Settings


def aggregate_of(command: CommandType, data: dict[str, Any]) -> str:
    """The aggregate a command is about: its key on the topic."""
    if command in (CommandType.CREATE_DATABASE, CommandType.DELETE_DATABASE):
        return database_aggregate(data["name"])
    if command in (CommandType.CREATE_INSTANCE, CommandType.UPDATE_INSTANCE,
                   CommandType.DELETE_INSTANCE):
        return instance_aggregate(data["db"], data["class_id"], data["instance_id"])
    if command is CommandType.CREATE_ONTOLOGY_CLASS:
        return class_aggregate(data["db"], data["class"]["id"])
    return class_aggregate(data["db"], data["class_id"])  # class update/delete, bulk


def command_envelope(command_type: CommandType | str, data: dict[str, Any], *,
                     actor: str = "producer", command_id: str | None = None,
                     sequence_number: int | None = None) -> Envelope:
    """A command envelope intake accepts; ValidationFailed naming `data.<field>` if not."""
    command = CommandType(command_type)
    parse(COMMAND_DATA[command], data, "data")
    return new_command(command, aggregate_of(command, data), data, actor=actor,
                       command_id=command_id, sequence_number=sequence_number,
                       metadata={"db": data.get("db") or data.get("name")})


async def produce(settings: Settings, envelopes: Iterable[Envelope]) -> list[str]:
    """Send each envelope to its topic keyed by its aggregate (acks from every in-sync
    replica, idempotent); returns the command ids."""
    producer = AIOKafkaProducer(**kafka_options(settings), acks="all", enable_idempotence=True)
    await producer.start()
    try:
        sent = []
        for envelope in envelopes:
            await producer.send_and_wait(envelope.topic, envelope.to_json(),
                                         key=envelope.aggregate_id.encode())
            sent.append(envelope.command_id)
        return sent
    finally:
        await producer.stop()
