"""History speed: an aggregate's history and time travel, the audit log over a large
index, and `spice audit verify`.

    python -m bench.history [--events N] [--audit-rows N] [--verify-events N] [--runs N]
                                                                     (make bench-history)

On the local stack, on an event-store bucket of its own (nothing reaches the workers):
- one instance with --events (1,000) versions, appended one at a time through the
  event store (each in its own batch, so recorded in the audit index as in service);
  measured through the code the routes run: its history's first page (50 entries with
  what each changed) and `as_of` reads by version and by time;
- --audit-rows (1,000,000) audit rows of one database written straight into the audit
  index (100 actors, 2 s apart), then the audit log filtered by an actor and a one-day
  window, first page; the plan is printed;
- `audit verify` over the instance's chain (one event per batch: the slowest shape) and
  over --verify-events (20,000) appended by 64 concurrent writers (group commit).
The rows written are removed at the end.
"""
from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.common import machine
from bench.queries import line, timed
from spice.audit_verify import verify_chain
from spice.domain.envelope import Envelope, now
from spice.domain.messages import instance_aggregate
from spice.runtime import Runtime
from spice.settings import Settings
from spice.stores.audit import EntryFilter
from spice.web.history import entry, point_state

BUCKET = "spice-bench-history"


def version_event(db: str, instance: str, seq: int) -> Envelope:
    return Envelope(
        event_id=str(uuid.uuid4()), event_type="INSTANCE_CREATED" if seq == 1 else "INSTANCE_UPDATED",
        aggregate_type="Instance", aggregate_id=instance_aggregate(db, "Item", instance),
        occurred_at=now(), actor=f"key:user{seq % 7}",
        data={"db": db, "class_id": "Item", "instance_id": instance,
              "data": {"n": seq, "name": f"item {seq}", "tags": ["a", "b"][: seq % 3]}},
        metadata={"kind": "domain", "command_id": str(uuid.uuid4()),
                  "command_type": "UPDATE_INSTANCE", "kafka_topic": "instance_events"},
        sequence_number=None)


async def fill_audit(runtime: Runtime, db: str, rows: int, start: datetime) -> None:
    async with runtime.pool.acquire() as conn:
        for low in range(1, rows + 1, 100_000):  # in pieces: the pool's statement timeout
            await fill_piece(conn, db, low, min(rows, low + 99_999), start)
        await conn.execute("ANALYZE audit_events")


async def fill_piece(conn: Any, db: str, low: int, high: int, start: datetime) -> None:
    await conn.execute(
        "INSERT INTO audit_events SELECT $1, g, $1 || '-' || g, "
        "CASE WHEN g % 2 = 0 THEN 'command' ELSE 'domain' END, "
        "CASE WHEN g % 2 = 0 THEN 'UPDATE_INSTANCE_REQUESTED' ELSE 'INSTANCE_UPDATED' END, "
        "'UPDATE_INSTANCE', $1 || '-c' || (g / 2), 'Instance', $1 || ':Item/i' || (g % 50000), "
        "g / 2, 'key:user' || (g % 100), $2::timestamptz + g * interval '2 seconds', "
        "$2::timestamptz + g * interval '2 seconds', "
        "CASE WHEN g % 2 = 0 THEN 'requested' ELSE 'succeeded' END, "
        "jsonb_build_object('db', $1, 'class_id', 'Item', 'instance_id', 'i' || (g % 50000), "
        "'data', jsonb_build_object('n', g)), '{}'::jsonb, 'bench', 'x', 'x' "
        "FROM generate_series($3::bigint, $4::bigint) g", db, start, low, high)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--audit-rows", type=int, default=1_000_000)
    parser.add_argument("--verify-events", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    print(f"# history ({machine()})", flush=True)
    runtime = await Runtime.open(Settings().model_copy(update={"event_store_bucket": BUCKET}))
    tag = uuid.uuid4().hex[:8]
    db, big, many = f"benchhist{tag}", f"benchaudit{tag}", f"benchverify{tag}"
    try:
        started = time.perf_counter()
        for seq in range(1, args.events + 1):
            # allocated, as a command's number is in service (the event then carries it)
            await runtime.event_store.append(version_event(db, "i1", seq), allocate=True)
        print(f"setup: {args.events:,} versions of one instance appended one at a time in "
              f"{time.perf_counter() - started:.1f} s", flush=True)
        aggregate = instance_aggregate(db, "Item", "i1")
        audit = runtime.audit

        async def first_page() -> None:
            rows, _ = await audit.entries(EntryFilter(db, aggregate_id=aggregate), limit=50)
            [entry(r) for r in rows]
        line(f"history, first page of 50, instance with {args.events:,} events",
             await timed(first_page, args.runs), "p50 <= 20")

        rng = random.Random(1)

        async def as_of_version() -> None:
            await point_state(runtime, db, aggregate, rng.randrange(1, args.events + 1), "as_of")
        line(f"as_of a version, instance with {args.events:,} events",
             await timed(as_of_version, args.runs), "p50 <= 50")
        rows, _ = await audit.entries(EntryFilter(db, aggregate_id=aggregate), limit=args.events)
        stamps = [r["recorded_at"] for r in rows]

        async def as_of_time() -> None:
            await point_state(runtime, db, aggregate, rng.choice(stamps), "as_of")
        line(f"as_of a time, instance with {args.events:,} events",
             await timed(as_of_time, args.runs), "p50 <= 50")

        start = datetime(2026, 1, 1, tzinfo=UTC)
        started = time.perf_counter()
        await fill_audit(runtime, big, args.audit_rows, start)
        print(f"setup: {args.audit_rows:,} audit rows written in {time.perf_counter() - started:.1f} s",
              flush=True)
        span = timedelta(seconds=2 * args.audit_rows)

        def audit_filter() -> EntryFilter:
            since = start + span * rng.random() * 0.9
            return EntryFilter(big, actor=f"key:user{rng.randrange(100)}", since=since,
                               until=since + timedelta(days=1))

        async def audit_page() -> None:
            rows, _ = await audit.entries(audit_filter(), limit=50)
            [entry(r) for r in rows]
        line(f"audit log: actor + 1-day window over {args.audit_rows:,} rows, first page",
             await timed(audit_page, args.runs), "p50 <= 50")
        sample = audit_filter()
        async with runtime.pool.acquire() as conn:
            plan = await conn.fetch(
                "EXPLAIN (ANALYZE, COSTS OFF) SELECT chain_position FROM audit_events e "
                "WHERE e.db = $1 AND e.actor = $2 AND e.recorded_at >= $3 AND e.recorded_at <= $4 "
                "ORDER BY e.recorded_at DESC, e.db DESC, e.chain_position DESC LIMIT 51",
                big, sample.actor, sample.since, sample.until)
        print("plan:\n  " + "\n  ".join(r[0] for r in plan), flush=True)

        report = await verify_chain(runtime, db)
        print(f"audit verify, one event per batch: {report.checked:,} events in "
              f"{report.seconds:.2f} s = {report.checked / report.seconds:,.0f} events/s "
              f"({report.batches:,} batches; ok={report.broken is None})", flush=True)
        started = time.perf_counter()
        queue = iter(range(1, args.verify_events + 1))

        async def writer() -> None:
            for seq in queue:
                await runtime.event_store.append(version_event(many, f"i{seq}", 1), allocate=True)
        await asyncio.gather(*(writer() for _ in range(64)))
        print(f"setup: {args.verify_events:,} events by 64 writers in "
              f"{time.perf_counter() - started:.1f} s", flush=True)
        figures = []
        for _ in range(3):
            report = await verify_chain(runtime, many)
            figures.append(report.checked / report.seconds)
        print(f"audit verify, group-committed batches: {report.checked:,} events, "
              f"{statistics.median(figures):,.0f} events/s (runs: "
              f"{', '.join(f'{f:,.0f}' for f in figures)}; {report.batches:,} batches; "
              f"ok={report.broken is None})   (target >= 20,000)", flush=True)
    finally:
        async with runtime.pool.acquire() as conn:
            for name in (db, big, many):
                await conn.execute("DELETE FROM audit_events WHERE db = $1", name)
                await conn.execute("DELETE FROM audit_chain_heads WHERE db = $1", name)
        await runtime.close()


if __name__ == "__main__":
    asyncio.run(main())
