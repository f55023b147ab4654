"""An API process (SPICE_ROLE=api) beside a worker: it accepts and answers like a
worker, takes none of the workers' partitions, and asks a worker (or the event store)
for what only the workers' tables know."""
import asyncio
from pathlib import Path

import pytest

from tests.integration.kafka_helpers import wait_for
from tests.integration.test_api_end_to_end import create_db, unique_db
from tests.integration.test_status_retention import projected
from tests.integration.worker import WorkerProcess

V1 = "/api/v1"
LOGS = Path("test-artifacts")


@pytest.fixture
def api_process(worker, local_stack):
    """An API process that asks the session's worker."""
    process = WorkerProcess(16170, LOGS / "api-process.log",
                            env={"SPICE_ROLE": "api", "SPICE_WORKER_URLS": worker.url}).start()
    yield process
    process.stop()


async def status(http, node, command_id):
    async with http.get(f"{node.url}{V1}/commands/{command_id}/status") as r:
        return r.status, await r.json()


async def test_accepts_and_answers_what_a_worker_applies(api_process, worker, runtime, http):
    async with http.get(f"{api_process.url}/health") as r:
        health = await r.json()
    assert r.status == 200 and health["role"] == "api" and "tables" not in health["dependencies"]

    db = unique_db()
    command_id = await create_db(http, api_process, db)  # accepted by the API process
    async with http.get(f"{api_process.url}{V1}/commands/{command_id}/wait?timeout=30") as r:
        assert r.status == 200, await r.text()  # ... and applied by the worker
    async with http.post(f"{api_process.url}{V1}/ontology/{db}/sync/create?timeout=30",
                         json={"id": "Thing", "properties": [{"name": "n", "type": "integer"}]}) as r:
        assert r.status == 200, await r.text()
    async with http.get(f"{api_process.url}{V1}/ontology/{db}/Thing") as r:
        assert r.status == 200 and (await r.json())["id"] == "Thing"

    # Redis forgets the command: the API process asks the worker, which has it in its table.
    await wait_for(lambda: projected(runtime, command_id), timeout=30)
    await runtime.redis.delete(f"command:{command_id}:status", f"command:{command_id}:result")
    for _ in range(100):  # until the worker's table has read the command's last change
        code, body = await status(http, api_process, command_id)
        if body.get("source") == "table" and body.get("status") == "COMPLETED":
            break
        await asyncio.sleep(0.2)
    assert code == 200 and body["source"] == "table" and body["worker"].rstrip("/") == worker.url, body

    # Counts come from the workers' tables, asked of a worker; the worker still holds
    # every partition: the API process joined no group of the workers'.
    async with http.get(f"{api_process.url}{V1}/status/commands") as r:
        counts = await r.json()
    assert r.status == 200 and counts["worker"].rstrip("/") == worker.url, counts
    assert counts["by_state"].get("COMPLETED", 0) >= 2
    assert counts["partitions_here"] == list(range(runtime.settings.topic_partitions))
    async with http.get(f"{api_process.url}{V1}/dashboard/data") as r:
        assert r.status == 200 and (await r.json())["answered_by"] == worker.url

    async with http.get(f"{api_process.url}/metrics") as r:
        text = await r.text()
    # An API process exports its own series, never the cluster-wide ones (the leader does).
    assert r.status == 200 and 'spice_info{role="api",' in text and "spice_http_requests_total" in text
    assert "spice_consumer_lag_messages" not in text and "spice_dlq_messages" not in text


async def test_without_a_worker_to_ask(worker, runtime, http):
    """No worker answers: status falls back to the event store, the counts say why not."""
    lonely = WorkerProcess(16171, LOGS / "api-process-alone.log",
                           env={"SPICE_ROLE": "api", "SPICE_WORKER_URLS": "http://127.0.0.1:9"}).start()
    try:
        command_id = await create_db(http, lonely, unique_db())
        async with http.get(f"{lonely.url}{V1}/commands/{command_id}/wait?timeout=30") as r:
            assert r.status == 200, await r.text()
        await wait_for(lambda: projected(runtime, command_id), timeout=30)
        await runtime.redis.delete(f"command:{command_id}:status", f"command:{command_id}:result")
        code, body = await status(http, lonely, command_id)
        assert code == 200 and body["source"] == "event_store" and body["status"] == "COMPLETED", body

        async with http.get(f"{lonely.url}{V1}/status/commands") as r:
            body = await r.json()
        assert r.status == 503 and "SPICE_WORKER_URLS" in body["detail"]["message"], body
        code, body = await status(http, lonely, "00000000-0000-4000-8000-000000000000")
        assert code == 404, body
    finally:
        lonely.stop()


async def test_an_api_process_whose_redis_is_down(worker, http):
    """Its Redis unreachable, an API process still accepts (a 202 means stored), its
    waits poll the event store, and a worker answers for the status."""
    blind = WorkerProcess(16172, LOGS / "api-process-no-redis.log", env={
        "SPICE_ROLE": "api", "SPICE_WORKER_URLS": worker.url,
        "REDIS_URL": "redis://127.0.0.1:9/0"}).start(ready=False)
    try:
        # Redis down makes it degraded, not unready: it still accepts and applies.
        async with http.get(f"{blind.url}/health") as r:
            health = await r.json()
        assert r.status == 200 and health["status"] == "degraded" and health["ready"], health
        assert health["dependencies"]["redis"]["status"] == "failing", health
        async with http.get(f"{blind.url}/readyz") as r:
            ready = await r.json()
        assert r.status == 200 and ready["status"] == "degraded" and list(ready["failing"]) == ["redis"]

        db = unique_db()
        async with http.post(f"{blind.url}{V1}/database/create", json={"name": db}) as r:
            assert r.status == 202, await r.text()
            command_id = (await r.json())["command_id"]
        async with http.get(f"{blind.url}{V1}/commands/{command_id}/wait?timeout=30") as r:
            assert r.status == 200, await r.text()
        async with http.post(f"{blind.url}{V1}/ontology/{db}/sync/create?timeout=30",
                             json={"id": "Thing", "properties": []}) as r:
            assert r.status == 200, await r.text()
        code, body = await status(http, blind, command_id)
        assert code == 200 and body["status"] == "COMPLETED" and body["source"] != "event_store", body
    finally:
        blind.stop()


async def test_an_api_process_without_its_graph_store_is_unready(worker, http):
    """The graph store is on the apply path: /readyz and /health answer 503 and name it;
    /livez stays 200."""
    cut_off = WorkerProcess(16173, LOGS / "api-process-no-graph.log", env={
        "SPICE_ROLE": "api", "SPICE_WORKER_URLS": worker.url,
        "GRAPH_BACKEND": "terminusdb", "TERMINUSDB_URL": "http://127.0.0.1:9"}).start(ready=False)
    try:
        async with http.get(f"{cut_off.url}/readyz") as r:
            ready = await r.json()
        assert r.status == 503 and ready["status"] == "unready" and "graph" in ready["failing"], ready
        async with http.get(f"{cut_off.url}/health") as r:
            assert r.status == 503 and (await r.json())["dependencies"]["graph"]["status"] == "failing"
        async with http.get(f"{cut_off.url}/livez") as r:
            assert r.status == 200
    finally:
        cut_off.stop()
