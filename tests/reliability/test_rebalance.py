"""Scenario 3: two workers, one SIGKILLed while the group rebalances: no command
lost, none applied twice."""
import asyncio
import time
from pathlib import Path

from tests.integration.worker import WorkerProcess
from tests.reliability.books import Timeline, balance, wait_terminal
from tests.reliability.test_crash_points import COMMANDS, make_class, submit_over_http


async def test_worker_killed_during_a_rebalance(worker, runtime, http):
    db = await make_class(http, worker)
    second = WorkerProcess(16178, Path("test-artifacts") / "rebalance-worker.log",
                           env={"REGISTRY_LEASE_SECONDS": "2"})
    second.start()  # joining: the group is rebalancing from here on
    try:
        load = asyncio.create_task(submit_over_http(http, worker.url, db, COMMANDS))
        await asyncio.sleep(6)  # mid-rebalance, with commands in flight on both workers
        second.kill()
        killed = time.time()
        accepted = await load
    finally:
        second.kill()
    recovery = await wait_terminal(runtime, list(accepted), timeout=240)
    books = await balance(runtime, "two workers, one SIGKILLed mid-rebalance", db, "Item",
                          accepted, recovery, timeline=Timeline(killed))
    assert books.accepted == COMMANDS
    books.assert_balanced()
