"""Through real HTTP against the real app run as a worker, on the local stack."""
import asyncio
import uuid

import pytest
from prometheus_client.parser import text_string_to_metric_families

from spice.client import SpiceClient
from spice.domain.messages import class_aggregate
from spice.stores.status import CommandStatus

V1 = "/api/v1"


def unique_db() -> str:
    return f"db{uuid.uuid4().hex[:10]}"


async def wait(http, worker, command_id, timeout=30):
    async with http.get(f"{worker.url}{V1}/commands/{command_id}/wait?timeout={timeout}") as r:
        return r.status, await r.json()


async def create_db(http, worker, name, timeout=30):
    """Through the Python client (spice.client), on the caller's session and key."""
    client = SpiceClient(worker.url, session=http)
    answer = await client.create_database(name)
    assert answer["status"] == "PENDING"
    await client.wait(answer, timeout=timeout)
    return answer["command_id"]


async def test_command_flows_through_kafka_to_s3_postgres_and_redis(worker, runtime, http):
    db = unique_db()
    async with http.post(f"{worker.url}{V1}/database/create",
                         json={"name": db, "label": {"en": "Shop", "ko": "가게"}}) as r:
        assert r.status == 202
        accepted = await r.json()
    assert accepted["status"] == "PENDING"
    command_id = accepted["command_id"]
    status, body = await wait(http, worker, command_id)
    assert status == 200 and body["status"] == "success"
    # S3: the command and its domain event are in the event store.
    command = await runtime.event_store.get(command_id)
    assert command is not None and command.event_type == "CREATE_DATABASE_REQUESTED"
    [event_id] = body["data"]["result"]["event_ids"]
    event = await runtime.event_store.get(event_id)
    assert event.event_type == "DATABASE_CREATED" and event.metadata["command_id"] == command_id
    # PostgreSQL: the graph store and the registry.
    assert await runtime.graph.database_exists(db)
    record = await runtime.registry.record("command-worker", command_id)
    assert record["status"] == "done"
    # Redis: the status with its history.
    doc = await runtime.status.get(command_id)
    assert doc["status"] == "COMPLETED"
    # PROJECTED (the search index caught up) may come before or after COMPLETED.
    steps = [h["status"] for h in doc["history"] if h["status"] != "PROJECTED"]
    assert steps == ["PENDING", "PROCESSING", "COMPLETED"]


async def test_class_and_instance_lifecycle(worker, http):
    db = unique_db()
    await create_db(http, worker, db)
    person = {"id": "Person", "label": {"en": "Person", "ko": "사람"},
              "properties": [{"name": "name", "type": "string", "required": True},
                             {"name": "phone", "type": "phone"}]}
    async with http.post(f"{worker.url}{V1}/ontology/{db}/sync/create?timeout=20", json=person) as r:
        assert r.status == 200, await r.text()
        body = await r.json()
    assert body["data"]["result"]["class_id"] == "Person" and body["data"]["execution_time"] > 0
    async with http.get(f"{worker.url}{V1}/ontology/{db}/Person") as r:
        assert (await r.json())["label"]["ko"] == "사람"
    async with http.post(f"{worker.url}{V1}/instances/{db}/sync/Person/create",
                         json={"instance_id": "p1",
                               "data": {"name": "Ann", "phone": "+44 20 7946 0958"}}) as r:
        assert r.status == 200, await r.text()
    async with http.get(f"{worker.url}{V1}/instances/{db}/Person/p1") as r:
        assert (await r.json())["data"] == {"name": "Ann", "phone": "+442079460958"}
    # A failed command maps to its 4xx, with the command id.
    async with http.post(f"{worker.url}{V1}/ontology/{db}/sync/create", json={"id": "Person"}) as r:
        assert r.status == 409
        detail = (await r.json())["detail"]
        assert detail["code"] == "already_exists" and detail["command_id"]
    async with http.post(f"{worker.url}{V1}/instances/{db}/sync/Person/create",
                         json={"instance_id": "p2", "data": {"phone": "12"}}) as r:
        assert r.status == 422
        fields = {e["field"] for e in (await r.json())["detail"]["errors"]}
        assert fields == {"data.name", "data.phone"}
    # Deleting a class that has instances is refused.
    async with http.delete(f"{worker.url}{V1}/ontology/{db}/sync/Person") as r:
        assert r.status == 409 and "instances" in (await r.json())["detail"]["message"]


async def test_async_status_history_and_unknown_ids(worker, http):
    db = unique_db()
    await create_db(http, worker, db)
    async with http.post(f"{worker.url}{V1}/ontology/{db}/async/create", json={"id": "Thing"}) as r:
        command_id = (await r.json())["command_id"]
    await wait(http, worker, command_id)
    async with http.get(f"{worker.url}{V1}/ontology/{db}/async/command/{command_id}/status") as r:
        body = await r.json()
    assert body["status"] == "COMPLETED" and body["result"]["progress"] == 100
    assert all({"status", "timestamp", "message"} <= set(h) for h in body["result"]["history"])
    async with http.get(f"{worker.url}{V1}/commands/{uuid.uuid4()}/status") as r:
        assert r.status == 404
    async with http.get(f"{worker.url}{V1}/commands/not-a-uuid/status") as r:
        assert r.status == 400 and (await r.json())["detail"]["field"] == "command_id"


async def test_bad_input_is_refused_and_nothing_is_appended(worker, runtime, http):
    db = unique_db()
    await create_db(http, worker, db)
    url = f"{worker.url}{V1}/ontology/{db}/async/create"
    async with http.post(url, data=b"{not json") as r:
        assert r.status == 400 and (await r.json())["detail"]["field"] == "body"
    async with http.post(url, json={"id": "Bad", "colour": 1}) as r:
        assert r.status == 422
        assert (await r.json())["detail"]["errors"][0]["field"] == "class.colour"
    async with http.post(url, json={"id": "1Bad"}) as r:
        assert r.status == 422 and (await r.json())["detail"]["field"] == "class.id"
    async with http.post(url, json={"id": "Big", "description": "x" * 2_000_000}) as r:
        assert r.status == 413
    async with http.post(f"{worker.url}{V1}/database/create", json={"name": "X"}) as r:
        assert r.status == 422 and (await r.json())["detail"]["field"] == "name"
    for class_id in ("Bad", "1Bad", "Big"):
        assert await runtime.event_store.last_sequence(class_aggregate(db, class_id)) == 0


async def test_expected_seq_mismatch_is_409_and_stores_nothing(worker, runtime, http):
    db = unique_db()
    await create_db(http, worker, db)
    async with http.post(f"{worker.url}{V1}/ontology/{db}/sync/create", json={"id": "T"}) as r:
        assert r.status == 200
    async with http.put(f"{worker.url}{V1}/ontology/{db}/async/T?expected_seq=5",
                        json={"label": "x"}) as r:
        assert r.status == 409
        assert (await r.json())["detail"]["actual_seq"] == 1
    assert await runtime.event_store.last_sequence(class_aggregate(db, "T")) == 1
    async with http.put(f"{worker.url}{V1}/ontology/{db}/sync/T?expected_seq=1",
                        json={"label": "x"}) as r:
        assert r.status == 200


async def test_idempotency_key(worker, http):
    db = unique_db()
    url = f"{worker.url}{V1}/database/create"
    key = {"Idempotency-Key": uuid.uuid4().hex}
    async with http.post(url, json={"name": db}, headers=key) as r:
        first = (await r.json())["command_id"]
    async with http.post(url, json={"name": db}, headers=key) as r:
        assert r.status == 202 and (await r.json())["command_id"] == first
    async with http.post(url, json={"name": db + "x"}, headers=key) as r:
        assert r.status == 409


async def test_wait_answers_408_with_the_command_id_and_a_hint(worker, runtime, http):
    command_id = str(uuid.uuid4())
    await runtime.status.update(command_id, CommandStatus.PENDING, "never processed")
    async with http.get(f"{worker.url}{V1}/commands/{command_id}/wait?timeout=0.5") as r:
        assert r.status == 408
        detail = (await r.json())["detail"]
    assert detail["command_id"] == command_id
    assert detail["hint"] == "Check status using the async API"
    assert detail["message"] == "Operation timed out after 0.5 seconds"
    async with http.get(f"{worker.url}{V1}/commands/{command_id}/wait?timeout=9999") as r:
        assert r.status == 400 and (await r.json())["detail"]["field"] == "timeout"


async def test_status_survives_a_redis_flush_through_the_faust_table(worker, runtime, http):
    db = unique_db()
    command_id = await create_db(http, worker, db)

    async def from_table():
        await runtime.redis.delete(f"command:{command_id}:status", f"command:{command_id}:result")
        async with http.get(f"{worker.url}{V1}/commands/{command_id}/status") as r:
            return r.status, await r.json()

    # The status topic is consumed asynchronously: until the table has the command, the
    # API answers from the event store (also COMPLETED), so wait for the table's answer.
    for _ in range(150):
        status, body = await from_table()
        if status == 200 and body["status"] == "COMPLETED" and body["source"] == "table":
            break
        await asyncio.sleep(0.2)
    assert status == 200 and body["source"] == "table" and body["status"] == "COMPLETED"
    assert [h["status"] for h in body["result"]["history"] if h["status"] != "PROJECTED"][-1] == "COMPLETED"


async def test_health_reports_every_dependency(worker, http):
    async with http.get(f"{worker.url}/health") as r:
        assert r.status == 200
        body = await r.json()
    assert {"kafka", "s3", "postgres", "redis", "graph", "search"} <= set(body["dependencies"])
    assert all(body["dependencies"][k]["status"] == "ok"
               for k in ("kafka", "s3", "postgres", "redis", "graph", "search"))


async def test_probes_for_an_orchestrator(worker, http):
    """/livez does no I/O; /readyz is ready when the worker can accept and apply."""
    async with http.get(f"{worker.url}/livez") as r:
        assert r.status == 200 and (await r.json())["status"] == "ok"
    async with http.get(f"{worker.url}/readyz") as r:
        body = await r.json()
    assert r.status == 200 and body == {"status": "ok", "ready": True, "role": "worker", "failing": {}}


async def test_openapi_matches_the_routes(worker, http):
    async with http.get(f"{worker.url}/openapi.json") as r:
        spec = await r.json()
    assert f"{V1}/ontology/{{db}}/async/create" in spec["paths"]
    for path, methods in spec["paths"].items():
        probe = path.replace("{db}", "nodb").replace("{class_id}", "C").replace(
            "{instance_id}", "i").replace("{command_id}", str(uuid.uuid4()))
        for method in methods:
            async with http.request(method.upper(), f"{worker.url}{probe}?timeout=0.1") as r:
                assert r.status != 405, f"{method} {path} is documented but not routed"


@pytest.mark.parametrize("path", [f"{V1}/database/create", f"{V1}/ontology/x/async/create"])
async def test_empty_body_names_the_body(worker, http, path):
    async with http.post(f"{worker.url}{path}") as r:
        assert r.status in (400, 422)
        assert (await r.json())["detail"]["field"] in ("body", "db")


async def test_status_views_count_states_and_rates(worker, http):
    db = unique_db()
    await create_db(http, worker, db)
    async with http.post(f"{worker.url}{V1}/ontology/{db}/sync/create", json={"id": "Rated"}) as r:
        assert r.status == 200
    for _ in range(50):
        async with http.get(f"{worker.url}{V1}/status/commands") as r:
            body = await r.json()
        if body["rates"] and body["by_command_type"].get("CREATE_ONTOLOGY_CLASS", {}).get("COMPLETED"):
            break
        await asyncio.sleep(0.2)
    assert body["by_state"]["COMPLETED"] >= 2
    newest = body["rates"][0]
    assert newest["finished"] >= 1 and newest["per_second"] == newest["finished"] / body["window_seconds"]
    assert "ontology_commands_dlq" in body["dlq_depth"]


async def test_metrics_expose_lag_dlq_and_commands(worker, http):
    db = unique_db()
    await create_db(http, worker, db)
    async def scrape() -> str:
        async with http.get(f"{worker.url}/metrics") as r:
            assert r.status == 200 and r.content_type == "text/plain"
            return await r.text()

    # The cluster-wide series come from the leader's snapshot, refreshed in the
    # background after a scrape asks for it: a later scrape has them.
    text = await scrape()
    for _ in range(50):
        if "spice_cluster_metrics_age_seconds" in text:
            break
        await asyncio.sleep(0.2)
        text = await scrape()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert 'spice_commands{command_type="CREATE_DATABASE",status="COMPLETED"}' in text
    assert "spice_publisher_is_leader 1.0" in text and "spice_publisher_lag_events" in families
    # A partition appears once the workers' group has committed an offset on it.
    assert 'spice_consumer_lag_messages{consumer="command",partition="' in text
    assert 'topic="database_commands"}' in text
    assert 'spice_dlq_messages{topic="ontology_commands_dlq"}' in text
    assert 'spice_circuit_open{store="graph"} 0.0' in text
    assert all(f.documentation for f in families.values())
    # The loop-lag meter runs in every worker: its timer has woken many times by now.
    assert "spice_event_loop_lag_max_seconds " in text
    woke = [line for line in text.splitlines() if line.startswith("spice_event_loop_lag_seconds_count")]
    assert woke and float(woke[0].split()[-1]) > 0
