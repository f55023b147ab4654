"""Scenario 6: a soak. A paced load of creates (SOAK_RATE commands/s, default 30) with,
every CHURN_SECONDS, a cycle through every other command type in a database of its own
(create the database, create a class, create, update and delete instances, a bulk
create, replace the class, create and delete an empty one, delete the database), for SOAK_SECONDS (default
300 in the suite; `make soak` runs an hour). The worker's RSS and open file descriptors
are sampled every SOAK_SAMPLE_SECONDS into test-artifacts/soak.csv: over the last half
of the run, each stays within SOAK_TOLERANCE (5 % for `make soak`, 15 % in the suite's
five minutes, which are mostly warm-up) of its lowest sample. With SOAK_TRACEMALLOC=1
the worker runs with tracemalloc and its top-10 allocation sites (SIGUSR2,
spice/memory_report.py) are printed at the end."""
import asyncio
import os
import signal
import time
from pathlib import Path

from spice.client import SpiceClient, SpiceError
from spice.memory_report import TOP
from tests.conftest import TEST_ADMIN_KEY
from tests.integration.test_api_end_to_end import unique_db
from tests.reliability.books import balance, wait_terminal
from tests.reliability.load import Load
from tests.reliability.test_crash_points import make_class

SOAK_SECONDS = float(os.environ.get("SOAK_SECONDS", "300"))
SOAK_RATE = float(os.environ.get("SOAK_RATE", "30"))  # commands/s, below what one worker applies
SAMPLE_SECONDS = float(os.environ.get("SOAK_SAMPLE_SECONDS", "15"))
TOLERANCE = float(os.environ.get("SOAK_TOLERANCE", "0.15"))
TRACEMALLOC = os.environ.get("SOAK_TRACEMALLOC") == "1"
CHURN_SECONDS = 10
FD_SLACK = 5  # descriptors: a few connections open and close with the load
ARTIFACT = Path("test-artifacts") / "soak.csv"


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


async def churn_cycle(spice: SpiceClient, n: int) -> None:
    """Every command type once, each waited for; any failure raises."""
    db = unique_db()
    await spice.create_database(db, wait=True)
    cls = {"id": "Thing", "properties": [{"name": "name", "type": "string"}]}
    await spice.create_class(db, cls)
    for i in range(3):
        await spice.create_instance(db, "Thing", f"t{i}", {"name": f"thing {n}.{i}"}, wait=True)
    await spice.update_instance(db, "Thing", "t0", {"name": f"renamed {n}"}, wait=True)
    await spice.delete_instance(db, "Thing", "t1", wait=True)
    await spice.bulk_create(db, "Thing", [{"instance_id": f"b{i}", "data": {"name": f"bulk {i}"}}
                                          for i in range(20)])
    await spice.replace_class(db, "Thing", {**cls, "properties": [
        *cls["properties"], {"name": "size", "type": "integer"}]})
    await spice.create_class(db, {**cls, "id": "Spare"})
    await spice.delete_class(db, "Spare")  # a class with instances is refused (409)
    await spice.delete_database(db, wait=True)


def spread(values: list[float]) -> float:
    return (max(values) - min(values)) / min(values)


def memory_report(log: Path, since: int) -> list[str]:
    with log.open("rb") as handle:
        handle.seek(since)
        text = handle.read().decode(errors="replace")
    return [line.split("memory: ", 1)[1] for line in text.splitlines() if "memory: " in line]


async def requested_memory_report(pid: int, log: Path, timeout: float) -> list[str]:
    """SIGUSR2 to the worker, then its report from the log once all of it is there: with
    tracemalloc the snapshot of an hour's heap takes over 10 s."""
    since = log.stat().st_size
    os.kill(pid, signal.SIGUSR2)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        top = memory_report(log, since)
        if len(top) > TOP:  # the heading and every site
            return top
    return memory_report(log, since)


async def test_memory_and_descriptors_stay_flat_under_a_mixed_load(worker, runtime, http):
    if TRACEMALLOC:
        worker.stop()
        worker.env = {**worker.env, "PYTHONTRACEMALLOC": "1"}
        worker.start(timeout=180)
    try:
        await soak(worker, runtime, http)
    finally:
        if TRACEMALLOC:
            worker.stop()
            worker.env = {k: v for k, v in worker.env.items() if k != "PYTHONTRACEMALLOC"}
            worker.start(timeout=180)


async def soak(worker, runtime, http) -> None:
    db = await make_class(http, worker)
    load = Load(http, worker.url, db, clients=4, rate=SOAK_RATE)
    samples: list[tuple[int, float, int, int, int]] = []
    cycles, failures = 0, []
    pid = worker.proc.pid

    async def churn() -> None:
        nonlocal cycles
        async with SpiceClient(worker.url, api_key=TEST_ADMIN_KEY) as spice:
            while True:
                began = time.monotonic()
                try:
                    await churn_cycle(spice, cycles)
                except (SpiceError, OSError, TimeoutError) as error:
                    failures.append(f"cycle {cycles}: {error!r}")
                cycles += 1
                await asyncio.sleep(max(0.0, CHURN_SECONDS - (time.monotonic() - began)))

    async def sample() -> None:
        churner = asyncio.create_task(churn())
        started = time.monotonic()
        try:
            while True:
                samples.append((round(time.monotonic() - started), rss_mib(pid), open_fds(pid),
                                len(load.accepted), cycles))
                if time.monotonic() - started >= SOAK_SECONDS:
                    break
                await asyncio.sleep(SAMPLE_SECONDS)
        finally:
            churner.cancel()

    await load.run_while(sample)
    ARTIFACT.parent.mkdir(exist_ok=True)
    ARTIFACT.write_text("seconds,rss_mib,open_fds,accepted,churn_cycles\n"
                        + "".join(f"{t},{r:.1f},{f},{n},{c}\n" for t, r, f, n, c in samples))
    recovery = await wait_terminal(runtime, list(load.accepted), timeout=300)
    books = await balance(runtime, f"soak {SOAK_SECONDS:.0f}s", db, "Item", load.accepted, recovery)

    top = await requested_memory_report(pid, worker.log, 120 if TRACEMALLOC else 2)

    last_half = samples[len(samples) // 2:]
    rss = [r for _, r, _, _, _ in last_half]
    fds = [f for _, _, f, _, _ in last_half]
    print(f"\nsoak {SOAK_SECONDS:.0f} s: {len(load.accepted)} creates, {cycles} cycles of every "
          f"command type ({len(failures)} failed)\n  seconds   RSS MiB   fds  accepted  cycles")
    for t, r, f, n, c in samples:
        print(f"  {t:7d} {r:9.1f} {f:5d} {n:9d} {c:7d}")
    print(f"  last half: RSS {min(rss):.1f}-{max(rss):.1f} MiB (spread {spread(rss):.1%}), "
          f"fds {min(fds)}-{max(fds)}; tolerance {TOLERANCE:.0%}")
    print("  memory (SIGUSR2):\n    " + "\n    ".join(top or ["(no report in the log)"]))
    books.figures.update(cycles=cycles, churn_failures=len(failures),
                         rss_last_half_mib=[round(min(rss), 1), round(max(rss), 1)],
                         fds_last_half=[min(fds), max(fds)])
    books.assert_balanced()
    assert not failures, failures[:5]
    assert spread(rss) <= TOLERANCE, f"RSS moved {spread(rss):.1%} over the last half: {samples}"
    assert max(fds) - min(fds) <= max(FD_SLACK, TOLERANCE * min(fds)), samples
