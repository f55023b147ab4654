"""Scenario 6: sustained load (SOAK_RATE commands/s, default 30) for SOAK_SECONDS
(default 600); the worker's memory stays flat. RSS is sampled every 15 s and written
to test-artifacts/soak-rss.csv."""
import asyncio
import os
import statistics
import time
from pathlib import Path

from tests.reliability.books import balance, wait_terminal
from tests.reliability.load import Load
from tests.reliability.test_crash_points import make_class

SOAK_SECONDS = float(os.environ.get("SOAK_SECONDS", "600"))
SOAK_RATE = float(os.environ.get("SOAK_RATE", "30"))  # commands/s, below what one worker applies
SAMPLE_SECONDS = 15
ARTIFACT = Path("test-artifacts") / "soak-rss.csv"


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


async def test_memory_stays_flat_under_sustained_load(worker, runtime, http):
    db = await make_class(http, worker)
    load = Load(http, worker.url, db, clients=4, rate=SOAK_RATE)
    samples: list[tuple[float, float, int]] = []

    async def sample() -> None:
        started = time.monotonic()
        while time.monotonic() - started < SOAK_SECONDS:
            samples.append((round(time.monotonic() - started), rss_mib(worker.proc.pid),
                            len(load.accepted)))
            await asyncio.sleep(SAMPLE_SECONDS)
        samples.append((round(time.monotonic() - started), rss_mib(worker.proc.pid),
                        len(load.accepted)))

    await load.run_while(sample)
    ARTIFACT.parent.mkdir(exist_ok=True)
    ARTIFACT.write_text("seconds,rss_mib,accepted\n" + "".join(f"{t},{r:.1f},{n}\n" for t, r, n in samples))
    recovery = await wait_terminal(runtime, list(load.accepted), timeout=300)
    books = await balance(runtime, f"soak {SOAK_SECONDS:.0f}s", db, "Item", load.accepted, recovery)
    books.assert_balanced()
    # Flat: after a warm-up third, the last third's median is within 15% of the middle third's.
    third = max(1, len(samples) // 3)
    middle = statistics.median(r for _, r, _ in samples[third:2 * third])
    last = statistics.median(r for _, r, _ in samples[2 * third:])
    print(f"soak: {len(load.accepted)} commands accepted; RSS median middle {middle:.0f} MiB, "
          f"last {last:.0f} MiB; samples in {ARTIFACT}")
    assert last <= middle * 1.15, samples
