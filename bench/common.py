"""Shared bits of the benchmarks: what machine, how to print a figure."""
from __future__ import annotations

import os
import platform
import time


def machine() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            model = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        model = platform.processor() or "unknown cpu"
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (f"{os.cpu_count()} cores, {model}, {memory:.0f} GiB, Python {platform.python_version()}, "
            f"CPU probe {cpu_probe_ms():.0f} ms")


def cpu_probe_ms() -> float:
    """The best of 5 timings of a fixed pure-Python loop. The machine is a VM on a shared
    host whose speed moves: the same loop took 55 ms and 87 ms twenty minutes apart, and
    every figure moved with it. Printed with each benchmark so runs can be compared."""
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        sum(i * i for i in range(1_000_000))
        best = min(best, time.perf_counter() - started)
    return best * 1000


def report(name: str, median: float, samples: list[float]) -> None:
    shown = ", ".join(f"{s:,.0f}" for s in samples)
    print(f"{name}: {median:,.0f}  (runs: {shown})", flush=True)
