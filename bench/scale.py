"""Cost as history grows: the same figures at 10^4, 10^6 and 10^7 stored events.

    python -m bench.scale [--sizes 10000,1000000,10000000] [--aggregates 100000]
                          [--no-service] [--against 10000 --rounds 3]     (not in CI)

The history is filled through the event store's own append path (group commit, 1,000
appends in flight) into a bucket of its own (`spice-scale`): commands of mixed types
(create, update, delete of instances; class updates) over --aggregates aggregates in
10 databases, each followed by its domain event at the command's sequence number, and
the registry rows a worker would have left for both (done). PostgreSQL's tables are
shared by every bucket, so the event index, the audit index and the registry the
service works against grow with the fill. The fill grows from one size to the next;
the bucket and its rows stay (drop them with `--drop`).

At each size:
- appends/s, 64 writers, 6,400 events (bench.event_store.appends);
- append -> Kafka p50 / p99 at 100 appends/s (1,000 samples), the publisher woken in-process;
- publisher catch-up: 10,000 events stored first, then drained into Kafka (events/s);
- sweeper pass: one pass of a healthy system's sweeper (every envelope finished) over
  the catch-up's batches (ms);
- early-delivery predecessor read: the read a command delivered early makes of the
  stored commands before it (`read_aggregate` after a sequence), p50 / p99 over 200
  random aggregates of the fill;
- projection rebuild of one database of 2,000 events (`spice projections rebuild --db`),
  events replayed per second of the rebuild;
- `spice projections verify --db` of that database (ms);
- with a worker (unless --no-service): async creates accepted/s (64 clients) and
  applied/s (bench.api.applied_rate), 2,000 commands;
- PostgreSQL size of every table the history lands in (table + indexes), bytes per
  stored event, and the bucket's object count.
With --against EVENTS the last size is measured against a history of EVENTS kept in a
PostgreSQL database (`spice_scale_base`) and buckets of its own on the same servers,
interleaved over --rounds (base, large, base, large, ...): ratios from one run, as
the ratio of the two sides' medians and as the median of each round's ratio (the two
halves of a round are minutes apart, so a drift of the host's speed over the run
cancels in the latter).

Targets: every rate within 15 % and every latency within 1.5x from 10^4 to 10^7;
PostgreSQL size per stored event bounded. The CPU probe (bench.common) is taken before
and after each size's measurements; the table gives each ratio as measured and as if
the host had kept its speed (rates scaled, times divided by the probe's ratio).
"""
from __future__ import annotations

import argparse
import asyncio
import io
import random
import statistics
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import aiohttp

from bench import api
from bench import event_store as store_bench
from bench.common import cpu_probe_ms, machine
from bench.projections import drop_bucket, store_and_project
from spice.agents.sweeper import Sweeper
from spice.devstack.postgres import PostgresServer
from spice.domain.envelope import Envelope, now
from spice.domain.messages import (
    CommandType,
    EventType,
    class_aggregate,
    instance_aggregate,
    new_command,
)
from spice.handlers import rebuild
from spice.runtime import Runtime
from spice.settings import Settings
from spice.stores.s3_event_store import position_at
from tests.integration.kafka_helpers import create_topic
from tests.integration.worker import WorkerProcess

BUCKET = "spice-scale"
DATABASES = 10
IN_FLIGHT = 1000  # appends in flight during the fill: batches fill to the store's 500
# What the history lands in, in PostgreSQL (the read models hold current state only).
TABLES = ("event_index", "audit_events", "processed_events", "aggregate_sequences",
          "aggregate_versions", "batch_buckets", "pending_batches")
# A command type, the domain event it records, in the proportions of a working system.
MIX = ((CommandType.UPDATE_INSTANCE, EventType.INSTANCE_UPDATED, 6),
       (CommandType.CREATE_INSTANCE, EventType.INSTANCE_CREATED, 2),
       (CommandType.DELETE_INSTANCE, EventType.INSTANCE_DELETED, 1),
       (CommandType.UPDATE_ONTOLOGY_CLASS, EventType.ONTOLOGY_CLASS_UPDATED, 1))
KINDS = [(command, event) for command, event, weight in MIX for _ in range(weight)]


class Fill:
    """Grows the history, one command and its domain event at a time per task."""

    def __init__(self, runtime: Runtime, aggregates: int) -> None:
        self.runtime = runtime
        self.aggregates = [instance_aggregate(f"scale{n % DATABASES}", "Item", f"i{n}")
                           for n in range(aggregates)]
        self.rows: list[tuple[str, str, str, int | None]] = []

    async def stored(self) -> int:
        async with self.runtime.pool.acquire() as conn:
            return int(await conn.fetchval(
                "SELECT count(*) FROM batch_buckets b JOIN event_index e USING (batch_key) "
                "WHERE b.bucket = $1", self.runtime.settings.event_store_bucket))

    async def to(self, target: int) -> int:
        """Events added to reach `target` stored events."""
        have = await self.stored()
        pairs = max(0, (target - have) // 2)
        if not pairs:
            return 0
        counter = iter(range(pairs))
        started = shown = time.monotonic()
        done = 0

        async def unit(n: int) -> None:
            command_type, event_type = KINDS[n % len(KINDS)]
            aggregate = random.choice(self.aggregates)
            db = aggregate.split(":", 1)[0]
            if command_type is CommandType.UPDATE_ONTOLOGY_CLASS:
                # One of 100 classes a database: class histories are long, and few.
                class_id = f"Class{n % 100}"
                aggregate = class_aggregate(db, class_id)
                data = {"db": db, "class_id": class_id,
                        "properties": [{"name": "n", "type": "integer"}]}
            else:
                data = {"db": db, "class_id": "Item", "instance_id": aggregate.rsplit("/", 1)[1],
                        "data": {"n": n, "note": "x" * 80}}
            command = await self.runtime.event_store.append(
                new_command(command_type, aggregate, data, actor=f"user{n % 50}",
                            metadata={"db": db}), allocate=True)
            event = Envelope(
                event_id=str(uuid.uuid4()), event_type=event_type.value,
                aggregate_type=command.aggregate_type, aggregate_id=aggregate,
                occurred_at=now(), actor=command.actor, data=data,
                sequence_number=command.sequence_number,
                metadata={"kind": "domain", "command_id": command.event_id,
                          "command_type": command_type.value, "kafka_topic": "instance_events"})
            await self.runtime.event_store.append(event)
            self.rows.append(("command-worker", command.event_id, aggregate, command.sequence_number))
            self.rows.append(("projection", event.event_id, aggregate, event.sequence_number))

        async def task() -> None:
            nonlocal done, shown
            for n in counter:
                await unit(n)
                done += 1
                if len(self.rows) >= 10_000:
                    await self.flush()
                if time.monotonic() - shown > 15:
                    shown = time.monotonic()
                    rate = 2 * done / (shown - started)
                    print(f"  fill: {have + 2 * done:,} of {target:,} events, {rate:,.0f}/s, "
                          f"ETA {(2 * pairs - 2 * done) / rate:,.0f} s", flush=True)

        await asyncio.gather(*[task() for _ in range(IN_FLIGHT)])
        await self.flush()
        async with self.runtime.pool.acquire() as conn:
            await conn.execute(f"VACUUM ANALYZE {', '.join(TABLES)}")
        print(f"  filled {2 * pairs:,} events in {time.monotonic() - started:,.0f} s", flush=True)
        return 2 * pairs

    async def flush(self) -> None:
        rows, self.rows = self.rows, []
        if not rows:
            return
        handlers, ids, aggregates, seqs = (list(column) for column in zip(*rows, strict=True))
        async with self.runtime.pool.acquire() as conn:
            await conn.execute(
                "INSERT INTO processed_events (handler, event_id, aggregate_id, sequence_number, "
                "status, attempt_count) SELECT h, e, a, s, 'done', 1 FROM unnest($1::text[], "
                "$2::text[], $3::text[], $4::bigint[]) AS u(h, e, a, s) ON CONFLICT DO NOTHING",
                handlers, ids, aggregates, seqs)


async def sweeper_pass_ms(runtime: Runtime, at: float) -> float:
    """One pass of a healthy system's sweeper over the batches stored after `at` (the
    catch-up's 10,000 events, at most 200 batches): their envelopes are marked done as
    handlers would have, so the pass is its two indexed queries and reads no batch."""
    since = position_at(at)
    async with runtime.pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO processed_events (handler, event_id, aggregate_id, sequence_number, status) "
            "SELECT CASE WHEN a.kind = 'command' THEN 'command-worker' ELSE 'projection' END, "
            "e.event_id, e.aggregate_id, e.sequence_number, 'done' FROM event_index e "
            "JOIN batch_buckets b USING (batch_key) JOIN audit_events a "
            "ON a.batch_key = e.batch_key AND a.event_id = e.event_id AND a.recorded_at >= $3 "
            "WHERE b.bucket = $1 AND e.batch_key > $2 ON CONFLICT DO NOTHING",
            runtime.settings.event_store_bucket, since, datetime.fromtimestamp(at, UTC))
    resent = 0

    async def count(*_: Any) -> None:
        nonlocal resent
        resent += 1

    name = f"bench-scale-{uuid.uuid4().hex[:8]}"
    sweeper = Sweeper(runtime.event_store, runtime.pool, count, delay=0, name=name)
    await sweeper.save(since)
    try:
        started = time.perf_counter()
        swept, _ = await sweeper.sweep_once()
        elapsed = time.perf_counter() - started
    finally:
        async with runtime.pool.acquire() as conn:
            await conn.execute("DELETE FROM sweep_positions WHERE name = $1", name)
    assert swept and not resent, (swept, resent)
    return elapsed * 1000


async def predecessor_reads(settings: Settings, fill: Fill, samples: int = 200) -> list[float]:
    """As `_catch_up` reads: the stored envelopes of an aggregate after a sequence. On a
    runtime of its own, as a worker reads (the filling one holds recent batches)."""
    runtime = await Runtime.open(settings)
    times = []
    try:
        while len(times) < samples:
            aggregate = random.choice(fill.aggregates)
            last = await runtime.event_store.last_sequence(aggregate)
            if last < 1:
                continue  # a small history leaves most aggregates empty
            # A worker reads a batch it has not seen: without this, the few batches of
            # a small history were read once and then served from the store's cache.
            runtime.event_store._cache.clear()
            runtime.event_store._raw.clear()
            started = time.perf_counter()
            async for _ in runtime.event_store.read_aggregate(aggregate, after_seq=last - 1):
                times.append(time.perf_counter() - started)
                break
    finally:
        await runtime.close()
    return times


async def rebuild_one_db(settings: Settings, count: int = 2000) -> tuple[float, float]:
    """A database of `count` INSTANCE_CREATED events added to the filled bucket, projected,
    then rebuilt alone and verified: (events/s of the rebuild, verify ms)."""
    db = f"probe{uuid.uuid4().hex[:8]}"
    writer = await Runtime.open(settings)
    try:
        await store_and_project(writer, db, count)
    finally:
        await writer.close()
    runtime = await Runtime.open(settings)  # its own, as `spice projections rebuild` runs
    try:
        started = time.perf_counter()
        result = await rebuild.rebuild(runtime, db, out=io.StringIO())
        rate = count / (time.perf_counter() - started)
        assert result["envelopes_replayed"] >= count, result
        started = time.perf_counter()
        await rebuild.verify(runtime, db)
        return rate, (time.perf_counter() - started) * 1000
    finally:
        await runtime.close()


async def sizes(runtime: Runtime) -> tuple[dict[str, tuple[int, int]], int, int]:
    """(table -> (table bytes, index bytes)), events in the index, objects in the bucket."""
    async with runtime.pool.acquire() as conn:
        out = {}
        for table in TABLES:
            out[table] = (await conn.fetchval(f"SELECT pg_table_size('{table}')"),
                          await conn.fetchval(f"SELECT pg_indexes_size('{table}')"))
        events = await conn.fetchval("SELECT count(*) FROM event_index")
        objects = await conn.fetchval("SELECT count(*) FROM batch_buckets WHERE bucket = $1",
                                      runtime.settings.event_store_bucket)
    return out, int(events), int(objects)


async def service_rates(runtime: Runtime, total: int = 2000,
                        env: dict[str, str] | None = None) -> tuple[float, float]:
    worker = WorkerProcess(16270, api.LOGS / "scale-worker.log", env=env).start()
    try:
        _, key = await runtime.keys.create(f"bench-scale-{uuid.uuid4().hex[:8]}", {"*": "admin"},
                                           rate_per_second=1e6)
        async with aiohttp.ClientSession(headers={"X-API-Key": key}) as session:
            return await api.applied_rate(runtime, session, [worker.url], total)
    finally:
        worker.stop()


async def measure(runtime: Runtime, settings: Settings, fill: Fill, service: bool,
                  worker_env: dict[str, str] | None = None) -> dict[str, Any]:
    figures: dict[str, Any] = {"CPU probe ms": cpu_probe_ms()}
    figures["appends/s, 64 writers"] = await store_bench.appends(runtime.event_store, 64, 6400)
    latencies = await store_bench.latency(runtime, 1000, rate=100)
    figures["append -> Kafka p50 ms"] = store_bench.percentile(latencies, 50) * 1000
    figures["append -> Kafka p99 ms"] = store_bench.percentile(latencies, 99) * 1000
    caught_up_from = time.time() - 1
    figures["publisher catch-up events/s"] = (await store_bench.publisher_throughput(runtime, 10_000))[0]
    figures["sweeper pass ms, healthy"] = await sweeper_pass_ms(runtime, caught_up_from)
    reads = await predecessor_reads(settings, fill)
    figures["predecessor read p50 ms"] = store_bench.percentile(reads, 50) * 1000
    figures["predecessor read p99 ms"] = store_bench.percentile(reads, 99) * 1000
    rate, verify_ms = await rebuild_one_db(settings)
    figures["rebuild --db events/s (2,000 of the db)"] = rate
    figures["projections verify --db ms"] = verify_ms
    if service:
        accepted, applied = await service_rates(runtime, env=worker_env)
        figures["accepted/s (API, 64 clients)"] = accepted
        figures["applied/s (1 worker)"] = applied
    # The host's speed over the whole measurement: before and after, averaged.
    figures["CPU probe ms"] = (figures["CPU probe ms"] + cpu_probe_ms()) / 2
    return figures


def probe_adjusted(name: str, ratio: float, probe_ratio: float) -> float | None:
    """The ratio as if the host had kept its speed: a rate scaled by, a time divided by,
    how much slower the CPU probe ran (a crude model: the host's speed moves 2-3x from
    hour to hour, and a 10^7 fill takes half an hour). Sizes and counts need none."""
    if "/s" in name:
        return ratio * probe_ratio
    if " ms" in name:
        return ratio / probe_ratio
    return None


def table(results: dict[int, dict[str, Any]]) -> None:
    sizes_ = sorted(results)
    probes = [results[s]["CPU probe ms"] for s in sizes_]
    print("\n| figure | " + " | ".join(f"{s:,} events" for s in sizes_)
          + " | last / first | probe-adjusted |")
    print("|---|" + "---|" * len(sizes_) + "---|---|")
    for name in results[sizes_[0]]:
        values = [results[s].get(name) for s in sizes_]
        if name == "CPU probe ms" or not all(isinstance(v, (int, float)) for v in values):
            continue
        ratio = values[-1] / values[0] if values[0] else float("nan")
        adjusted = probe_adjusted(name, ratio, probes[-1] / probes[0])
        shown = " | ".join(f"{v:,.1f}" if v < 100 else f"{v:,.0f}" for v in values)
        print(f"| {name} | {shown} | {ratio:.2f} | "
              f"{'' if adjusted is None else f'{adjusted:.2f}'} |")


async def main(targets: list[int], aggregates: int, service: bool, drop: bool) -> None:
    settings = Settings(event_store_bucket=BUCKET, event_sweep_interval_seconds=10 ** 9)
    await create_topic(settings, store_bench.TOPIC, partitions=8)
    api.LOGS.mkdir(parents=True, exist_ok=True)
    runtime = await Runtime.open(settings)
    try:
        if drop:
            await drop_history(runtime)
            return
        fill = Fill(runtime, aggregates)
        results: dict[int, dict[str, Any]] = {}
        for target in targets:
            print(f"# history of {target:,} events ({machine()})", flush=True)
            if await fill.to(target):
                # The rebuild's last pass reads the lookback window's batches: let the
                # fill's last ones fall out of it, or the figure measures the fill.
                await asyncio.sleep(settings.event_publisher_lookback_seconds)
            figures = await measure(runtime, settings, fill, service)
            pg, events, objects = await sizes(runtime)
            total = sum(t + i for t, i in pg.values())
            figures["PostgreSQL bytes per stored event"] = total / max(events, 1)
            figures["bucket objects"] = objects
            for name, value in figures.items():
                print(f"  {name}: {value:,.1f}", flush=True)
            for name, (t, i) in pg.items():
                print(f"  {name}: table {t / 2**20:,.1f} MiB, indexes {i / 2**20:,.1f} MiB")
            print(f"  events in the index (every bucket): {events:,}", flush=True)
            results[target] = figures
        table(results)
    finally:
        await runtime.close()


BASE_DB = "spice_scale_base"


async def against_base(target: int, base_target: int, rounds: int, aggregates: int,
                       service: bool) -> None:
    """The history of `target` events against one of `base_target` in a PostgreSQL
    database (and buckets) of its own on the same server, measured interleaved (base,
    large, base, large, ...): a ratio from one run, whatever the host's speed does."""
    large = Settings(event_store_bucket=BUCKET, event_sweep_interval_seconds=10 ** 9)
    base = large.model_copy(update={"postgres_db": BASE_DB, "event_store_bucket": f"{BUCKET}-base"})
    PostgresServer(base).after_ready()  # the database, owned by the service's role
    base_env = {"POSTGRES_DB": BASE_DB, "EVENT_STORE_BUCKET": f"{BUCKET}-base-service"}
    sides = []
    for name, settings, env, size in (("base", base, base_env, base_target),
                                      ("large", large, None, target)):
        runtime = await Runtime.open(settings)
        fill = Fill(runtime, aggregates)
        if await fill.to(size):
            await asyncio.sleep(settings.event_publisher_lookback_seconds)
        sides.append((name, settings, env, runtime, fill))
    runs: dict[str, list[dict[str, Any]]] = {"base": [], "large": []}
    try:
        print(f"# {target:,} events against {base_target:,}, {rounds} rounds interleaved "
              f"({machine()})", flush=True)
        for round_ in range(rounds):
            for name, settings, env, runtime, fill in sides:
                figures = await measure(runtime, settings, fill, service, env)
                runs[name].append(figures)
                print(f"  round {round_ + 1}, {name}: " + "; ".join(
                    f"{k} {v:,.1f}" for k, v in figures.items()), flush=True)
    finally:
        for _, _, _, runtime, _ in sides:
            await runtime.close()
    print(f"\n| figure | {base_target:,} events | {target:,} events | ratio | "
          "median of the rounds' ratios | range over rounds |")
    print("|---|---|---|---|---|---|")
    for name in runs["base"][0]:
        small = [r[name] for r in runs["base"]]
        big = [r[name] for r in runs["large"]]
        pairs = [b / a for a, b in zip(small, big, strict=True) if a]
        print(f"| {name} | {statistics.median(small):,.1f} | {statistics.median(big):,.1f} | "
              f"{statistics.median(big) / statistics.median(small):.2f} | "
              f"{statistics.median(pairs):.2f} | {min(pairs):.2f}-{max(pairs):.2f} |")


async def drop_history(runtime: Runtime) -> None:
    """The fill's bucket and every row it left (its batches, their events)."""
    bucket = runtime.settings.event_store_bucket
    async with runtime.pool.acquire() as conn:
        keys = [r["batch_key"] for r in await conn.fetch(
            "SELECT batch_key FROM batch_buckets WHERE bucket = $1", bucket)]
        async with conn.transaction():
            await conn.execute(
                "DELETE FROM processed_events p USING event_index e WHERE e.event_id = p.event_id "
                "AND e.batch_key = ANY($1)", keys)
            await conn.execute("DELETE FROM audit_events WHERE batch_key = ANY($1)", keys)
            await conn.execute("DELETE FROM event_index WHERE batch_key = ANY($1)", keys)
            await conn.execute("DELETE FROM batch_buckets WHERE bucket = $1", bucket)
            # The fill's and the probes' databases exist nowhere else.
            await conn.execute("DELETE FROM audit_chain_heads WHERE db LIKE 'scale%' "
                               "OR db LIKE 'probe%'")
    await drop_bucket(runtime.s3, bucket)
    print(f"dropped {len(keys):,} batches of {bucket}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10000,1000000,10000000")
    parser.add_argument("--aggregates", type=int, default=100_000)
    parser.add_argument("--no-service", action="store_true", help="leave out accepted/applied")
    parser.add_argument("--drop", action="store_true", help="remove the fill and stop")
    parser.add_argument("--against", type=int, default=0, metavar="EVENTS",
                        help="measure the last size against a history of EVENTS in a "
                             "database of its own, interleaved over --rounds")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if args.against:
        asyncio.run(against_base(int(args.sizes.split(",")[-1]), args.against, args.rounds,
                                 args.aggregates, not args.no_service))
        raise SystemExit(0)
    asyncio.run(main([int(s) for s in args.sizes.split(",")], args.aggregates,
                     not args.no_service, args.drop))
