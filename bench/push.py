"""Live status push: many WebSockets on one process while commands flow.

    python -m bench.push [--sockets N] [--commands N]                     (make bench-push)

A worker of its own on the local stack; --sockets (1,000) WebSockets open on it:
--followers (10) follow the database the commands go to (`/api/v1/ws/commands?db=`),
the others one quiet database each; then --commands (200) instance creates are sent at
--rate (50) a second. Printed: the worker's resident memory per socket (RSS before and after
the sockets opened), and the delay from each status change (its timestamp, set by the
process that made the change) to its delivery on the followers, p50 and p99 over every
delivery. With --followers equal to --sockets every socket gets every change: a
fan-out stress figure (the benchmark's own client then bounds the rate).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid

import aiohttp

from bench.api import LOGS, setup_db
from bench.common import machine
from spice.client import SpiceClient
from spice.runtime import Runtime
from spice.settings import Settings
from tests.integration.worker import WorkerProcess

V1 = "/api/v1"


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS"))


async def main(sockets: int, followers: int, commands: int, rate: float) -> None:
    print(f"# push ({machine()})", flush=True)
    LOGS.mkdir(parents=True, exist_ok=True)
    runtime = await Runtime.open(Settings())
    _, key = await runtime.keys.create(f"bench-push-{uuid.uuid4().hex[:8]}", {"*": "admin"},
                                       rate_per_second=1e6)
    await runtime.close()
    worker = WorkerProcess(16276, LOGS / "push-worker.log").start()
    delays: list[float] = []
    try:
        headers = {"X-API-Key": key}
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(headers=headers, connector=connector) as http:
            spice = SpiceClient(worker.url, session=http)
            db = await setup_db(http, worker.url)
            assert worker.proc is not None
            pid = worker.proc.pid
            before = rss_kib(pid)
            base = worker.url.replace("http", "ws", 1) + f"{V1}/ws/commands?db="
            opened = await asyncio.gather(*(http.ws_connect(base + db, heartbeat=None)
                                            for _ in range(followers)))
            quiet = await asyncio.gather(*(http.ws_connect(f"{base}quiet{i}", heartbeat=None)
                                           for i in range(sockets - followers)))
            await asyncio.sleep(2)
            after = rss_kib(pid)
            print(f"{sockets:,} sockets open: worker RSS {before / 1024:,.0f} -> "
                  f"{after / 1024:,.0f} MiB = {(after - before) / sockets:,.1f} KiB per socket",
                  flush=True)
            received = [0]

            async def read(socket: aiohttp.ClientWebSocketResponse) -> None:
                async for message in socket:
                    if message.type != aiohttp.WSMsgType.TEXT:
                        return
                    doc = json.loads(message.data)
                    delays.append((time.time() - doc["updated_at"]) * 1000)
                    received[0] += 1
            readers = [asyncio.create_task(read(s)) for s in opened]
            async def create(index: int) -> str:
                await asyncio.sleep(index / rate)  # a steady flow, not a burst
                answer = await spice.create_instance(db, "Item", f"i{index}", {"n": index})
                return str(answer["command_id"])
            started = time.perf_counter()
            ids = await asyncio.gather(*(create(i) for i in range(commands)))
            for command_id in ids:
                await spice.wait(command_id, timeout=60)  # raises unless it completed
            await asyncio.sleep(2)  # the last deliveries
            elapsed = time.perf_counter() - started
            for socket in [*opened, *quiet]:
                await socket.close()
            await asyncio.gather(*readers, return_exceptions=True)
        delays.sort()
        p99 = delays[min(len(delays) - 1, int(len(delays) * 0.99))] if delays else float("nan")
        print(f"{commands} commands at {rate:g}/s in {elapsed:.1f} s, {sockets:,} sockets open: "
              f"{received[0]:,} deliveries to {followers} followers; change -> delivery p50 "
              f"{statistics.median(delays):.1f} ms, p99 {p99:.1f} ms   (target p50 <= 20)", flush=True)
    finally:
        worker.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--sockets", type=int, default=1000)
    parser.add_argument("--followers", type=int, default=10)
    parser.add_argument("--commands", type=int, default=200)
    parser.add_argument("--rate", type=float, default=50.0, help="commands per second")
    args = parser.parse_args()
    asyncio.run(main(args.sockets, args.followers, args.commands, args.rate))
