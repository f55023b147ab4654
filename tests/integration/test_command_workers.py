"""Command workers on the real stack: duplicates, order, crashes, outages, poison, bulk."""
import asyncio
import json
import uuid
from pathlib import Path

from aiokafka import AIOKafkaProducer

from spice import dlq
from spice.client import SpiceClient
from spice.devstack.postgres import PostgresServer
from spice.domain.envelope import domain_event_id
from spice.domain.messages import CommandType, EventType, class_aggregate, new_command
from spice.kafka_client import kafka_options
from tests.integration.kafka_helpers import wait_for
from tests.integration.test_api_end_to_end import create_db, unique_db, wait
from tests.integration.worker import WorkerProcess

V1 = "/api/v1"


async def produce(settings, topic: str, value: bytes | None, key: bytes | None = None) -> None:
    producer = AIOKafkaProducer(**kafka_options(settings))
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()


async def status_of(runtime, command_id):
    return await runtime.status.get(command_id)


async def test_duplicate_delivery_gives_one_effect_and_one_event(worker, runtime, http, settings):
    db = unique_db()
    await create_db(http, worker, db)
    async with http.post(f"{worker.url}{V1}/ontology/{db}/sync/create?wait=projected",
                         json={"id": "Dup"}) as r:
        command_id = (await r.json())["data"]["command_id"]
    stored = await runtime.event_store.get(command_id)
    before = await status_of(runtime, command_id)
    for _ in range(3):  # another producer replays the very same envelope
        await produce(settings, "ontology_commands", stored.to_json(), stored.aggregate_id.encode())
    await asyncio.sleep(3)
    record = await runtime.registry.record("command-worker", command_id)
    assert record["status"] == "done" and record["attempt_count"] == 1
    assert len((await status_of(runtime, command_id))["history"]) == len(before["history"])
    events = [e async for e in runtime.event_store.read_aggregate(class_aggregate(db, "Dup"))
              if e.kind == "domain"]
    assert [e.event_type for e in events] == ["ONTOLOGY_CLASS_CREATED"]


async def test_command_produced_at_topic_level_is_stored_then_applied(worker, runtime, settings, http):
    db = unique_db()
    await create_db(http, worker, db)
    command = new_command(CommandType.CREATE_ONTOLOGY_CLASS, class_aggregate(db, "Ext"),
                          {"db": db, "class": {"id": "Ext"}}, actor="other-service")
    await produce(settings, "ontology_commands", command.to_json(), command.aggregate_id.encode())
    doc = await wait_for(lambda: status_of(runtime, command.command_id), timeout=30)
    await wait_for(lambda: runtime.graph.get_class(db, "Ext"), timeout=30)
    stored = await runtime.event_store.get(command.command_id)
    assert stored is not None and stored.sequence_number == 1
    assert doc["command_id"] == command.command_id


async def test_early_delivery_applies_stored_predecessors_first(worker, runtime, settings, http):
    db = unique_db()
    await create_db(http, worker, db)
    aggregate = class_aggregate(db, "Ord")
    create = await runtime.event_store.append(new_command(
        CommandType.CREATE_ONTOLOGY_CLASS, aggregate, {"db": db, "class": {"id": "Ord"}}),
        allocate=True)
    update = await runtime.event_store.append(new_command(
        CommandType.UPDATE_ONTOLOGY_CLASS, aggregate,
        {"db": db, "class_id": "Ord", "class": {"id": "Ord", "label": "second"}}), allocate=True)
    # Deliver the update before the publisher delivers the create.
    await produce(settings, "ontology_commands", update.to_json(), aggregate.encode())
    for command in (create, update):
        status, body = await wait(http, worker, command.command_id)
        assert status == 200, body
    assert (await runtime.graph.get_class(db, "Ord"))["label"] == "second"


async def test_stale_sequence_is_skipped_with_a_clear_status(worker, runtime, settings, http):
    db = unique_db()
    await create_db(http, worker, db)
    await SpiceClient(worker.url, session=http).create_class(db, {"id": "Old"})
    stale = new_command(CommandType.DELETE_ONTOLOGY_CLASS, class_aggregate(db, "Old"),
                        {"db": db, "class_id": "Old"}, sequence_number=1)
    await produce(settings, "ontology_commands", stale.to_json(), stale.aggregate_id.encode())
    await wait_for(lambda: status_of(runtime, stale.command_id), timeout=30)
    status, body = await wait(http, worker, stale.command_id)
    assert status == 409 and body["detail"]["code"] == "sequence_mismatch"
    assert await runtime.graph.get_class(db, "Old") is not None


async def test_poison_message_goes_to_the_dlq_and_the_agent_keeps_going(worker, http, settings):
    marker = uuid.uuid4().hex
    await produce(settings, "ontology_commands", b"\xff\xfe not json " + marker.encode())
    letters = await wait_for(lambda: _letters_with(settings, marker), timeout=30)
    assert "raw" in letters[0].body and letters[0].body["topic"] == "ontology_commands"
    # A null value (a tombstone another service sent) is poison too, kept with its key.
    await produce(settings, "ontology_commands", None, key=f"tombstone-{marker}".encode())
    letters = await wait_for(lambda: _letters_with(settings, f"tombstone-{marker}"), timeout=30)
    assert letters[0].body["key"] == f"tombstone-{marker}" and letters[0].body["raw"] == ""
    db = unique_db()
    await create_db(http, worker, db)
    await SpiceClient(worker.url, session=http).create_class(db, {"id": "After"})


async def _letters_with(settings, marker):
    letters = await dlq.read(settings, ("ontology_commands_dlq",), limit=50)
    return [letter for letter in letters if marker in json.dumps(letter.body)]


async def test_bulk_create_reports_progress_and_item_errors(worker, runtime, http):
    db = unique_db()
    await create_db(http, worker, db)
    await SpiceClient(worker.url, session=http).create_class(db, {
        "id": "Item", "properties": [{"name": "n", "type": "integer", "required": True}]})
    items = [{"instance_id": f"i{i}", "data": {"n": i}} for i in range(1000)]
    items[10]["data"] = {"n": "ten"}
    items[20]["instance_id"] = "bad/id"
    async with http.post(f"{worker.url}{V1}/instances/{db}/async/Item/bulk-create",
                         json={"items": items}) as r:
        assert r.status == 202
        command_id = (await r.json())["command_id"]
    status, body = await wait(http, worker, command_id, timeout=60)
    assert status == 200
    result = body["data"]["result"]
    assert result["created"] == 998 and result["failed"] == 2
    assert [e["index"] for e in result["errors"]] == [10, 20]
    assert result["errors"][0]["field"] == "items[10].data.n"
    progress = [h for h in (await status_of(runtime, command_id))["history"]
                if h["status"] == "PROCESSING"]
    assert len(progress) >= 5  # one step per chunk
    assert len(await runtime.graph.list_instances(db, "Item", limit=1000)) == 998


async def test_worker_killed_after_claim_completes_exactly_once_after_restart(
        worker, runtime, http, local_stack):
    db = unique_db()
    await create_db(http, worker, db)
    log = Path("test-artifacts") / "crash-worker.log"
    # The shared worker must not take the command: stop it while the crashing one runs.
    worker.stop()
    crashing = WorkerProcess(16167, log, env={"SPICE_CRASH_AT": "after_claim",
                                              "REGISTRY_LEASE_SECONDS": "2"})
    try:
        crashing.start()
        async with http.post(f"{crashing.url}{V1}/ontology/{db}/async/create", json={"id": "Once"}) as r:
            command_id = (await r.json())["command_id"]
        await wait_for(lambda: crashing.proc.poll() is not None, timeout=30)
        assert crashing.proc.returncode == -9
        record = await runtime.registry.record("command-worker", command_id)
        assert record["status"] == "processing"
    finally:
        crashing.kill()
        worker.start()
    status, body = await wait(http, worker, command_id, timeout=60)
    assert status == 200, body
    record = await runtime.registry.record("command-worker", command_id)
    assert record["status"] == "done" and record["attempt_count"] == 2
    event_id = domain_event_id(command_id, EventType.ONTOLOGY_CLASS_CREATED, class_aggregate(db, "Once"))
    assert (await runtime.event_store.get(event_id)) is not None
    assert await runtime.event_store.get(
        domain_event_id(command_id, EventType.COMMAND_FAILED, class_aggregate(db, "Once"))) is None


async def test_postgres_down_commands_retry_then_complete(worker, runtime, http, settings):
    db = unique_db()
    await create_db(http, worker, db)
    command = new_command(CommandType.CREATE_ONTOLOGY_CLASS, class_aggregate(db, "Later"),
                          {"db": db, "class": {"id": "Later"}})
    postgres = PostgresServer(settings)
    postgres.down()
    try:
        await produce(settings, "ontology_commands", command.to_json(), command.aggregate_id.encode())
        doc = await wait_for(lambda: status_of(runtime, command.command_id), timeout=30)
        await wait_for(lambda: _has_retrying(runtime, command.command_id), timeout=30)
        doc = await status_of(runtime, command.command_id)
        assert doc["status"] == "RETRYING"
    finally:
        postgres.up()
    status, body = await wait(http, worker, command.command_id, timeout=90)
    assert status == 200, body
    assert await runtime.graph.get_class(db, "Later") is not None


async def _has_retrying(runtime, command_id):
    doc = await runtime.status.get(command_id)
    return doc and any(h["status"] == "RETRYING" for h in doc["history"])


async def test_bulk_create_checks_relationship_targets_per_item(worker, http):
    db = unique_db()
    await create_db(http, worker, db)
    await SpiceClient(worker.url, session=http).create_class(db, {
        "id": "Node", "relationships": [{"predicate": "next", "target": "Node"}]})
    items = [{"instance_id": "a", "data": {"next": "b"}},       # b comes in the same batch
             {"instance_id": "b", "data": {}},
             {"instance_id": "c", "data": {"next": "nowhere"}}]
    async with http.post(f"{worker.url}{V1}/instances/{db}/async/Node/bulk-create",
                         json={"items": items}) as r:
        command_id = (await r.json())["command_id"]
    status, body = await wait(http, worker, command_id)
    result = body["data"]["result"]
    assert status == 200 and result["created"] == 2 and result["failed"] == 1
    assert result["errors"][0]["index"] == 2 and result["errors"][0]["field"] == "items[2].data.next"


async def test_a_command_held_by_another_workers_lease_holds_up_only_its_aggregate(
        worker, runtime, http):
    """Commands go in batches, one batch at a time; a command whose claim another worker
    still holds (a rebalance, a crashed worker's lease) waits in its own lane instead, so
    the commands behind it keep flowing, and it completes once the lease is given up."""
    from spice.domain.messages import instance_aggregate
    from spice.stores.registry import PostgresRegistry

    db = unique_db()
    await create_db(http, worker, db)
    await SpiceClient(worker.url, session=http).create_class(
        db, {"id": "Item", "properties": [{"name": "n", "type": "integer"}]})
    held = new_command(CommandType.CREATE_INSTANCE, instance_aggregate(db, "Item", "held"),
                       {"db": db, "class_id": "Item", "instance_id": "held", "data": {"n": 0}},
                       actor="test")
    other = PostgresRegistry(runtime.pool, owner="another-worker", lease_seconds=300)
    claim = await other.claim("command-worker", held.event_id, held.aggregate_id, None)
    assert claim.outcome.value == "claimed"
    await runtime.event_store.append(held, allocate=True)
    await asyncio.sleep(1)  # published and read: its claim is refused, it waits
    started = asyncio.get_running_loop().time()
    for n in range(1, 4):
        async with http.post(f"{worker.url}{V1}/instances/{db}/sync/Item/create?timeout=20",
                             json={"instance_id": f"i{n}", "data": {"n": n}}) as r:
            assert r.status == 200, await r.text()
    assert asyncio.get_running_loop().time() - started < 20
    assert await runtime.graph.get_instance(db, "Item", "held") is None
    await other.mark_failed("command-worker", held.event_id, "given up by its owner")
    status, body = await wait(http, worker, held.command_id)
    assert status == 200, body
    assert await runtime.graph.get_instance(db, "Item", "held") == {"n": 0}
