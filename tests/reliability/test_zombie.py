"""Scenario 7: a zombie. A second worker is frozen (SIGSTOP) for longer than the consumer
group's session timeout under load, its partitions move to the shared worker and their
commands complete there; then it is thawed (SIGCONT) with the batches it had in hand.
Its late writes must be fenced or absorbed: no duplicated effect, no status that moves
back from terminal, a read model equal to the graph (the books)."""
import asyncio
import os
import signal
import time
from pathlib import Path

from tests.integration.worker import WorkerProcess
from tests.reliability.books import Timeline, api_status, wait_terminal
from tests.reliability.load import LEAST_ACCEPTED_PER_SECOND, OFFERED_PER_SECOND, PacedLoad
from tests.reliability.test_crash_points import make_class

FROZEN_SECONDS = 16  # the group's session timeout is 10 s (spice/app.py)


async def test_a_frozen_worker_comes_back_after_its_partitions_moved(worker, runtime, http):
    db = await make_class(http, worker)
    zombie = WorkerProcess(16179, Path("test-artifacts") / "zombie-worker.log",
                           env={"REGISTRY_LEASE_SECONDS": "2"})
    zombie.start()
    api = WorkerProcess(16180, Path("test-artifacts") / "zombie-api.log", env={
        "SPICE_ROLE": "api", "SPICE_WORKER_URLS": f"{worker.url},{zombie.url}"}).start()
    load = PacedLoad(http, api.url, db, rate=OFFERED_PER_SECOND)
    thawed = 0.0

    async def freeze_and_thaw() -> None:
        nonlocal thawed
        await asyncio.sleep(12)  # the group has rebalanced: the zombie owns partitions
        os.kill(zombie.proc.pid, signal.SIGSTOP)
        try:
            await asyncio.sleep(FROZEN_SECONDS)
        finally:
            os.kill(zombie.proc.pid, signal.SIGCONT)
            thawed = time.time()
        await asyncio.sleep(10)  # the zombie rejoins, or finds itself fenced, under load

    try:
        await load.run_while(freeze_and_thaw)
        recovery = await wait_terminal(runtime, list(load.accepted), timeout=240,
                                       status_of=api_status(http, worker.url))
    finally:
        api.stop()
        zombie.stop()
    books = await load.books(runtime, f"a worker frozen {FROZEN_SECONDS}s (SIGSTOP) under load, then "
                             "thawed after its partitions moved", db, recovery,
                             api_status(http, worker.url), Timeline(thawed))
    print(f"zombie: answers {dict(load.answers)}, {load.accepted_per_second():.0f} accepted/s")
    books.assert_balanced()
    assert 500 not in load.answers, load.answers
    assert load.accepted_per_second() >= LEAST_ACCEPTED_PER_SECOND, dict(load.answers)
