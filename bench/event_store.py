"""Event store and publisher figures on the local stack.

    python -m bench.event_store [--events N]

Prints: appends/s with 1 and 64 concurrent writers (group commit), the same with
one PUT per event for comparison, events/s through the publisher into Kafka, and
append-to-consumption latency (p50, p99) with the publisher woken in-process.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid

from aiokafka import AIOKafkaConsumer

from bench.common import machine, report
from spice.agents.publisher import Publisher
from spice.domain.envelope import Envelope, now
from spice.kafka_client import kafka_options
from spice.runtime import Runtime
from spice.settings import Settings
from spice.stores.s3_event_store import S3EventStore
from tests.integration.kafka_helpers import create_topic

TOPIC = "bench_events"


def envelope(aggregate: str) -> Envelope:
    event_id = str(uuid.uuid4())
    return Envelope(event_id=event_id, event_type="BENCH_REQUESTED", aggregate_type="Bench",
                    aggregate_id=aggregate, occurred_at=now(), data={"payload": "x" * 200},
                    metadata={"kind": "command", "command_id": event_id, "kafka_topic": TOPIC})


async def appends(store: S3EventStore, writers: int, total: int) -> float:
    per = total // writers
    aggregates = [f"bench-{uuid.uuid4().hex[:10]}" for _ in range(writers)]

    async def writer(agg: str) -> None:
        for _ in range(per):
            await store.append(envelope(agg), allocate=True)

    started = time.perf_counter()
    await asyncio.gather(*[writer(a) for a in aggregates])
    return per * writers / (time.perf_counter() - started)


async def put_per_event(runtime: Runtime, writers: int, total: int) -> float:
    """The baseline: one create-only PUT per event, no batching."""
    sem = asyncio.Semaphore(writers)

    async def one(i: int) -> None:
        async with sem:
            await runtime.s3.put_object(Bucket=runtime.settings.event_store_bucket,
                                        Key=f"bench/single/{uuid.uuid4()}.json",
                                        Body=envelope("x").to_json(), IfNoneMatch="*")

    started = time.perf_counter()
    await asyncio.gather(*[one(i) for i in range(total)])
    return total / (time.perf_counter() - started)


async def consume(settings: Settings, expected: set[str], stamps: dict[str, float],
                  latencies: list[float], timeout: float = 120) -> int:
    consumer = AIOKafkaConsumer(TOPIC, **kafka_options(settings),
                                group_id=None, auto_offset_reset="latest", fetch_max_wait_ms=5)
    await consumer.start()
    await consumer.seek_to_end()
    ready.set()
    seen: set[str] = set()
    first = None
    deadline = time.monotonic() + timeout
    try:
        while seen != expected and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                for record in records:
                    event_id = json.loads(record.value)["event_id"]
                    if event_id in expected and event_id not in seen:
                        seen.add(event_id)
                        first = first or time.perf_counter()
                        if event_id in stamps:
                            latencies.append(time.perf_counter() - stamps[event_id])
    finally:
        await consumer.stop()
    return len(seen)


ready = asyncio.Event()
append_latency: list[float] = []


async def publisher_throughput(runtime: Runtime, total: int) -> tuple[float, int]:
    """Store `total` events first, then time the publisher draining them into Kafka."""
    store = runtime.event_store
    start = store.position_before(time.time() - 1)
    stored: list[Envelope] = []

    async def writer(agg: str, n: int) -> None:
        for _ in range(n):
            stored.append(await store.append(envelope(agg), allocate=True))

    await asyncio.gather(*[writer(f"bench-{uuid.uuid4().hex[:10]}", total // 64) for _ in range(64)])
    expected = {e.event_id for e in stored}
    ready.clear()
    consumer = asyncio.create_task(consume(runtime.settings, expected, {}, []))
    await ready.wait()
    publisher = Publisher(store, runtime.settings, start_after=start,
                          checkpoint_key=f"checkpoints/bench-{uuid.uuid4().hex}.json")
    started = time.perf_counter()
    task = asyncio.create_task(publisher.run())
    count = await consumer
    elapsed = time.perf_counter() - started
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return count / elapsed, count


async def latency(runtime: Runtime, samples: int, rate: float,
                  publisher_class: type[Publisher] = Publisher) -> list[float]:
    """Append at a steady rate with the publisher running and woken in-process (unless
    `publisher_class` ignores its wake-ups: bench.compare's polling design)."""
    store = runtime.event_store
    publisher = publisher_class(store, runtime.settings, start_after=store.position_before(time.time()),
                                checkpoint_key=f"checkpoints/bench-{uuid.uuid4().hex}.json")
    store.on_stored = publisher.wake
    task = asyncio.create_task(publisher.run())
    await asyncio.sleep(1.0)  # leadership, producer start
    events = [envelope(f"lat-{i % 32}") for i in range(samples)]
    stamps: dict[str, float] = {}
    latencies: list[float] = []
    append_latency.clear()
    ready.clear()
    consumer = asyncio.create_task(consume(runtime.settings, {e.event_id for e in events}, stamps,
                                           latencies))
    await ready.wait()

    async def send(e: Envelope) -> None:
        stamps[e.event_id] = time.perf_counter()
        await store.append(e, allocate=True)
        append_latency.append(time.perf_counter() - stamps[e.event_id])

    pending = []
    for e in events:
        pending.append(asyncio.create_task(send(e)))
        await asyncio.sleep(1 / rate)
    await asyncio.gather(*pending)
    await consumer
    store.on_stored = None
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return latencies


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


async def main(events: int, rounds: int, only_latency: bool = False) -> None:
    # A bucket of its own: benchmark events must not flow through the service's publisher.
    # No sweeper in the benchmark's publishers: no worker ever processes these envelopes,
    # so after EVENT_SWEEP_DELAY_SECONDS it re-sent every one of them, an extra load on
    # the rounds that followed.
    settings = Settings(event_store_bucket="spice-bench", event_sweep_interval_seconds=10 ** 9)
    await create_topic(settings, TOPIC, partitions=8)
    runtime = await Runtime.open(settings)
    try:
        print(f"# event store benchmark ({machine()}), {rounds} rounds, median reported")
        if only_latency:
            lat = await latency(runtime, 1000, rate=200)
            print(f"p50 {percentile(lat, 50) * 1000:.1f} ms, p99 {percentile(lat, 99) * 1000:.1f} ms; "
                  f"append p50 {percentile(append_latency, 50) * 1000:.1f} ms")
            return
        one = [await appends(runtime.event_store, 1, min(events, 1000)) for _ in range(rounds)]
        report("appends/s, 1 writer (group commit)", statistics.median(one), one)
        many = [await appends(runtime.event_store, 64, events) for _ in range(rounds)]
        report("appends/s, 64 writers (group commit)", statistics.median(many), many)
        # 64 closed-loop writers keep one batch in flight at a time, so their rate is
        # 64 / (reserve + PUT); more writers show what the store does when batches fill.
        busy = [await appends(runtime.event_store, 256, events * 2) for _ in range(rounds)]
        report("appends/s, 256 writers (group commit)", statistics.median(busy), busy)
        single = [await put_per_event(runtime, 64, 1000) for _ in range(rounds)]
        report("PUTs/s, one PUT per event, 64 concurrent (baseline)", statistics.median(single), single)
        rates = [(await publisher_throughput(runtime, events))[0] for _ in range(rounds)]
        report("events/s, publisher S3 -> Kafka", statistics.median(rates), rates)
        lat = await latency(runtime, 2000, rate=200)
        print(f"append -> Kafka consumption latency at 200 events/s, {len(lat)} samples: "
              f"p50 {percentile(lat, 50) * 1000:.1f} ms, p99 {percentile(lat, 99) * 1000:.1f} ms; "
              f"of which the append itself: p50 {percentile(append_latency, 50) * 1000:.1f} ms, "
              f"p99 {percentile(append_latency, 99) * 1000:.1f} ms")
    finally:
        await runtime.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=12800)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--latency-only", action="store_true")
    args = parser.parse_args()
    asyncio.run(main(args.events, args.rounds, args.latency_only))
