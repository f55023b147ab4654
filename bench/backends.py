"""The backends side by side, in one run: PostgreSQL against TerminusDB as the graph store,
PostgreSQL against Elasticsearch as the search read model.

    python -m bench.backends [--commands N] [--events N] [--rebuild-events N]
                             [--parts commands,live,rebuild]          (make bench-backends)

Interleaved (A, B, A, B, A, B) so that both see the same host, and the ratio B/A of the
medians is the figure that says something on a machine whose speed moves 2-3x:
- commands applied/s by one worker (bench.workers' path: commands appended as the API
  does, publisher, command agent, graph write, mark-done), GRAPH_BACKEND=postgres vs
  terminusdb, with the worker's CPU per command;
- live projection events/s (bench.projections' path: events produced to
  instance_events, one worker's projection agents), SEARCH_BACKEND=postgres vs
  elasticsearch;
- rebuild events/s from the event store into a fresh read model and swap, postgres vs
  elasticsearch.
Needs the stack with both servers (`spice stack up --with elasticsearch,terminusdb`).
"""
from __future__ import annotations

import argparse
import asyncio
import io
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable

import aiohttp
from aiokafka import AIOKafkaProducer

from bench.api import LOGS, setup_db, wait_applied
from bench.common import CpuMeter, machine
from bench.projections import drop_bucket, events
from bench.workers import append_creates
from spice.handlers import rebuild
from spice.kafka_client import kafka_options
from spice.runtime import Runtime
from spice.settings import Settings
from tests.integration.kafka_helpers import wait_for
from tests.integration.worker import WorkerProcess

PORT = 16368


async def commands_applied(runtime: Runtime, key: str, backend: str, total: int) -> tuple[float, float]:
    """(applied/s, worker CPU ms per command) with the graph on `backend`."""
    worker = WorkerProcess(PORT, LOGS / f"backends-worker-{backend}.log",
                           env={"GRAPH_BACKEND": backend}).start()
    try:
        await asyncio.sleep(3)  # partitions assigned
        async with aiohttp.ClientSession(headers={"X-API-Key": key}) as session:
            db = await setup_db(session, worker.url)
        assert worker.proc is not None
        meter = CpuMeter(worker.proc.pid)
        meter.start()
        started = time.perf_counter()
        ids = await append_creates(runtime, db, total)
        finished = await wait_applied(runtime, ids, timeout=1200)
        meter.stop()
        return total / (finished - started), meter.process * 1000 / total
    finally:
        worker.stop()


async def search_documents(settings: Settings, runtime: Runtime, db: str) -> int:
    if settings.search_backend == "elasticsearch":
        from spice.stores.search_elasticsearch import alias_name

        index = runtime.search
        alias = alias_name(db, "instance")
        if not await index.es.indices.exists_alias(name=alias):  # type: ignore[attr-defined]
            return 0
        try:
            answer = await index.es.count(index=alias)  # type: ignore[attr-defined]
        except Exception as error:  # noqa: BLE001 - a shard not started yet: none searchable
            if getattr(error, "status_code", None) == 503:
                return 0
            raise
        return int(answer["count"])
    async with runtime.pool.acquire() as conn:
        return int(await conn.fetchval("SELECT count(*) FROM search_docs WHERE db = $1", db))


async def projected_live(backend: str, count: int) -> float:
    settings = Settings(search_backend=backend)
    runtime = await Runtime.open(settings)
    worker = WorkerProcess(PORT, LOGS / f"backends-projection-{backend}.log",
                           env={"SEARCH_BACKEND": backend}).start()
    producer = AIOKafkaProducer(**kafka_options(settings), linger_ms=5, max_batch_size=1 << 20)
    await producer.start()
    try:
        await asyncio.sleep(5)  # partitions assigned
        db = f"bench{uuid.uuid4().hex[:8]}"
        started = time.perf_counter()
        for envelope in events(db, count):
            await producer.send("instance_events", envelope.to_json(), key=envelope.aggregate_id.encode())
        await producer.flush()

        async def all_there() -> bool:
            return await search_documents(settings, runtime, db) >= count
        await wait_for(all_there, timeout=900, interval=0.1)
        return count / (time.perf_counter() - started)
    finally:
        await producer.stop()
        worker.stop()
        await runtime.close()


async def rebuilt(backend: str, count: int) -> float:
    settings = Settings(search_backend=backend,
                        event_store_bucket=f"spice-bench-rebuild-{uuid.uuid4().hex[:8]}")
    db = f"bench{uuid.uuid4().hex[:8]}"
    writer = await Runtime.open(settings)
    try:
        batch = events(db, count)
        slots = asyncio.Semaphore(64)

        async def store(envelope) -> None:  # type: ignore[no-untyped-def]
            async with slots:
                await writer.event_store.append(envelope)
        await asyncio.gather(*[store(e) for e in batch])
    finally:
        await writer.close()
    runtime = await Runtime.open(settings)
    try:
        started = time.perf_counter()
        await rebuild.rebuild(runtime, db, out=io.StringIO())
        elapsed = time.perf_counter() - started
        assert await search_documents(settings, runtime, db) == count
        return count / elapsed
    finally:
        await drop_bucket(runtime.s3, settings.event_store_bucket)
        await runtime.close()


async def side_by_side(name: str, a: str, b: str,
                       run: Callable[[str], Awaitable[float]], rounds: int = 3) -> None:
    figures: dict[str, list[float]] = {a: [], b: []}
    for _ in range(rounds):
        for backend in (a, b):
            figures[backend].append(await run(backend))
    median_a, median_b = (statistics.median(figures[x]) for x in (a, b))
    for backend, median in ((a, median_a), (b, median_b)):
        shown = ", ".join(f"{x:,.0f}" for x in figures[backend])
        print(f"{name}, {backend}: {median:,.0f}  (runs: {shown})", flush=True)
    print(f"{name}: {b}/{a} = {median_b / median_a:.2f}", flush=True)


async def main(commands: int, count: int, rebuild_count: int, parts: set[str]) -> None:
    LOGS.mkdir(parents=True, exist_ok=True)
    print(f"# backends side by side ({machine()}); interleaved, medians of 3", flush=True)
    if "commands" in parts:
        await applied_side_by_side(commands)
    if "live" in parts:
        await side_by_side(f"live projection events/s, 1 worker, {count:,} events", "postgres",
                           "elasticsearch", lambda b: projected_live(b, count))
    if "rebuild" in parts:
        await side_by_side(f"rebuild events/s, {rebuild_count:,} events from S3", "postgres",
                           "elasticsearch", lambda b: rebuilt(b, rebuild_count))


async def applied_side_by_side(commands: int) -> None:
    runtime = await Runtime.open(Settings())
    try:
        _, key = await runtime.keys.create(f"bench-backends-{uuid.uuid4().hex[:8]}", {"*": "admin"},
                                           rate_per_second=1e6)
        cpu: dict[str, list[float]] = {"postgres": [], "terminusdb": []}

        async def applied(backend: str) -> float:
            rate, ms = await commands_applied(runtime, key, backend, commands)
            cpu[backend].append(ms)
            return rate
        await side_by_side(f"commands applied/s, 1 worker, {commands:,} creates", "postgres",
                           "terminusdb", applied)
        print("worker CPU per command: " + "; ".join(
            f"{b} {statistics.median(v):.2f} ms" for b, v in cpu.items()), flush=True)
    finally:
        await runtime.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--commands", type=int, default=1000)
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--rebuild-events", type=int, default=10000)
    parser.add_argument("--parts", default="commands,live,rebuild",
                        help="which comparisons to run, comma-separated (default: all three)")
    args = parser.parse_args()
    asyncio.run(main(args.commands, args.events, args.rebuild_events,
                     set(args.parts.split(","))))
