"""Status table routing across two workers: whichever worker is asked, the answer
comes from the worker that owns the command's partition."""
import asyncio
from pathlib import Path

from spice.stores.status_topic import partition_for
from tests.integration.kafka_helpers import wait_for
from tests.integration.test_api_end_to_end import create_db, unique_db
from tests.integration.test_status_retention import projected
from tests.integration.worker import WorkerProcess

V1 = "/api/v1"


async def test_status_from_the_table_is_routed_to_the_owner(worker, runtime, http, settings):
    second = WorkerProcess(16168, Path("test-artifacts") / "worker-2.log").start()
    try:
        await asyncio.sleep(12)  # the group rebalances the partitions across both workers
        owners: dict[int, str] = {}  # partition -> the worker that answered for it
        for _ in range(24):  # until both workers have answered for commands they own
            command_id = await create_db(http, worker, unique_db())
            # The last step (PROJECTED) lands first, or it would write the Redis entry again.
            await wait_for(lambda cid=command_id: projected(runtime, cid), timeout=30)
            await runtime.redis.delete(f"command:{command_id}:status", f"command:{command_id}:result")
            answers = []
            for node in (worker, second):
                # The table follows the command_status topic: until the owner has read
                # the command's last change, the API answers from the event store.
                for _ in range(100):
                    async with http.get(f"{node.url}{V1}/commands/{command_id}/status") as r:
                        body = await r.json()
                    if r.status == 200 and body.get("status") == "COMPLETED" \
                            and body.get("source") == "table":
                        break
                    await asyncio.sleep(0.2)
                assert r.status == 200 and body["source"] == "table", body
                answers.append(body)
            assert answers[0]["worker"] == answers[1]["worker"]  # both came from the owner
            partition = partition_for(command_id, settings.topic_partitions)
            assert owners.setdefault(partition, answers[0]["worker"]) == answers[0]["worker"], owners
            if len(set(owners.values())) == 2:
                break
        # A partition has one owner, and both workers own some (24 random keys all in one
        # worker's half of the partitions: one chance in 2**23).
        assert len(set(owners.values())) == 2, f"one worker answered for every partition: {owners}"

        # The dashboard's data, asked of either worker, merges both workers' tables.
        answers = {}
        for node in (worker, second):
            async with http.get(f"{node.url}{V1}/dashboard/data") as r:
                assert r.status == 200
                answers[node.url] = await r.json()
        for url, data in answers.items():
            assert data["answered_by"] == url
            assert {w["worker"] for w in data["workers"]} == {worker.url, second.url}
            assert all(w["error"] is None for w in data["workers"])
        first_counts, second_counts = (a["by_state"] for a in answers.values())
        assert first_counts == second_counts  # one merged view, whoever answers
        local = []
        for node in (worker, second):
            async with http.get(f"{node.url}{V1}/dashboard/local") as r:
                local.append((await r.json())["by_state"].get("COMPLETED", 0))
        assert all(n > 0 for n in local) and sum(local) == first_counts["COMPLETED"]
    finally:
        second.stop()
