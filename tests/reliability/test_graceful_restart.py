"""A rolling restart: one of two workers gets SIGTERM under a steady load sent through an
API process. It finishes what it holds, commits, ends its leases and leaves the group;
the other takes its partitions and applies their commands at once (no lease to wait
out, no changelog to read again: its standby copy of the status tables is warm), the
API answers no 5xx meanwhile, and the books balance.

The status tables' changelogs start with HISTORY finished commands in them, as after a
busy hour: a survivor that rebuilt the partitions it takes over from their whole
changelogs paused every completion for as long as that read took. They finished an
hour ago, so the expiry tombstones them at once and compaction soon leaves the
scenarios after this one a short changelog again."""
from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from spice.kafka_client import kafka_options
from spice.stores.status_topic import messages, partition_for
from spice.topics import STATUS_TOPIC
from tests.integration.worker import WorkerProcess
from tests.reliability.books import balance, redis_status, wait_terminal
from tests.reliability.test_crash_points import make_class

V1 = "/api/v1"
LOGS = Path("test-artifacts")
RATE = 100  # commands per second, steady
SECONDS = 24
STOP_AT = 8  # seconds into the load: the second worker has its partitions by then
HISTORY = 40_000


async def status_history(settings, count: int) -> None:
    """`count` finished commands of another client, produced at topic level the way the
    service's own status writer sends them (arrays of changes per partition)."""
    now = time.time()
    finished_at = now - 3600
    by_partition: dict[int, list[dict]] = {}
    for n in range(count):
        command_id = f"history-{now:.0f}-{n}"
        by_partition.setdefault(partition_for(command_id, settings.topic_partitions), []).append(
            {"command_id": command_id, "status": "COMPLETED", "timestamp": finished_at,
             "command_type": "CREATE_INSTANCE", "db": "history", "progress": 100.0})
    producer = AIOKafkaProducer(**kafka_options(settings), max_request_size=1 << 20)
    await producer.start()
    try:
        for partition, changes in by_partition.items():
            for key, value in messages(changes):
                await producer.send(STATUS_TOPIC, value, key=key, partition=partition)
        await producer.flush()
    finally:
        await producer.stop()


async def steady_load(http, url: str, db: str, answers: dict[int, int],
                      accepted: dict[str, tuple[str, dict]]) -> None:
    """RATE commands a second for SECONDS, each its own request; every answer counted."""
    async def one(n: int) -> None:
        data = {"name": f"item {n}", "n": n}
        try:
            async with http.post(f"{url}{V1}/instances/{db}/async/Item/create",
                                 json={"instance_id": f"i{n}", "data": data}) as r:
                answers[r.status] = answers.get(r.status, 0) + 1
                if r.status == 202:
                    accepted[(await r.json())["command_id"]] = (f"i{n}", data)
        except OSError:
            answers[0] = answers.get(0, 0) + 1

    started, tasks = time.monotonic(), []
    for n in range(RATE * SECONDS):
        await asyncio.sleep(max(0.0, started + n / RATE - time.monotonic()))
        tasks.append(asyncio.create_task(one(n)))
    await asyncio.gather(*tasks)


async def status_settled(settings, quiet: float = 3.0, timeout: float = 120.0) -> float:
    """Waits until the status table's changelog has had no new record for `quiet`
    seconds (the history is applied, and expired); returns the wait. The roll is
    measured in a steady state: a survivor's standby that still has a burst of the
    leaving worker's writes to read is a different case (the time to read them)."""
    started = time.monotonic()
    reader = AIOKafkaConsumer(**kafka_options(settings), enable_auto_commit=False)
    await reader.start()
    try:
        changelog = f"{settings.spice_app_id}-command-status-changelog"
        partitions = [TopicPartition(changelog, p) for p in range(settings.topic_partitions)]
        last, since = None, time.monotonic()
        while time.monotonic() - started < timeout:
            ends = await reader.end_offsets(partitions)
            if ends != last:
                last, since = ends, time.monotonic()
            elif time.monotonic() - since >= quiet:
                return time.monotonic() - started
            await asyncio.sleep(0.5)
        raise AssertionError(f"status changelog still growing after {timeout:.0f} s")
    finally:
        await reader.stop()


async def test_a_worker_stopped_with_sigterm_hands_over_at_once(worker, runtime, http, local_stack):
    db = await make_class(http, worker)
    await status_history(local_stack, HISTORY)
    await status_settled(local_stack)
    second = WorkerProcess(16179, LOGS / "graceful-worker.log").start()
    api = WorkerProcess(16180, LOGS / "graceful-api.log", env={
        "SPICE_ROLE": "api", "SPICE_WORKER_URLS": f"{worker.url},{second.url}"}).start()
    answers: dict[int, int] = {}
    accepted: dict[str, tuple[str, dict]] = {}
    try:
        await asyncio.sleep(8)  # the group has settled with both workers
        load = asyncio.create_task(steady_load(http, api.url, db, answers, accepted))
        await asyncio.sleep(STOP_AT)
        signalled = time.time()
        second.stop()  # SIGTERM, then waits for the process to exit
        exited = time.time()
        await load
    finally:
        second.kill()
        api.stop()
    status_of = redis_status(runtime)
    recovery = await wait_terminal(runtime, list(accepted), timeout=120, status_of=status_of)
    books = await balance(runtime, "graceful restart: SIGTERM one of two workers under load",
                          db, "Item", accepted, recovery, status_of=status_of)

    # When each command ended, and the longest time nothing ended while work was owed.
    ended = []
    for command_id in accepted:
        doc = await status_of(command_id) or {}
        ended += [step["timestamp"] for step in doc.get("history", [])
                  if step.get("status") in ("COMPLETED", "FAILED")]
    ended.sort()
    gaps = [(b - a, a) for a, b in zip(ended, ended[1:], strict=False)]
    longest, at = max(gaps)
    after_exit = [t for t in ended if t >= exited]
    shutdown = re.findall(r"shutdown: in-flight work (finished|cut off) in ([0-9.]+) s; offsets committed; "
                          r"(-?\d+) leases ended", (LOGS / "graceful-worker.log").read_text())
    print(f"\ngraceful restart: {len(accepted)} accepted at {RATE}/s; SIGTERM to exit "
          f"{exited - signalled:.2f} s; drain {shutdown}; longest pause in completions "
          f"{longest:.2f} s at {at - signalled:+.2f} s from SIGTERM; first completion after exit "
          f"{(after_exit[0] - exited) if after_exit else float('nan'):.2f} s; answers {answers}")
    books.figures.update(sigterm_to_exit=round(exited - signalled, 2),
                         longest_pause=round(longest, 2),
                         first_completion_after_exit=round(after_exit[0] - exited, 2) if after_exit else None)
    books.assert_balanced()
    assert shutdown and shutdown[-1][0] == "finished", shutdown
    assert not any(code >= 500 for code in answers), answers  # no 5xx during the roll
    assert answers.get(202, 0) == RATE * SECONDS
    # The next owner applies the commands the stopped worker left within 2 s of the
    # group settling: no lease (REGISTRY_LEASE_SECONDS, 30 s) is waited out.
    assert longest < 10, f"completions paused {longest:.1f} s"
