"""Scenario 8: dependencies that answer badly rather than not at all, under an open-loop
load of at least 200 commands/s through an API process.

- S3 slow: a proxy in front of SeaweedFS holds every request 500 ms for 30 s (the worker
  under test reaches S3 only through it).
- PostgreSQL dropping connections: every backend of the service's role is terminated
  once a second for 20 s, mid-transaction or idle.

Same books as every scenario (nothing lost, nothing applied twice, read model = graph).
The API answers within its timeouts meanwhile: a 503 carries Retry-After, no request
hangs past the client's 20 s, and a sync write asked to wait 5 s answers (200, or 408
with its command id) within 5 s and a margin."""
import asyncio
import time
from pathlib import Path

import asyncpg

from tests.integration.worker import WorkerProcess
from tests.reliability.books import Timeline, api_status, wait_terminal
from tests.reliability.load import LEAST_ACCEPTED_PER_SECOND, OFFERED_PER_SECOND, V1, PacedLoad
from tests.reliability.slow_proxy import ProxyProcess
from tests.reliability.test_crash_points import make_class

S3_DELAY, SLOW_SECONDS = 0.5, 30
DROP_SECONDS = 20
SYNC_TIMEOUT, SYNC_MARGIN = 5, 3  # the timeout counts from arrival (spice/web/waiting.py)
LOGS = Path("test-artifacts")


async def sync_answers(http, url: str, db: str, seconds: float) -> list[tuple[int, float]]:
    """A sync create every second; (status, seconds to answer) of each."""
    answers = []
    deadline = time.monotonic() + seconds
    n = 0
    while time.monotonic() < deadline:
        n += 1
        began = time.monotonic()
        try:
            async with http.post(f"{url}{V1}/instances/{db}/sync/Item/create?timeout={SYNC_TIMEOUT}",
                                 json={"instance_id": f"sync-{n}", "data": {"name": "s", "n": n}},
                                 timeout=30) as r:
                answers.append((r.status, round(time.monotonic() - began, 1)))
        except (TimeoutError, OSError):
            answers.append((0, round(time.monotonic() - began, 1)))
        await asyncio.sleep(max(0.0, 1 - (time.monotonic() - began)))
    return answers


def assert_answered_in_time(load: PacedLoad, synced: list[tuple[int, float]]) -> None:
    assert not any(code >= 500 and code != 503 for code in load.answers), load.answers
    assert load.unavailable_without_retry_after == 0, load.answers
    assert load.answers[0] == 0, f"requests hung past the client's timeout: {load.answers}"
    assert load.accepted_per_second() >= LEAST_ACCEPTED_PER_SECOND, dict(load.answers)
    late = [(code, took) for code, took in synced
            if code not in (200, 408, 503) or took > SYNC_TIMEOUT + SYNC_MARGIN]
    assert not late, f"sync writes answered late or wrongly: {late}"


async def test_s3_slow_for_30_seconds(worker, runtime, http, local_stack):
    db = await make_class(http, worker)
    sync_db = await make_class(http, worker)  # the books count only the load's instances
    proxy = ProxyProcess(local_stack.s3_port, S3_DELAY).start()
    env = {"S3_ENDPOINT_URL": f"http://127.0.0.1:{proxy.port}"}
    worker.stop()  # only the worker behind the proxy applies commands
    slow = WorkerProcess(16179, LOGS / "slow-s3-worker.log", env=env)
    api = WorkerProcess(16180, LOGS / "slow-s3-api.log",
                        env={**env, "SPICE_ROLE": "api", "SPICE_WORKER_URLS": slow.url})
    synced: list[tuple[int, float]] = []
    fault_end = 0.0
    try:
        slow.start(180)
        api.start(180)
        load = PacedLoad(http, api.url, db, rate=OFFERED_PER_SECOND)

        async def slow_s3() -> None:
            nonlocal fault_end
            await asyncio.sleep(5)
            proxy.slow(True)
            synced.extend(await sync_answers(http, api.url, sync_db, SLOW_SECONDS))
            proxy.slow(False)
            fault_end = time.time()
            await asyncio.sleep(5)

        await load.run_while(slow_s3)
        status_of = api_status(http, slow.url)
        recovery = await wait_terminal(runtime, list(load.accepted), timeout=240, status_of=status_of)
        books = await load.books(runtime, f"S3 answering {S3_DELAY * 1000:.0f} ms late for {SLOW_SECONDS}s",
                                 db, recovery, status_of, Timeline(fault_end), sync_answers=synced)
    finally:
        api.stop()
        slow.stop()
        proxy.stop()
        worker.start()
    print(f"slow S3: answers {dict(load.answers)}, {load.accepted_per_second():.0f} accepted/s; "
          f"sync writes (status, s) {synced}")
    books.assert_balanced()
    assert_answered_in_time(load, synced)


async def test_postgres_connections_dropped_mid_transaction(worker, runtime, http, local_stack):
    db = await make_class(http, worker)
    sync_db = await make_class(http, worker)
    api = WorkerProcess(16180, LOGS / "pg-drop-api.log",
                        env={"SPICE_ROLE": "api", "SPICE_WORKER_URLS": worker.url}).start()
    load = PacedLoad(http, api.url, db, rate=OFFERED_PER_SECOND)
    synced: list[tuple[int, float]] = []
    dropped: list[int] = []
    fault_end = 0.0

    async def drop_connections() -> None:
        nonlocal fault_end
        killer = await asyncpg.connect(local_stack.postgres_dsn)
        try:
            await asyncio.sleep(5)
            until = time.monotonic() + DROP_SECONDS
            probe = asyncio.create_task(sync_answers(http, api.url, sync_db, DROP_SECONDS))
            while time.monotonic() < until:
                dropped.append(await killer.fetchval(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE usename = current_user AND pid <> pg_backend_pid()"))
                await asyncio.sleep(1)
            synced.extend(await probe)
        finally:
            await killer.close()
        fault_end = time.time()
        await asyncio.sleep(5)

    try:
        await load.run_while(drop_connections)
        status_of = api_status(http, worker.url)
        recovery = await wait_terminal(runtime, list(load.accepted), timeout=240, status_of=status_of)
    finally:
        api.stop()
    books = await load.books(runtime, f"PostgreSQL connections terminated every second for {DROP_SECONDS}s",
                             db, recovery, status_of, Timeline(fault_end), sync_answers=synced)
    print(f"PostgreSQL drops: {sum(dropped)} backends terminated ({dropped}); answers "
          f"{dict(load.answers)}, {load.accepted_per_second():.0f} accepted/s; sync writes {synced}")
    books.assert_balanced()
    assert_answered_in_time(load, synced)
