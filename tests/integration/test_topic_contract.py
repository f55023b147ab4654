"""docs/topics.md, followed by another service: every command type produced with a plain
aiokafka producer is applied; a command in another shape ends FAILED naming its field;
the domain events a plain consumer reads validate against the published schemas."""
import asyncio
import json
import uuid
from datetime import UTC, datetime

import jsonschema
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from spice.kafka_client import kafka_options
from spice.producer import command_envelope, produce
from tests.integration.test_api_end_to_end import V1, unique_db

TOPIC = {"Database": "database_commands", "OntologyClass": "ontology_commands",
         "Instance": "instance_commands", "InstanceBatch": "instance_commands"}


def envelope(command_type, aggregate_type, aggregate_id, data):
    """Built from docs/topics.md alone."""
    command_id = str(uuid.uuid4())
    return {"event_id": command_id, "event_type": f"{command_type}_REQUESTED",
            "aggregate_type": aggregate_type, "aggregate_id": aggregate_id,
            "occurred_at": datetime.now(UTC).isoformat(), "actor": "svc:contract-test",
            "data": data, "metadata": {"kind": "command", "command_id": command_id,
                                       "command_type": command_type,
                                       "kafka_topic": TOPIC[aggregate_type]},
            "schema_version": 1, "sequence_number": None}


async def wait(http, worker, command_id):
    """A command produced at topic level has a status once a worker has read it: until
    then the status routes answer 404, and a follower asks again."""
    for _ in range(150):
        async with http.get(f"{worker.url}{V1}/commands/{command_id}/wait?timeout=30") as r:
            if r.status != 404:
                return r.status, await r.json()
        await asyncio.sleep(0.2)
    raise AssertionError(f"command {command_id} never got a status")


async def status(http, worker, command_id):
    async with http.get(f"{worker.url}{V1}/commands/{command_id}/status") as r:
        return await r.json()


async def test_commands_of_every_type_from_a_plain_producer(worker, http, local_stack):
    db = unique_db()
    person = {"id": "Person", "properties": [{"name": "name", "type": "string"}]}
    steps = [
        ("CREATE_DATABASE", "Database", db, {"name": db}),
        ("CREATE_ONTOLOGY_CLASS", "OntologyClass", f"{db}:Person", {"db": db, "class": person}),
        ("UPDATE_ONTOLOGY_CLASS", "OntologyClass", f"{db}:Person",
         {"db": db, "class_id": "Person", "class": {**person, "label": {"en": "Person"}}}),
        ("CREATE_INSTANCE", "Instance", f"{db}:Person/p1",
         {"db": db, "class_id": "Person", "instance_id": "p1", "data": {"name": "Ann"}}),
        ("UPDATE_INSTANCE", "Instance", f"{db}:Person/p1",
         {"db": db, "class_id": "Person", "instance_id": "p1", "data": {"name": "Anne"}}),
        ("BULK_CREATE_INSTANCES", "InstanceBatch", f"{db}:Person",
         {"db": db, "class_id": "Person", "items": [{"instance_id": "p2", "data": {"name": "Bo"}}]}),
        ("DELETE_INSTANCE", "Instance", f"{db}:Person/p1",
         {"db": db, "class_id": "Person", "instance_id": "p1"}),
        ("DELETE_INSTANCE", "Instance", f"{db}:Person/p2",
         {"db": db, "class_id": "Person", "instance_id": "p2"}),
        ("DELETE_ONTOLOGY_CLASS", "OntologyClass", f"{db}:Person", {"db": db, "class_id": "Person"}),
        ("DELETE_DATABASE", "Database", db, {"name": db}),
    ]
    consumer = AIOKafkaConsumer("database_events", "ontology_events", "instance_events",
                                **kafka_options(local_stack), group_id=f"contract-{db}",
                                auto_offset_reset="latest")
    await consumer.start()
    producer = AIOKafkaProducer(**kafka_options(local_stack))
    await producer.start()
    try:
        while not consumer.assignment():
            await consumer.getmany(timeout_ms=200)
        for partition in consumer.assignment():  # from here on, whatever was committed
            await consumer.seek_to_end(partition)
        for command_type, aggregate_type, aggregate_id, data in steps:
            sent = envelope(command_type, aggregate_type, aggregate_id, data)
            await producer.send_and_wait(TOPIC[aggregate_type], json.dumps(sent).encode(),
                                         key=aggregate_id.encode())
            code, answer = await wait(http, worker, sent["event_id"])
            assert code == 200, (command_type, answer)
            doc = await status(http, worker, sent["event_id"])
            assert doc["command_type"] == command_type and doc["db"] == db, doc

        # The events they produced, read by a plain consumer, meet the published schemas.
        schemas, seen = {}, {}
        deadline = asyncio.get_running_loop().time() + 30
        expected = {"DATABASE_CREATED", "ONTOLOGY_CLASS_CREATED", "ONTOLOGY_CLASS_UPDATED",
                    "INSTANCE_CREATED", "INSTANCE_UPDATED", "INSTANCE_DELETED",
                    "ONTOLOGY_CLASS_DELETED", "DATABASE_DELETED"}
        while set(seen) < expected and asyncio.get_running_loop().time() < deadline:
            for messages in (await consumer.getmany(timeout_ms=500)).values():
                for message in messages:
                    event = json.loads(message.value)
                    if event["aggregate_id"].split(":")[0] == db:
                        assert message.key.decode() == event["aggregate_id"]
                        seen.setdefault(event["event_type"], []).append(event)
        assert set(seen) >= expected, sorted(seen)
        for event_type, events in seen.items():
            if event_type not in schemas:
                async with http.get(f"{worker.url}{V1}/schemas/event.{event_type}") as r:
                    schemas[event_type] = await r.json()
            for event in events:
                jsonschema.validate(event["data"], schemas[event_type])
        async with http.get(f"{worker.url}{V1}/schemas/envelope") as r:
            envelope_schema = await r.json()
        jsonschema.validate(seen["INSTANCE_CREATED"][0], envelope_schema)
    finally:
        await producer.stop()
        await consumer.stop()


async def test_a_command_in_another_shape_fails_naming_the_field(worker, http, local_stack):
    db = unique_db()
    sent = envelope("CREATE_ONTOLOGY_CLASS", "OntologyClass", f"{db}:Person",
                    {"payload": {"db_name": db, "class_label": "Person"}})
    producer = AIOKafkaProducer(**kafka_options(local_stack))
    await producer.start()
    try:
        await producer.send_and_wait("ontology_commands", json.dumps(sent).encode(),
                                     key=sent["aggregate_id"].encode())
    finally:
        await producer.stop()
    code, answer = await wait(http, worker, sent["event_id"])
    assert code == 422, answer
    assert answer["detail"]["field"].startswith("data."), answer
    assert "data.payload: unknown field" in answer["detail"]["message"]
    doc = await status(http, worker, sent["event_id"])
    assert doc["status"] == "FAILED" and doc["command_type"] == "CREATE_ONTOLOGY_CLASS"


async def test_the_producer_helper_builds_what_intake_accepts(worker, http, local_stack):
    db = unique_db()
    envelopes = [command_envelope("CREATE_DATABASE", {"name": db}, actor="svc:helper"),
                 command_envelope("CREATE_ONTOLOGY_CLASS", {"db": db, "class": {"id": "Thing"}},
                                  actor="svc:helper")]
    for sent in envelopes:  # one at a time: the class needs its database
        [command_id] = await produce(local_stack, [sent])
        code, answer = await wait(http, worker, command_id)
        assert code == 200, answer
    async with http.get(f"{worker.url}{V1}/audit/{db}?actor=svc:helper&kind=command") as r:
        assert len((await r.json())["entries"]) == 2
