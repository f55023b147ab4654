"""Projection figures: events projected per second live (through the projection
agents of a real worker) and during a rebuild from the event store.

    python -m bench.projections [--events N]

Live: N INSTANCE_CREATED envelopes are produced to `instance_events` (as the
publisher would) and the clock stops when the read model holds all N documents.
Rebuild: the same N events are stored in a bucket of their own (`spice-bench`)
and `spice projections rebuild --db` replays them into a fresh table and swaps it in.
"""
from __future__ import annotations

import argparse
import asyncio
import io
import statistics
import time
import uuid
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer

from bench.common import machine, report
from spice.domain.envelope import Envelope, now
from spice.domain.messages import EventType, instance_aggregate
from spice.handlers import rebuild
from spice.kafka_client import kafka_options
from spice.runtime import Runtime
from spice.settings import Settings
from spice.stores.search import PostgresSearchIndex
from tests.integration.kafka_helpers import wait_for
from tests.integration.worker import WorkerProcess

LOGS = Path("test-artifacts") / "bench"


def events(db: str, count: int) -> list[Envelope]:
    out = []
    for n in range(count):
        data = {"db": db, "class_id": "Item", "instance_id": f"i{n}",
                "data": {"name": f"item {n}", "n": n, "city": ["Seoul", "London", "Lima"][n % 3]}}
        out.append(Envelope(event_id=str(uuid.uuid4()), event_type=EventType.INSTANCE_CREATED.value,
                            aggregate_type="Instance", aggregate_id=instance_aggregate(db, "Item", f"i{n}"),
                            occurred_at=now(), data=data, sequence_number=1,
                            metadata={"kind": "domain", "command_id": str(uuid.uuid4()),
                                      "command_type": "CREATE_INSTANCE",
                                      "kafka_topic": "instance_events"}))
    return out


async def documents(runtime: Runtime, db: str) -> int:
    async with runtime.pool.acquire() as conn:
        return int(await conn.fetchval("SELECT count(*) FROM search_docs WHERE db = $1", db))


async def documents_at_least(runtime: Runtime, db: str, count: int) -> bool:
    return await documents(runtime, db) >= count


async def live(runtime: Runtime, count: int) -> float:
    db = f"bench{uuid.uuid4().hex[:8]}"
    batch = events(db, count)
    producer = AIOKafkaProducer(**kafka_options(runtime.settings),
                                linger_ms=5, max_batch_size=1 << 20)
    await producer.start()
    try:
        started = time.perf_counter()
        for envelope in batch:
            await producer.send("instance_events", envelope.to_json(),
                                key=envelope.aggregate_id.encode())
        await producer.flush()
        await wait_for(lambda: documents_at_least(runtime, db, count), timeout=600, interval=0.05)
        return count / (time.perf_counter() - started)
    finally:
        await producer.stop()


async def store_and_project(writer: Runtime, db: str, count: int) -> list[Envelope]:
    """`count` INSTANCE_CREATED events of `db` appended (64 at a time) to the writer's
    store and projected into the PostgreSQL read model; the events."""
    batch = events(db, count)
    slots = asyncio.Semaphore(64)

    async def store(envelope: Envelope) -> None:
        async with slots:
            await writer.event_store.append(envelope)
    await asyncio.gather(*[store(e) for e in batch])
    await PostgresSearchIndex(writer.pool).apply_many(batch)
    return batch


async def rebuilt(settings: Settings, count: int) -> float:
    """A bucket of its own per run, so the rebuild replays exactly these `count` events
    (the shared bench bucket holds every earlier run's events too, which made the
    figure a function of the bucket's history)."""
    own = settings.model_copy(update={"event_store_bucket": f"spice-bench-rebuild-{uuid.uuid4().hex[:8]}"})
    db = f"bench{uuid.uuid4().hex[:8]}"
    writer = await Runtime.open(own)
    try:
        # A rebuild runs over a populated read model (that is what it is for): the
        # events are projected live first, untimed, as the worker would have.
        batch = await store_and_project(writer, db, count)
        # ...and settled, as a read model is by the time anyone rebuilds it: right after
        # 20,000 inserts autovacuum is working on the table, and the swap's table lock
        # waits deadlock_timeout (1 s) for it to step aside.
        async with writer.pool.acquire() as conn:
            await conn.execute("VACUUM ANALYZE search_docs")
    finally:
        await writer.close()
    del batch
    # The rebuild on a runtime of its own, as `spice projections rebuild` runs in its own
    # process: not on the writer's, whose cache holds every envelope just appended.
    runtime = await Runtime.open(own)
    try:
        started = time.perf_counter()
        result = await rebuild.rebuild(runtime, db, out=io.StringIO())
        elapsed = time.perf_counter() - started
        assert await documents(runtime, db) == count
        assert result["envelopes_replayed"] >= count
        return count / elapsed
    finally:
        await drop_bucket(runtime.s3, own.event_store_bucket)
        await runtime.close()


async def drop_bucket(s3: Any, bucket: str) -> None:
    """A run's bucket goes when the run is over: SeaweedFS gives every bucket volumes of
    its own, and after some 60 runs `weed mini` had none left to give (PUTs failed with
    InternalError)."""
    paginator = s3.get_paginator("list_objects_v2")
    async for page in paginator.paginate(Bucket=bucket):
        keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
        if keys:
            await s3.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
    await s3.delete_bucket(Bucket=bucket)


async def main(count: int, rebuild_events: int = 0, live_runs: bool = True,
               rebuild_runs: bool = True) -> None:
    LOGS.mkdir(parents=True, exist_ok=True)
    print(f"# projection benchmark ({machine()}), {count:,} events a run")
    if live_runs:
        runtime = await Runtime.open(Settings())
        worker = WorkerProcess(16366, LOGS / "projection-worker.log").start()
        try:
            await asyncio.sleep(5)  # partitions assigned
            runs = [await live(runtime, count) for _ in range(3)]
            report("events projected/s live, 1 worker", statistics.median(runs), runs)
        finally:
            worker.stop()
            await runtime.close()
    if not rebuild_runs:
        return
    rebuild_count = rebuild_events or count
    runs = [await rebuilt(Settings(), rebuild_count) for _ in range(3)]
    report(f"events projected/s during a rebuild (--db, {rebuild_count:,} events, from S3, "
           "read model populated)",
           statistics.median(runs), runs)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--rebuild-events", type=int, default=20000,
                        help="events in the store the rebuild replays (default 20,000)")
    parser.add_argument("--rebuild-only", action="store_true")
    parser.add_argument("--live-only", action="store_true")
    args = parser.parse_args()
    asyncio.run(main(args.events, args.rebuild_events, not args.rebuild_only, not args.live_only))
