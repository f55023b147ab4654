"""Scenario 2: stop each server in turn for a while under load, then start it again.

While the event store or the sequence allocator is down the API answers 503 with
Retry-After, never 202 for something not stored; everything accepted completes
after recovery; a sync waiter still gets its answer while Redis is down."""
import asyncio
import time

import pytest

from spice.devstack.kafka import KafkaServer
from spice.devstack.postgres import PostgresServer
from spice.devstack.redis import RedisServer
from spice.devstack.seaweedfs import SeaweedServer
from tests.reliability.books import Timeline, api_status, balance, wait_terminal
from tests.reliability.load import Load
from tests.reliability.test_crash_points import make_class

V1 = "/api/v1"
OUTAGE_SECONDS = 15
SERVERS = {"kafka": KafkaServer, "s3": SeaweedServer, "postgres": PostgresServer, "redis": RedisServer}


async def all_answering(http, url: str, timeout: float = 120) -> float:
    """When the worker's readiness first reports every store answering (wall clock)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            async with http.get(f"{url}/readyz", timeout=2) as r:
                if r.status == 200 and (await r.json()).get("status") == "ok":
                    return time.time()
        except (TimeoutError, OSError):
            pass
        await asyncio.sleep(0.25)
    return time.time()


@pytest.mark.parametrize("name", list(SERVERS))
async def test_server_stopped_under_load(name, worker, runtime, http, local_stack):
    db = await make_class(http, worker)
    server = SERVERS[name](local_stack)
    load = Load(http, worker.url, db)
    waiter: dict = {}
    fault_end = 0.0
    back: asyncio.Task | None = None  # when the worker finds its stores answering again

    async def outage() -> None:
        nonlocal fault_end, back
        await asyncio.sleep(3)
        # The devstack's start/stop are blocking (and run their own event loops): threads.
        await asyncio.to_thread(server.down)
        try:
            if name == "redis":  # a sync write while Redis is down: polls the status table
                async with http.post(f"{worker.url}{V1}/instances/{db}/sync/Item/create?timeout=60",
                                     json={"instance_id": "sync-1", "data": {"name": "s", "n": 0}}) as r:
                    waiter.update(status=r.status, body=await r.json())
            else:
                await asyncio.sleep(OUTAGE_SECONDS)
        finally:
            await asyncio.to_thread(server.up)
            fault_end = time.time()
            back = asyncio.create_task(all_answering(http, worker.url))
        await asyncio.sleep(5)  # load goes on after the recovery

    started = time.monotonic()
    await load.run_while(outage)
    recovery = await wait_terminal(runtime, list(load.accepted), timeout=300,
                                   status_of=api_status(http, worker.url))
    if waiter:
        assert waiter["status"] == 200, waiter
        load.accepted[waiter["body"]["data"]["command_id"]] = ("sync-1", {"name": "s", "n": 0})
    assert back is not None
    timeline = Timeline(fault_end, await back)
    books = await balance(runtime, f"{name} stopped {OUTAGE_SECONDS}s under load", db, "Item",
                          load.accepted, recovery, status_of=api_status(http, worker.url),
                          timeline=timeline)
    print(f"{name}: answers {dict(load.answers)}; {time.monotonic() - started:.0f}s")
    assert load.unavailable_without_retry_after == 0
    assert 500 not in load.answers, load.answers
    if name in ("s3", "postgres"):
        assert load.answers[503] > 0, load.answers  # refused, not accepted, while down
    books.assert_balanced()
