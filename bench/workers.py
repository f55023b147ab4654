"""Command worker throughput without the HTTP layer in the way.

    python -m bench.workers [--commands N]

One real worker runs (`faust -A spice.app worker`), then two; this process appends N
CREATE_INSTANCE commands to the event store exactly as the API does (group commit,
64 at a time, PENDING recorded), and the clock stops when the processed-events
registry says all N are done. What is measured is the worker's path: publisher →
Kafka → command agent → claim, decide, event append, graph write, mark-done, status.
bench/api.py measures the same with the API (and its HTTP clients) sharing the cores.
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid

import aiohttp

from bench.api import LOGS, setup_db, wait_applied
from bench.common import CpuMeter, machine, report
from spice.domain.messages import CommandType, instance_aggregate
from spice.handlers.submit import CommandSubmitter
from spice.runtime import Runtime
from spice.settings import Settings
from tests.integration.worker import WorkerProcess


async def append_creates(runtime: Runtime, db: str, total: int) -> list[str]:
    """`total` CREATE_INSTANCE commands appended as the API does, 64 at a time; their ids."""
    submitter = CommandSubmitter(runtime.event_store, runtime.status)
    slots = asyncio.Semaphore(64)
    ids: list[str] = []

    async def one(n: int) -> None:
        async with slots:
            data = {"db": db, "class_id": "Item", "instance_id": f"i{n}", "data": {"n": n}}
            stored = await submitter.submit(CommandType.CREATE_INSTANCE,
                                            instance_aggregate(db, "Item", f"i{n}"), data,
                                            actor="bench", db=db)
            ids.append(stored.command_id)

    await asyncio.gather(*[one(n) for n in range(total)])
    return ids


async def applied_rate(runtime: Runtime, session: aiohttp.ClientSession, url: str, total: int,
                       meter: CpuMeter) -> float:
    db = await setup_db(session, url)
    meter.start()
    started = time.perf_counter()
    ids = await append_creates(runtime, db, total)
    finished = await wait_applied(runtime, ids)
    meter.stop()
    return total / (finished - started)


async def main(total: int) -> None:
    LOGS.mkdir(parents=True, exist_ok=True)
    runtime = await Runtime.open(Settings())
    worker = WorkerProcess(16268, LOGS / "worker-only.log").start()
    second: WorkerProcess | None = None
    try:
        _, key = await runtime.keys.create(f"bench-workers-{uuid.uuid4().hex[:8]}", {"*": "admin"},
                                           rate_per_second=1e6)
        async with aiohttp.ClientSession(headers={"X-API-Key": key}) as session:
            print(f"# command worker benchmark ({machine()}), {total:,} commands a run")
            runs, worker_ms, machine_ms = [], [], []
            assert worker.proc is not None
            meter = CpuMeter(worker.proc.pid)
            for _ in range(3):
                runs.append(await applied_rate(runtime, session, worker.url, total, meter))
                worker_ms.append(meter.process * 1000 / total)
                machine_ms.append(meter.machine * 1000 / total)
            report("commands fully applied/s, 1 worker, commands appended to the store",
                   statistics.median(runs), runs)
            # Per command, and steadier than the rate when the host's speed moves: the
            # worker's own CPU, and every process's (this one, the servers) together.
            print(f"CPU per command: worker {statistics.median(worker_ms):.2f} ms "
                  f"(runs: {', '.join(f'{x:.2f}' for x in worker_ms)}); whole machine "
                  f"{statistics.median(machine_ms):.2f} ms "
                  f"(runs: {', '.join(f'{x:.2f}' for x in machine_ms)})", flush=True)
            second = WorkerProcess(16269, LOGS / "worker-only-2.log").start()
            await asyncio.sleep(15)  # let the group rebalance across both workers
            two = [await applied_rate(runtime, session, worker.url, total, meter) for _ in range(3)]
            report("commands fully applied/s, 2 workers (the same two cores)",
                   statistics.median(two), two)
    finally:
        if second is not None:
            second.stop()
        worker.stop()
        await runtime.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--commands", type=int, default=3000)
    asyncio.run(main(parser.parse_args().commands))
