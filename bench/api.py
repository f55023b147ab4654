"""HTTP API and command worker figures against real workers on the local stack.

    python -m bench.api [--commands N]

Prints: accepted commands/s on the async endpoint with 64 concurrent clients and
commands fully applied per second, served (1) by one worker that also applies,
(2) by an API process beside that worker, at the same CPU priority and with the
worker at WORKER_NICE=10 (docs/roles.md), (3) by two workers; sync create latency
p50/p99.
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from pathlib import Path

import aiohttp

from bench.common import CpuMeter, machine, report
from bench.http_client import Connection
from spice.client import SpiceClient
from spice.runtime import Runtime
from spice.settings import Settings
from tests.integration.worker import WorkerProcess

V1 = "/api/v1"
LOGS = Path(".run/bench")


async def setup_db(session: aiohttp.ClientSession, url: str) -> str:
    """A database with one class, through the Python client (the measured path stays on
    bench/http_client.py: a kept-alive connection per simulated client)."""
    db = f"bench{uuid.uuid4().hex[:8]}"
    client = SpiceClient(url, session=session)
    await client.create_database(db, wait=True)
    await client.create_class(db, {"id": "Item", "properties": [{"name": "n", "type": "integer"}]},
                              timeout=60)
    return db


async def submit(urls: list[str], db: str, total: int, key: str,
                 clients: int = 64) -> tuple[list[str], float]:
    """`total` async creates from `clients` concurrent clients, each on its own
    kept-alive connection (bench/http_client.py), spread over `urls`."""
    ids: list[str] = []
    counter = iter(range(total))

    async def client(i: int) -> None:
        async with Connection(urls[i % len(urls)], {"X-API-Key": key}) as http:
            path = f"{V1}/instances/{db}/async/Item/create"
            for n in counter:
                status, body = await http.post_json(path, {"instance_id": f"i{n}", "data": {"n": n}})
                if status != 202:
                    raise RuntimeError(f"{status}: {body}")
                ids.append(body["command_id"])

    started = time.perf_counter()
    await asyncio.gather(*[client(i) for i in range(clients)])
    return ids, time.perf_counter() - started


async def wait_applied(runtime: Runtime, ids: list[str], timeout: float = 600) -> float:
    """When the registry has every one of `ids` done. Each poll asks only about the
    commands not yet seen done: the poll shares the cores with what it measures, and
    counting all of them again every time cost Postgres ~35 ms a poll at 3,000."""
    deadline = time.monotonic() + timeout
    waiting = list(ids)
    while time.monotonic() < deadline:
        async with runtime.pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT event_id FROM processed_events WHERE handler = 'command-worker' "
                "AND status = 'done' AND event_id = ANY($1)", waiting)
        done = {row["event_id"] for row in rows}
        waiting = [event_id for event_id in waiting if event_id not in done]
        if not waiting:
            return time.perf_counter()
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{len(waiting)} of {len(ids)} commands not applied in {timeout}s")


async def applied_rate(runtime: Runtime, session: aiohttp.ClientSession, urls: list[str],
                       total: int, meter: CpuMeter | None = None) -> tuple[float, float]:
    """Accepted/s and applied/s; `meter` measures the CPU used while the load ran."""
    db = await setup_db(session, urls[0])
    started = time.perf_counter()
    if meter:
        meter.start()
    ids, submit_seconds = await submit(urls, db, total, session.headers["X-API-Key"])
    if meter:
        meter.stop()
    finished = await wait_applied(runtime, ids)
    return total / submit_seconds, total / (finished - started)


async def sync_latency(session: aiohttp.ClientSession, url: str, samples: int) -> list[float]:
    db = await setup_db(session, url)
    latencies = []
    for n in range(samples):
        started = time.perf_counter()
        async with session.post(f"{url}{V1}/instances/{db}/sync/Item/create",
                                json={"instance_id": f"s{n}", "data": {"n": n}}) as r:
            assert r.status == 200, await r.text()
        latencies.append(time.perf_counter() - started)
    return latencies


async def three_runs(runtime: Runtime, session: aiohttp.ClientSession, urls: list[str],
                     total: int, label: str, serving: WorkerProcess | None = None) -> None:
    """Three runs; with `serving`, also the CPU a command cost the process that took the
    requests and the whole machine while they came in: figures that move less than a
    rate when the shared host's speed moves."""
    both, process, machine_cpu = [], [], []
    for _ in range(3):
        meter = CpuMeter(serving.proc.pid) if serving and serving.proc else None
        both.append(await applied_rate(runtime, session, urls, total, meter))
        if meter:
            process.append(meter.process / total * 1000)
            machine_cpu.append(meter.machine / total * 1000)
    for name, values in ((f"async create accepted/s, 64 clients, {label}", [a for a, _ in both]),
                         (f"commands applied/s end to end, {label}", [b for _, b in both])):
        report(name, statistics.median(values), values)
    if process:
        print(f"CPU per accepted command while the load ran, {label}: serving process "
              f"{statistics.median(process):.3f} ms, whole machine {statistics.median(machine_cpu):.3f} ms",
              flush=True)


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000


async def main(total: int) -> None:
    LOGS.mkdir(parents=True, exist_ok=True)
    runtime = await Runtime.open(Settings())
    first = WorkerProcess(16266, LOGS / "worker-1.log").start()
    others: list[WorkerProcess] = []
    try:
        connector = aiohttp.TCPConnector(limit=256)
        # Its own admin key with a rate far above what is measured: the benchmark is
        # about the pipeline, not the rate limiter (which costs one Redis call).
        _, key = await runtime.keys.create(f"bench-{uuid.uuid4().hex[:8]}", {"*": "admin"},
                                           rate_per_second=1e6)
        async with aiohttp.ClientSession(connector=connector, headers={"X-API-Key": key}) as session:
            print(f"# API and worker benchmark ({machine()}), {total} commands a run", flush=True)
            # Not counted: a Kafka just started spends several times its usual CPU per
            # command while the JVM compiles its hot paths, for some 10,000 commands
            # (docs/benchmarks.md, 2026-11-27).
            warm = [(await applied_rate(runtime, session, [first.url], total))[0] for _ in range(3)]
            print(f"warm-up runs, not counted: {', '.join(f'{x:,.0f}' for x in warm)} accepted/s",
                  flush=True)
            await three_runs(runtime, session, [first.url], total, "1 worker serving and applying",
                             serving=first)
            lat = await sync_latency(session, first.url, 200)
            print(f"sync create latency, 1 worker, sequential: p50 {pct(lat, 50):.1f} ms, "
                  f"p99 {pct(lat, 99):.1f} ms", flush=True)

            api = WorkerProcess(16268, LOGS / "api-process.log", env={
                "SPICE_ROLE": "api", "SPICE_WORKER_URLS": first.url}).start()
            others.append(api)
            await three_runs(runtime, session, [api.url], total,
                             "API process + 1 worker, same CPU priority", serving=api)
            lat = await sync_latency(session, api.url, 200)
            print(f"sync create latency, API process + 1 worker: p50 {pct(lat, 50):.1f} ms, "
                  f"p99 {pct(lat, 99):.1f} ms", flush=True)
            first.stop()
            first = WorkerProcess(16266, LOGS / "worker-1.log", env={"WORKER_NICE": "10"}).start()
            await three_runs(runtime, session, [api.url], total,
                             "API process + 1 worker at WORKER_NICE=10", serving=api)
            first.stop()
            first = WorkerProcess(16266, LOGS / "worker-1.log").start()
            api.stop()

            second = WorkerProcess(16267, LOGS / "worker-2.log").start()
            others.append(second)
            await asyncio.sleep(15)  # let the group rebalance across both workers
            await three_runs(runtime, session, [first.url, second.url], total,
                             "over 2 workers serving and applying")
    finally:
        for process in others:
            process.stop()
        first.stop()
        await runtime.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--commands", type=int, default=3000)
    asyncio.run(main(parser.parse_args().commands))
