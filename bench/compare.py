"""Figures side by side with a peer or a limit, measured in one run, as ratios.

    python -m bench.compare [--rounds 3] [--events 6400] [--parts appends,projection,web,framework,latency]
                                                              (make bench-compare)

The host's speed moves 2-3x from hour to hour, so an absolute figure says little about
the code; a ratio against a peer or a physical limit measured back to back on the same
stack does. Each comparison runs its sides interleaved (A, B, A, B, ...), prints every
run, the medians, and the ratio of the medians with its range over the rounds (round
i's A against round i's B).

Event store appends, 64 concurrent writers, the same 200-byte envelopes:
- ours: `S3EventStore.append` (group commit: one PUT and one reservation per batch);
- the peer: the `eventsourcing` library's PostgreSQL recorder on the same PostgreSQL,
  one `insert_events` per append from 64 threads (its API is synchronous);
- the limits underneath: SeaweedFS PUTs of batch objects of the size ours wrote, and
  PostgreSQL's reservation statement alone on batches of that size, each with the
  store's two commits in flight.
Target: ours >= 2.0x the peer.

Live projection, events/s into the PostgreSQL read model:
- ours: INSTANCE_CREATED events produced to `instance_events`, projected by a real
  worker's projection agents (claims, folded write, mark-done), until the read model
  holds them all (bench.projections.live);
- the limit: PostgreSQL's set-based upsert of the same documents alone, one statement
  per 500 (the agents' batch), no claims, no Kafka.
Target: ours >= 0.5x the bare upsert.

Async creates accepted/s, 64 clients (bench/http_client.py), each side one process:
- ours: an API process (SPICE_ROLE=api) in front of a worker at WORKER_NICE=10;
- the limit: bench/bare_web.py, which parses the same body and produces it to Kafka
  with the same producer settings, nothing else.
With the CPU each spends per request. Target: ours >= 0.5x the bare handler.

Commands applied/s by one worker, each side one process:
- ours: CREATE_INSTANCE commands appended to the event store as the API does, through
  the publisher, Kafka and one worker (claim, decide, event append, graph write,
  mark-done, status) until the registry has them done (bench.workers);
- the limit: bench/bare_faust.py, a Faust agent that decodes the same envelopes,
  produced straight to a topic of as many partitions, and writes one table entry each.
With the CPU each process spends per command. Target: ours >= 0.5x the bare agent.

Append -> Kafka latency at 100 appends/s (from the append's call to a consumer's
receipt), p50 and p99:
- ours: the publisher woken by the append (in-process, or by PostgreSQL NOTIFY);
- the original design: the same publisher polling S3 every
  EVENT_PUBLISHER_POLL_INTERVAL (3 s), its wake-ups ignored.
Target: ours p50 <= 1/100 of the polling design's.
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import orjson

from bench import api, projections, workers
from bench import event_store as store_bench
from bench.common import CpuMeter, machine
from bench.event_store import envelope
from spice.agents.publisher import Publisher
from spice.runtime import Runtime
from spice.settings import Settings
from spice.stores.projection_postgres import documents
from spice.stores.s3_event_store import S3EventStore, encode_batch
from tests.integration.kafka_helpers import wait_for
from tests.integration.worker import WorkerProcess

WRITERS = 64
IN_FLIGHT = 2  # the store's commits in flight (S3EventStore.max_in_flight)


class Side:
    """One side of a comparison: its name, one run (returns a rate), its samples."""

    def __init__(self, name: str, run: Callable[[], Awaitable[float]]) -> None:
        self.name, self.run = name, run
        self.samples: list[float] = []


async def interleaved(rounds: int, sides: list[Side]) -> None:
    for round_ in range(rounds):
        for side in sides:
            rate = await side.run()
            side.samples.append(rate)
            print(f"  round {round_ + 1}: {side.name}: {rate:,.0f}", flush=True)


def ratio_line(name: str, ours: Side, other: Side, target: float | None = None) -> str:
    ratios = [a / b for a, b in zip(ours.samples, other.samples, strict=True) if b]
    median = statistics.median(ours.samples) / statistics.median(other.samples)
    verdict = "" if target is None else (f"  target >= {target:.1f}: "
                                         f"{'met' if median >= target else 'MISSED'}")
    return (f"{name}: {median:.2f}  (ours {statistics.median(ours.samples):,.0f} / "
            f"{other.name} {statistics.median(other.samples):,.0f}; per round "
            f"{min(ratios):.2f}-{max(ratios):.2f}){verdict}")


# ---- event store appends ------------------------------------------------------------

class Appends:
    def __init__(self, runtime: Runtime, events: int) -> None:
        self.runtime, self.events = runtime, events
        self.store: S3EventStore = runtime.event_store
        self.batch_sizes: list[float] = []

    async def ours(self) -> float:
        per = self.events // WRITERS
        puts_before = next(self.store._counter)

        async def writer(aggregate: str) -> None:
            for _ in range(per):
                await self.store.append(envelope(aggregate), allocate=True)

        started = time.perf_counter()
        await asyncio.gather(*[writer(f"cmp-{uuid.uuid4().hex[:10]}") for _ in range(WRITERS)])
        elapsed = time.perf_counter() - started
        puts = next(self.store._counter) - puts_before - 1
        self.batch_sizes.append(per * WRITERS / max(1, puts))
        return per * WRITERS / elapsed

    def batch(self) -> int:
        return max(1, round(statistics.median(self.batch_sizes))) if self.batch_sizes else 32

    async def s3_limit(self) -> float:
        """PUTs of batch objects of the size ours wrote, IN_FLIGHT at a time: events/s."""
        size = self.batch()
        body = encode_batch([envelope("cmp-limit") for _ in range(size)])
        puts = max(8, self.events // size)
        bucket = self.runtime.settings.event_store_bucket
        semaphore = asyncio.Semaphore(IN_FLIGHT)

        async def put() -> None:
            async with semaphore:
                await self.store.signed.put_if_absent(bucket, f"bench/compare/{uuid.uuid4()}.jsonl",
                                                      body, "application/x-ndjson")

        started = time.perf_counter()
        await asyncio.gather(*[put() for _ in range(puts)])
        return puts * size / (time.perf_counter() - started)

    async def postgres_limit(self) -> float:
        """The reservation statement alone (dedup, sequences, pending rows) on batches of
        the size ours wrote, IN_FLIGHT at a time: events/s."""
        size = self.batch()
        batches = max(8, self.events // size)
        semaphore = asyncio.Semaphore(IN_FLIGHT)

        async def reserve() -> None:
            envelopes = [envelope(f"cmp-{uuid.uuid4().hex[:10]}") for _ in range(size)]
            async with semaphore, self.runtime.pool.acquire() as conn:
                await conn.fetch(
                    "SELECT idx FROM spice_reserve_distinct($1, $2, $3, $4, $5, $6, $7, $8)",
                    [e.event_id for e in envelopes], [e.aggregate_type for e in envelopes],
                    [e.aggregate_id for e in envelopes], [None] * size,
                    [uuid.uuid4().hex for _ in envelopes], [True] * size, [None] * size,
                    f"bench/compare/{uuid.uuid4()}")

        started = time.perf_counter()
        await asyncio.gather(*[reserve() for _ in range(batches)])
        return batches * size / (time.perf_counter() - started)


class Peer:
    """The `eventsourcing` library's PostgreSQL application recorder, in a schema of
    its own, one insert per append from WRITERS threads."""

    def __init__(self, settings: Settings, events: int) -> None:
        from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore

        self.events = events
        self.datastore = PostgresDatastore(
            settings.postgres_db, settings.postgres_host, settings.postgres_port,
            settings.postgres_user, settings.postgres_password.get_secret_value(),
            pool_size=WRITERS, schema="bench_peer")
        with self.datastore.get_connection() as conn, conn.cursor() as cursor:
            cursor.execute("CREATE SCHEMA IF NOT EXISTS bench_peer")
        self.recorder = PostgresApplicationRecorder(self.datastore)
        self.recorder.create_table()
        self.pool = ThreadPoolExecutor(WRITERS)

    def _writer(self, per: int) -> None:
        from eventsourcing.persistence import StoredEvent

        originator = uuid.uuid4()
        for version in range(1, per + 1):
            state = envelope(str(originator)).to_json()
            self.recorder.insert_events([StoredEvent(originator, version, "bench", state)])

    async def run(self) -> float:
        per = self.events // WRITERS
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        await asyncio.gather(*[loop.run_in_executor(self.pool, self._writer, per)
                               for _ in range(WRITERS)])
        return per * WRITERS / (time.perf_counter() - started)

    def close(self) -> None:
        self.pool.shutdown()
        self.datastore.close()


async def compare_appends(runtime: Runtime, rounds: int, events: int) -> list[str]:
    appends, peer = Appends(runtime, events), Peer(runtime.settings, events)
    try:
        ours = Side("ours", appends.ours)
        other = Side("eventsourcing", peer.run)
        print(f"# event store appends/s, {WRITERS} concurrent writers, {events} per run")
        await interleaved(rounds, [ours, other])
        s3 = Side("SeaweedFS PUT limit", appends.s3_limit)
        postgres = Side("PostgreSQL reservation limit", appends.postgres_limit)
        print(f"# the limits underneath, batches of {appends.batch()} envelopes, "
              f"{IN_FLIGHT} in flight, interleaved with ours")
        mine = Side("ours", appends.ours)
        await interleaved(rounds, [mine, s3, postgres])
    finally:
        peer.close()
    return [ratio_line("appends/s vs the eventsourcing library (PostgreSQL recorder)",
                       ours, other, target=2.0),
            ratio_line("appends/s vs SeaweedFS PUTs of the same batches", mine, s3),
            ratio_line("appends/s vs PostgreSQL's reservation alone", mine, postgres)]


# ---- live projection ----------------------------------------------------------------

PROJECTION_BATCH = 500
BARE_UPSERT = """
    INSERT INTO search_docs AS t (db, kind, doc_id, class_id, version, deleted, labels, body)
    SELECT db, kind, doc_id, class_id, version, false, labels, body
      FROM json_to_recordset($1::json) AS u(db text, kind text, doc_id text, class_id text,
                                            version bigint, labels text, body jsonb)
    ON CONFLICT (db, kind, doc_id) DO UPDATE SET class_id = EXCLUDED.class_id,
       version = EXCLUDED.version, deleted = false, labels = EXCLUDED.labels, body = EXCLUDED.body
     WHERE t.version < EXCLUDED.version"""


async def bare_upsert(runtime: Runtime, count: int) -> float:
    db = f"bench{uuid.uuid4().hex[:8]}"
    upserts, _ = documents(projections.events(db, count))
    started = time.perf_counter()
    for at in range(0, len(upserts), PROJECTION_BATCH):
        async with runtime.pool.acquire() as conn:
            await conn.execute(BARE_UPSERT, orjson.dumps(upserts[at:at + PROJECTION_BATCH]).decode())
    return count / (time.perf_counter() - started)


async def compare_projection(runtime: Runtime, rounds: int, count: int) -> list[str]:
    projections.LOGS.mkdir(parents=True, exist_ok=True)
    worker = WorkerProcess(16366, projections.LOGS / "compare-worker.log").start()
    try:
        await asyncio.sleep(5)  # partitions assigned
        ours = Side("ours", lambda: projections.live(runtime, count))
        bare = Side("bare upsert", lambda: bare_upsert(runtime, count))
        print(f"# live projection events/s, {count} events a run")
        await interleaved(rounds, [ours, bare])
    finally:
        worker.stop()
    return [ratio_line("live projection vs PostgreSQL's set-based upsert alone", ours, bare,
                       target=0.5)]


# ---- the web layer ----------------------------------------------------------------

class Accepting:
    """Accepted/s and CPU ms per request of one serving process."""

    def __init__(self, url: str, pid: int, db: str, key: str, total: int) -> None:
        self.url, self.pid, self.db, self.key, self.total = url, pid, db, key, total
        self.cpu_ms: list[float] = []

    async def run(self) -> float:
        meter = CpuMeter(self.pid)
        meter.start()
        ids, elapsed = await api.submit([self.url], self.db, self.total, self.key)
        meter.stop()
        self.cpu_ms.append(meter.process / len(ids) * 1000)
        return len(ids) / elapsed


def start_child(argv: list[str], log_name: str, ready_url: str,
                timeout: float = 90) -> subprocess.Popen[bytes]:
    """A peer's server process, returned once `ready_url` answers."""
    log = open(Path(projections.LOGS) / log_name, "ab")  # noqa: SIM115 - the child's
    process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(ready_url, timeout=1):
                return process
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"{' '.join(argv)} did not start; see {log_name}")


async def compare_web(runtime: Runtime, rounds: int, total: int) -> list[str]:
    import aiohttp

    from bench.bare_web import TOPIC

    projections.LOGS.mkdir(parents=True, exist_ok=True)
    await store_bench.create_topic(runtime.settings, TOPIC,
                                   partitions=runtime.settings.topic_partitions)
    _, key = await runtime.keys.create(f"bench-{uuid.uuid4().hex[:8]}", {"*": "admin"},
                                       rate_per_second=1e6)
    worker = WorkerProcess(16266, projections.LOGS / "compare-worker-web.log",
                           env={"WORKER_NICE": "10"}).start()
    front = WorkerProcess(16268, projections.LOGS / "compare-api.log", env={
        "SPICE_ROLE": "api", "SPICE_WORKER_URLS": worker.url}).start()
    bare = start_child([sys.executable, "-m", "bench.bare_web", "16399"], "bare-web.log",
                       "http://127.0.0.1:16399/livez")
    try:
        async with aiohttp.ClientSession(headers={"X-API-Key": key}) as session:
            db = await api.setup_db(session, front.url)
        assert front.proc is not None
        ours_side = Accepting(front.url, front.proc.pid, db, key, total)
        bare_side = Accepting("http://127.0.0.1:16399", bare.pid, db, key, total)
        await ours_side.run()  # warm-up, not counted (a fresh JVM, cold caches)
        await bare_side.run()
        ours_side.cpu_ms.clear()
        bare_side.cpu_ms.clear()
        ours = Side("ours", ours_side.run)
        limit = Side("bare aiohttp + Kafka", bare_side.run)
        print(f"# async creates accepted/s, 64 clients, {total} a run")
        await interleaved(rounds, [ours, limit])
        print(f"CPU per accepted request, serving process: ours "
              f"{statistics.median(ours_side.cpu_ms):.3f} ms, bare "
              f"{statistics.median(bare_side.cpu_ms):.3f} ms")
    finally:
        bare.terminate()
        bare.wait(10)
        front.stop()
        worker.stop()
    return [ratio_line("accepted/s vs a bare aiohttp handler producing to Kafka", ours, limit,
                       target=0.5)]


# ---- the framework ------------------------------------------------------------------

BARE_FAUST_PORT = 16397


class BareFaust:
    def __init__(self, runtime: Runtime, pid: int, total: int) -> None:
        from aiokafka import AIOKafkaProducer

        from spice.kafka_client import kafka_options

        self.runtime, self.pid, self.total = runtime, pid, total
        self.producer = AIOKafkaProducer(**kafka_options(runtime.settings), linger_ms=5,
                                         max_batch_size=1 << 20)
        self.cpu_ms: list[float] = []

    async def count(self, session: object) -> int:
        async with session.get(f"http://127.0.0.1:{BARE_FAUST_PORT}/count") as r:  # type: ignore[attr-defined]
            return int((await r.json())["count"])

    async def reached(self, session: object, target: int) -> bool:
        return await self.count(session) >= target

    async def consuming(self, timeout: float = 120) -> None:
        """Until the agent has its partitions: its consumer starts at the end of the topic
        (`latest`), so what is produced before its first assignment is never counted, and
        a run's count fell short of its commands for good. One probe a second until one
        is counted."""
        import aiohttp

        from bench.bare_faust import TOPIC
        from spice.domain.messages import CommandType, new_command

        async with aiohttp.ClientSession() as session:
            before = await self.count(session)
            deadline = time.monotonic() + timeout
            while await self.count(session) == before:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the bare Faust agent counted nothing in {timeout:.0f} s")
                probe = new_command(CommandType.CREATE_INSTANCE, "probe:Item/p", {"db": "probe"},
                                    actor="bench", sequence_number=1)
                await self.producer.send_and_wait(TOPIC, probe.to_json(), key=b"probe")
                await asyncio.sleep(1)

    async def run(self) -> float:
        import aiohttp

        from bench.bare_faust import TOPIC
        from spice.domain.messages import CommandType, instance_aggregate, new_command

        db = f"bench{uuid.uuid4().hex[:8]}"
        envelopes = [new_command(
            CommandType.CREATE_INSTANCE, instance_aggregate(db, "Item", f"i{n}"),
            {"db": db, "class_id": "Item", "instance_id": f"i{n}", "data": {"n": n}},
            actor="bench", sequence_number=1, metadata={"db": db}) for n in range(self.total)]
        async with aiohttp.ClientSession() as session:
            before = await self.count(session)
            meter = CpuMeter(self.pid)
            meter.start()
            started = time.perf_counter()
            for envelope_ in envelopes:
                await self.producer.send(TOPIC, envelope_.to_json(),
                                         key=envelope_.aggregate_id.encode())
            await self.producer.flush()
            target = before + self.total
            await wait_for(lambda: self.reached(session, target), timeout=600, interval=0.02)
            elapsed = time.perf_counter() - started
            meter.stop()
        self.cpu_ms.append(meter.process / self.total * 1000)
        return self.total / elapsed


async def compare_framework(runtime: Runtime, rounds: int, total: int) -> list[str]:
    import aiohttp

    from bench.bare_faust import TOPIC

    projections.LOGS.mkdir(parents=True, exist_ok=True)
    await store_bench.create_topic(runtime.settings, TOPIC,
                                   partitions=runtime.settings.topic_partitions)
    _, key = await runtime.keys.create(f"bench-{uuid.uuid4().hex[:8]}", {"*": "admin"},
                                       rate_per_second=1e6)
    worker = WorkerProcess(16269, projections.LOGS / "compare-worker-apply.log").start()
    # Ours appends to the service's own bucket, the one the worker publishes from (the
    # benchmark's bucket is nobody's: commands appended there were never applied).
    service = await Runtime.open(Settings())
    faust = str(Path(sys.executable).with_name("faust"))
    bare_process = start_child([faust, "-A", "bench.bare_faust", "worker", "-l", "warn",
                                "--web-port", str(BARE_FAUST_PORT)], "bare-faust.log",
                               f"http://127.0.0.1:{BARE_FAUST_PORT}/count")
    bare = BareFaust(runtime, bare_process.pid, total)
    await bare.producer.start()
    try:
        assert worker.proc is not None
        meter = CpuMeter(worker.proc.pid)
        ours_cpu: list[float] = []
        async with aiohttp.ClientSession(headers={"X-API-Key": key}) as session:
            async def ours_run() -> float:
                rate = await workers.applied_rate(service, session, worker.url, total, meter)
                ours_cpu.append(meter.process / total * 1000)
                return rate

            await bare.consuming()
            await asyncio.sleep(5)  # the worker's group has its partitions
            ours = Side("ours", ours_run)
            limit = Side("bare Faust agent", bare.run)
            print(f"# commands applied/s, 1 worker, {total} a run")
            await interleaved(rounds, [ours, limit])
        print(f"CPU per command, the applying process: ours {statistics.median(ours_cpu):.3f} ms, "
              f"bare {statistics.median(bare.cpu_ms):.3f} ms")
    finally:
        await bare.producer.stop()
        await service.close()
        bare_process.terminate()
        bare_process.wait(30)
        worker.stop()
    return [ratio_line("applied/s vs a bare Faust agent writing one table entry", ours, limit,
                       target=0.5)]


# ---- append -> Kafka latency --------------------------------------------------------

class PollingPublisher(Publisher):
    """The original design: publish what a listing finds every poll interval."""

    def wake(self, key: str | None = None) -> None:
        pass


async def compare_latency(runtime: Runtime, rounds: int) -> list[str]:
    await store_bench.create_topic(runtime.settings, store_bench.TOPIC, partitions=8)
    p50: dict[str, list[float]] = {"woken": [], "polling": []}
    p99: dict[str, list[float]] = {"woken": [], "polling": []}
    print(f"# append -> Kafka latency, 300 appends at 100/s, poll interval "
          f"{runtime.settings.event_publisher_poll_interval:g} s")
    for round_ in range(rounds):
        for name, kind in (("woken", Publisher), ("polling", PollingPublisher)):
            lat = await store_bench.latency(runtime, 300, rate=100, publisher_class=kind)
            p50[name].append(store_bench.percentile(lat, 50) * 1000)
            p99[name].append(store_bench.percentile(lat, 99) * 1000)
            print(f"  round {round_ + 1}: {name}: p50 {p50[name][-1]:.1f} ms, "
                  f"p99 {p99[name][-1]:.1f} ms ({len(lat)} received)", flush=True)
    ours, polling = statistics.median(p50["woken"]), statistics.median(p50["polling"])
    ratios = [a / b for a, b in zip(p50["woken"], p50["polling"], strict=True)]
    verdict = "met" if ours / polling <= 0.01 else "MISSED"
    return [f"append -> Kafka p50 vs the 3 s polling publisher: {ours / polling:.4f}  "
            f"(ours {ours:.1f} ms, p99 {statistics.median(p99['woken']):.1f} ms / polling "
            f"{polling:.0f} ms, p99 {statistics.median(p99['polling']):.0f} ms; per round "
            f"{min(ratios):.4f}-{max(ratios):.4f})  target <= 0.01: {verdict}"]


async def main(rounds: int, events: int, parts: set[str]) -> None:
    # A bucket of its own, no sweeper: nothing here is for the service's workers.
    settings = Settings(event_store_bucket="spice-bench", event_sweep_interval_seconds=10 ** 9)
    runtime = await Runtime.open(settings)
    try:
        print(f"# bench.compare ({machine()}), {rounds} rounds, interleaved, medians")
        lines = []
        if "appends" in parts:
            lines += await compare_appends(runtime, rounds, events)
        if "projection" in parts:
            lines += await compare_projection(runtime, rounds, events)
        if "web" in parts:
            lines += await compare_web(runtime, rounds, events // 2)
        if "framework" in parts:
            lines += await compare_framework(runtime, rounds, events // 2)
        if "latency" in parts:
            lines += await compare_latency(runtime, rounds)
    finally:
        await runtime.close()
    print("# ratios (ours / other)")
    for line in lines:
        print(line)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--events", type=int, default=6400)
    parser.add_argument("--parts", default="appends,projection,web,framework,latency")
    options = parser.parse_args()
    asyncio.run(main(options.rounds, options.events, set(options.parts.split(","))))
