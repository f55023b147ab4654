"""A deploy: two workers behind an API process are restarted one after the other
(SIGTERM, start again, wait until it serves, then the next) under an open-loop load of
at least 200 commands/s. The API answers no 5xx meanwhile, every accepted command ends
exactly once, and the books balance."""
import asyncio
import time
from pathlib import Path

from tests.integration.worker import WorkerProcess
from tests.reliability.books import Timeline, api_status, wait_terminal
from tests.reliability.load import LEAST_ACCEPTED_PER_SECOND, OFFERED_PER_SECOND, PacedLoad
from tests.reliability.test_crash_points import make_class

SETTLE_SECONDS = 8  # the group rebalances with the restarted worker in it


async def test_rolling_restart_of_two_workers_behind_an_api(worker, runtime, http):
    db = await make_class(http, worker)
    second = WorkerProcess(16179, Path("test-artifacts") / "rolling-worker.log").start()
    api = WorkerProcess(16180, Path("test-artifacts") / "rolling-api.log", env={
        "SPICE_ROLE": "api", "SPICE_WORKER_URLS": f"{worker.url},{second.url}"}).start()
    load = PacedLoad(http, api.url, db, rate=OFFERED_PER_SECOND)
    restarts: list[tuple[str, float]] = []
    rolled = 0.0

    async def roll() -> None:
        nonlocal rolled
        await asyncio.sleep(SETTLE_SECONDS)
        for name, process in (("second", second), ("first", worker)):
            began = time.monotonic()
            await asyncio.to_thread(process.stop)  # SIGTERM; waits for the exit
            await asyncio.to_thread(process.start, 180)
            restarts.append((name, round(time.monotonic() - began, 1)))
            await asyncio.sleep(SETTLE_SECONDS)
        rolled = time.time()

    try:
        await load.run_while(roll)
        status_of = api_status(http, worker.url)
        recovery = await wait_terminal(runtime, list(load.accepted), timeout=240, status_of=status_of)
    finally:
        api.stop()
        second.stop()
    books = await load.books(runtime, "rolling restart of two workers behind an API process", db,
                             recovery, status_of, Timeline(rolled), restart_seconds=restarts)
    print(f"rolling restart: stop+start {restarts} s; answers {dict(load.answers)}, "
          f"{load.accepted_per_second():.0f} accepted/s")
    books.assert_balanced()
    assert not any(code >= 500 for code in load.answers), load.answers
    assert load.accepted_per_second() >= LEAST_ACCEPTED_PER_SECOND, dict(load.answers)
