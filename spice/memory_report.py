"""Where a running process's memory goes, on request: SIGUSR2 logs the top allocation
sites (tracemalloc), for an operator chasing growth and for the soak's report.

tracemalloc costs CPU on every allocation, so it is off unless the process was started
with PYTHONTRACEMALLOC=1 (or =25 for deeper tracebacks); without it the signal logs how
to turn it on. SIGUSR2 replaces mode's default for it (a pdb prompt, which would stop
a worker that has no terminal)."""
from __future__ import annotations

import asyncio
import logging
import signal
import tracemalloc

log = logging.getLogger(__name__)
TOP = 10


def top_allocations(limit: int = TOP) -> list[str]:
    if not tracemalloc.is_tracing():
        return ["tracemalloc is off: start the process with PYTHONTRACEMALLOC=1"]
    snapshot = tracemalloc.take_snapshot().filter_traces((
        tracemalloc.Filter(False, tracemalloc.__file__),
        tracemalloc.Filter(False, "<frozen importlib._bootstrap*>"),
    ))
    current, peak = tracemalloc.get_traced_memory()
    lines = [f"traced {current / 2**20:.1f} MiB (peak {peak / 2**20:.1f} MiB); top {limit} sites:"]
    for stat in snapshot.statistics("lineno")[:limit]:
        frame = stat.traceback[0]
        lines.append(f"{stat.size / 1024:10.1f} KiB {stat.count:8d} blocks  {frame.filename}:{frame.lineno}")
    return lines


def log_top_allocations() -> None:
    for line in top_allocations():
        log.info("memory: %s", line)


def install(loop: asyncio.AbstractEventLoop) -> None:
    loop.add_signal_handler(signal.SIGUSR2, log_top_allocations)
