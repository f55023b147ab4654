"""Scenario 1: SIGKILL at every crash point while 1,000 commands flow; restart;
the books balance (nothing lost, nothing applied twice)."""
import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from spice.domain.messages import CommandType, instance_aggregate
from spice.handlers.submit import CommandSubmitter
from tests.integration.kafka_helpers import wait_for
from tests.integration.test_api_end_to_end import create_db, unique_db
from tests.integration.worker import WorkerProcess
from tests.reliability.books import Timeline, balance, wait_terminal

V1 = "/api/v1"
COMMANDS = 1000
LOGS = Path("test-artifacts")


async def make_class(http, worker) -> str:
    db = unique_db()
    # A scenario may leave the group rebalancing after a killed worker: allow for it.
    await create_db(http, worker, db, timeout=90)
    async with http.post(f"{worker.url}{V1}/ontology/{db}/sync/create?timeout=60", json={
            "id": "Item", "properties": [{"name": "name", "type": "string"},
                                         {"name": "n", "type": "integer"}]}) as r:
        assert r.status == 200, await r.text()
    return db


async def submit_over_http(http, url, db, count, concurrency=32):
    accepted = {}
    queue = list(range(count))

    async def client():
        while queue:
            n = queue.pop()
            data = {"name": f"item {n}", "n": n}
            try:
                async with http.post(f"{url}{V1}/instances/{db}/async/Item/create",
                                     json={"instance_id": f"i{n}", "data": data}) as r:
                    if r.status == 202:
                        accepted[(await r.json())["command_id"]] = (f"i{n}", data)
            except OSError:
                pass  # not accepted: not owed
    await asyncio.gather(*[client() for _ in range(concurrency)])
    return accepted


async def died_at(process: WorkerProcess, timeout: float = 120) -> float:
    """When `process` exited (wall clock, within 0.1 s)."""
    await wait_for(lambda: process.proc.poll() is not None, timeout=timeout)
    return time.time()


def publish_until_crash() -> int:
    """`spice publish` with the crash point set: it dies after its first send."""
    spice = os.path.join(os.path.dirname(sys.executable), "spice")
    with open(LOGS / "crash-publisher.log", "w") as log:
        return subprocess.run([spice, "publish"], env={**os.environ,
                              "SPICE_CRASH_AT": "publisher_after_send"},
                              stdout=log, stderr=subprocess.STDOUT, timeout=120).returncode


@pytest.mark.parametrize("point", ["after_claim", "after_event_append", "after_graph_write",
                                   "before_mark_done"])
async def test_worker_killed_at_a_crash_point(point, worker, runtime, http):
    db = await make_class(http, worker)
    crashing = WorkerProcess(16177, LOGS / f"crash-{point}.log",
                             env={"SPICE_CRASH_AT": point, "REGISTRY_LEASE_SECONDS": "2"})
    crashing.start()
    try:
        await asyncio.sleep(12)  # the group rebalances: the crashing worker owns partitions
        died = asyncio.create_task(died_at(crashing))
        accepted = await submit_over_http(http, worker.url, db, COMMANDS)
        crashed = await died
        assert crashing.proc.returncode == -9, f"the worker never reached {point}"
        recovery = await wait_terminal(runtime, list(accepted), timeout=240)
    finally:
        crashing.kill()
    books = await balance(runtime, f"SIGKILL {point}", db, "Item", accepted, recovery,
                          timeline=Timeline(crashed))
    assert books.accepted == COMMANDS
    books.assert_balanced()


async def test_publisher_killed_between_send_and_checkpoint(worker, runtime, http, local_stack):
    db = await make_class(http, worker)
    worker.stop()  # its publisher must not be the leader while the crashing one runs
    try:
        submitter = CommandSubmitter(runtime.event_store, runtime.status)
        accepted = {}
        for n in range(COMMANDS):
            data = {"name": f"item {n}", "n": n}
            stored = await submitter.submit(
                CommandType.CREATE_INSTANCE, instance_aggregate(db, "Item", f"i{n}"),
                {"db": db, "class_id": "Item", "instance_id": f"i{n}", "data": data},
                actor="reliability", db=db)
            accepted[stored.command_id] = (f"i{n}", data)
        assert await asyncio.to_thread(publish_until_crash) == -9
        crashed = time.time()
    finally:
        worker.start()
    recovery = await wait_terminal(runtime, list(accepted), timeout=240)
    books = await balance(runtime, "SIGKILL publisher_after_send", db, "Item", accepted, recovery,
                          timeline=Timeline(crashed))
    books.assert_balanced()
