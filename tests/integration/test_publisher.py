import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from spice.agents.publisher import Publisher
from spice.domain.envelope import Envelope, now
from tests.integration.kafka_helpers import collect, create_topic, wait_for

TOPIC = "publisher_test"


def envelope(aggregate_id: str, i: int) -> Envelope:
    event_id = str(uuid.uuid4())
    return Envelope(event_id=event_id, event_type="THING_REQUESTED", aggregate_type="Thing",
                    aggregate_id=aggregate_id, occurred_at=now(), data={"i": i},
                    metadata={"kind": "command", "command_id": event_id, "kafka_topic": TOPIC})


@pytest.fixture(scope="module")
async def topic(local_stack):
    await create_topic(local_stack, TOPIC)
    return TOPIC


async def append_many(store, count: int, concurrency: int = 64) -> list[Envelope]:
    aggregates = [f"pub-{uuid.uuid4().hex[:8]}" for _ in range(concurrency)]
    stored = []

    async def writer(agg: str, n: int):
        for i in range(n):
            stored.append(await store.append(envelope(agg, i), allocate=True))

    per = count // concurrency
    await asyncio.gather(*[writer(a, per) for a in aggregates])
    return stored


async def test_publishes_every_appended_event_keyed_by_aggregate(scratch, topic, settings):
    store = scratch.event_store
    start = store.position_before(time.time() - 1)
    publisher = Publisher(store, scratch.settings, start_after=start,
                          checkpoint_key=f"checkpoints/test-{uuid.uuid4().hex}.json")
    task = asyncio.create_task(publisher.run())
    try:
        stored = await append_many(store, 256)
        seen = await collect(settings, topic, {e.event_id for e in stored})
        assert set(seen) == {e.event_id for e in stored}
        loaded = await wait_for(publisher.checkpoints.load, timeout=10)
        assert loaded.position is not None and loaded.position > start
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_publisher_keeps_publishing_when_its_lock_connection_is_terminated(scratch, topic, settings):
    """PostgreSQL terminates the backend holding the leader's advisory lock (as a restart
    or an operator would): the publisher takes the lock again on a new connection and
    goes on, and what was appended meanwhile reaches Kafka."""
    store = scratch.event_store
    publisher = Publisher(store, scratch.settings, start_after=store.position_before(time.time() - 1),
                          checkpoint_key=f"checkpoints/test-{uuid.uuid4().hex}.json")
    task = asyncio.create_task(publisher.run())
    try:
        await wait_for(lambda: publisher.stats.is_leader and publisher._lock_conn, timeout=30)
        before = await append_many(store, 64)
        await collect(settings, topic, {e.event_id for e in before})
        producer = publisher._producer  # stepping down would have made a new one
        for _ in range(3):
            pid = publisher._lock_conn.get_server_pid()
            async with store.pool.acquire() as conn:
                assert await conn.fetchval("SELECT pg_terminate_backend($1)", pid)
            await wait_for(lambda p=pid: publisher._lock_conn is not None
                           and publisher._lock_conn.get_server_pid() != p, timeout=10)
        after = await append_many(store, 64)
        seen = await collect(settings, topic, {e.event_id for e in after})
        assert set(seen) == {e.event_id for e in after}
        assert publisher.stats.is_leader and publisher._producer is producer
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def start_publisher(checkpoint_key: str, start_after: str, log: Path,
                    batch_size: int = 200) -> subprocess.Popen:
    """`spice publish` in its own process, on the scratch bucket."""
    return subprocess.Popen(
        [sys.executable, "-m", "spice.cli", "publish", "--checkpoint-key", checkpoint_key,
         "--start-after", start_after],
        stdout=open(log, "ab"), stderr=subprocess.STDOUT,
        env={**os.environ, "EVENT_PUBLISHER_BATCH_SIZE": str(batch_size),
             "EVENT_STORE_BUCKET": "spice-scratch"})


async def test_publisher_sigkilled_mid_batch_skips_nothing(scratch, topic, settings, tmp_path):
    store = scratch.event_store
    checkpoint_key = f"checkpoints/test-{uuid.uuid4().hex}.json"
    start = store.position_before(time.time() - 1)
    stored = await append_many(store, 6400)
    expected = {e.event_id for e in stored}
    log = tmp_path / "publisher.log"
    # Small passes, so that there is a "middle" to kill it in.
    proc = start_publisher(checkpoint_key, start, log, batch_size=2)
    try:
        # Kill it while it is publishing: as soon as some, not all, events are out.
        partial = await collect(settings, topic, expected, timeout=60,
                                enough=50)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert len(partial) < len(expected), "publisher finished before it could be killed"
        proc = start_publisher(checkpoint_key, start, log)
        seen = await collect(settings, topic, expected, timeout=90)
        assert set(seen) == expected, f"{len(expected - set(seen))} events never reached Kafka"
    finally:
        proc.kill()
        proc.wait()


async def test_two_publishers_only_one_publishes_at_a_time(scratch, topic, settings, tmp_path):
    store = scratch.event_store
    checkpoint_key = f"checkpoints/test-{uuid.uuid4().hex}.json"
    start = store.position_before(time.time() - 1)
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    procs = [start_publisher(checkpoint_key, start, log) for log in logs]
    try:
        def leaders():
            return [i for i, log in enumerate(logs)
                    if log.exists() and "publisher is the leader" in log.read_text()]

        first = (await wait_for(leaders, timeout=30))
        await asyncio.sleep(2)
        assert leaders() == first and len(first) == 1
        stored = await append_many(store, 128)
        seen = await collect(settings, topic, {e.event_id for e in stored})
        assert len(seen) == 128
        leader = first[0]
        procs[leader].send_signal(signal.SIGKILL)
        procs[leader].wait()
        other = 1 - leader
        await wait_for(lambda: other in leaders(), timeout=30)
        more = await append_many(store, 64)
        seen = await collect(settings, topic, {e.event_id for e in more})
        assert len(seen) == 64
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


async def test_fresh_appends_never_move_the_position_past_an_unlisted_backlog(scratch, topic, settings):
    """Behind a backlog older than the lookback window, fresh appends are announced and
    published at once; the checkpoint must not jump past the backlog still unlisted."""
    store = scratch.event_store
    start = store.position_before(time.time() - 1)
    backlog = await append_many(store, 240, concurrency=2)
    await asyncio.sleep(2)  # the backlog is now older than the 1 s lookback below
    small = scratch.settings.model_copy(update={"event_publisher_batch_size": 10,
                                                "event_publisher_lookback_seconds": 1.0})
    publisher = Publisher(store, small, start_after=start,
                          checkpoint_key=f"checkpoints/test-{uuid.uuid4().hex}.json")
    previous, store.on_stored = store.on_stored, publisher.wake
    task = asyncio.create_task(publisher.run())
    try:
        fresh = await append_many(store, 64, concurrency=16)  # announced while behind
        wanted = {e.event_id for e in backlog + fresh}
        seen = await collect(settings, topic, wanted, timeout=60)
        assert set(seen) >= wanted, f"{len(wanted - set(seen))} events never published"
    finally:
        store.on_stored = previous
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_sweeper_resends_what_is_stored_but_unprocessed(scratch):
    """The safety net: stored envelopes no handler finished are sent again; finished
    ones are not."""
    from spice.agents.sweeper import Sweeper
    from spice.domain.messages import CommandType, new_command

    store = scratch.event_store
    name = f"test-{uuid.uuid4().hex[:8]}"
    sent: list[tuple[str, str]] = []

    async def send(topic, value, key):
        sent.append((topic, Envelope.from_json(value).event_id))

    sweeper = Sweeper(store, scratch.pool, send, delay=0.0, name=name)
    await sweeper.save(store.position_before(time.time() - 1))
    finished = new_command(CommandType.CREATE_DATABASE, f"db:{name}a", {"name": f"{name}a"})
    forgotten = new_command(CommandType.CREATE_DATABASE, f"db:{name}b", {"name": f"{name}b"})
    for command in (finished, forgotten):
        await store.append(command, allocate=True)
    claim = await scratch.registry.claim("command-worker", finished.event_id, finished.aggregate_id, 1)
    assert claim.outcome.value == "claimed"
    await scratch.registry.mark_done("command-worker", finished.event_id, finished.aggregate_id, 1)
    await asyncio.sleep(0.01)

    async def drain():  # other tests' batches may share the range: sweep until through
        total = 0
        while True:
            swept, resent = await sweeper.sweep_once()
            total += swept
            if swept < sweeper.batch:
                return total

    assert await drain() >= 2
    ids = {event_id for _, event_id in sent}
    assert forgotten.event_id in ids and finished.event_id not in ids
    assert ("database_commands", forgotten.event_id) in sent
    sent.clear()
    await drain()
    assert forgotten.event_id not in {event_id for _, event_id in sent}  # swept once
