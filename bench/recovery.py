"""Table recovery speed: how fast a worker reads a status-table changelog back into memory
at start-up (what a restarted worker does before it takes commands), with and without
spice.faust_fixes' stand-in for asyncio in Faust's changelog reader.

    python -m bench.recovery [--documents N] [--runs N]   (make bench-recovery)

Setup (not measured): N status documents (default 40,000; finished commands, four
history steps, ~520 bytes) in the changelog of a table of its own
(`bench-recovery-status-changelog` on the local stack's Kafka). Measured: a worker of
bench/recovery_app.py started from nothing, from the start of its reading to the end,
wall and CPU seconds; the two variants interleaved (A, B, A, B, ...), medians.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from bench.common import machine
from spice.kafka_client import kafka_options
from spice.settings import Settings

CHANGELOG = "bench-recovery-status-changelog"
VARIANTS = {"Faust's reader": "0", "with the stand-in": "1"}


def document(i: int, at: float, partition: int) -> bytes:
    steps = [{"status": s, "timestamp": at, "message": ""}
             for s in ("PENDING", "PROCESSING", "COMPLETED", "PROJECTED")]
    return orjson.dumps({"command_id": f"bench-{i}", "status": "COMPLETED", "created_at": at,
                         "updated_at": at, "command_type": "CREATE_INSTANCE", "db": "bench",
                         "aggregate_id": f"Item/{i}", "projected": True, "_p": partition,
                         "history": steps})


async def fill(settings: Settings, documents: int) -> int:
    """Makes the changelog hold `documents` keys; returns how many records it holds."""
    partitions = settings.topic_partitions
    admin = AIOKafkaAdminClient(**kafka_options(settings))
    await admin.start()
    try:
        await admin.create_topics([NewTopic(CHANGELOG, partitions, settings.topic_replication_factor,
                                            topic_configs={"cleanup.policy": "compact"})])
    except TopicAlreadyExistsError:
        pass
    finally:
        await admin.close()
    producer = AIOKafkaProducer(**kafka_options(settings), linger_ms=5, max_batch_size=1 << 20)
    await producer.start()
    try:
        tps = [TopicPartition(CHANGELOG, p) for p in range(partitions)]
        held = await _records(settings, tps)
        if held < documents:
            at = time.time()
            sends = [await producer.send(CHANGELOG, document(i, at, i % partitions),
                                         key=f"bench-{i}".encode(), partition=i % partitions)
                     for i in range(held, documents)]
            await asyncio.gather(*sends)
        return max(held, documents)
    finally:
        await producer.stop()


async def _records(settings: Settings, tps: list[TopicPartition]) -> int:
    consumer = AIOKafkaConsumer(**kafka_options(settings))
    await consumer.start()
    try:
        ends = await consumer.end_offsets(tps)
        return sum(ends.values())
    finally:
        await consumer.stop()


def recover(stand_in: str) -> tuple[int, float, float]:
    """One worker's start-up: (documents recovered, wall seconds, CPU seconds) of its reading."""
    faust = str(Path(sys.executable).with_name("faust"))
    out = subprocess.run([faust, "-A", "bench.recovery_app", "worker", "-l", "warn"],
                         env={**os.environ, "BENCH_RECOVERY_STAND_IN": stand_in},
                         capture_output=True, text=True, timeout=600)
    for line in out.stdout.splitlines() + out.stderr.splitlines():
        if "RECOVERED" in line:
            count, wall, cpu = line.split("RECOVERED", 1)[1].split()[:3]
            return int(count), float(wall), float(cpu)
    raise RuntimeError(f"the recovery worker printed no result:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=40_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    settings = Settings()
    print(machine(), flush=True)
    records = asyncio.run(fill(settings, args.documents))
    print(f"{CHANGELOG}: {records:,} records", flush=True)
    results: dict[str, list[tuple[int, float, float]]] = {name: [] for name in VARIANTS}
    for run in range(args.runs):
        for name, stand_in in VARIANTS.items():
            count, wall, cpu = recover(stand_in)
            results[name].append((count, wall, cpu))
            print(f"  run {run + 1}, {name}: {count:,} documents in {wall:.2f} s "
                  f"({count / wall:,.0f}/s), {cpu:.2f} CPU s", flush=True)
    medians = {}
    for name, runs in results.items():
        wall = statistics.median(r[1] for r in runs)
        cpu = statistics.median(r[2] for r in runs)
        medians[name] = wall
        print(f"{name}: median {wall:.2f} s, {runs[0][0] / wall:,.0f} documents/s, "
              f"{cpu / runs[0][0] * 1e6:.0f} CPU µs a document", flush=True)
    before, after = medians.values()
    print(f"ratio: {before / after:.2f}x faster with the stand-in", flush=True)


if __name__ == "__main__":
    main()
