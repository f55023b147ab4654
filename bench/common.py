"""Shared bits of the benchmarks: what machine, how to print a figure."""
from __future__ import annotations

import os
import platform


def machine() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            model = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        model = platform.processor() or "unknown cpu"
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores, {model}, {memory:.0f} GiB, Python {platform.python_version()}"


def report(name: str, median: float, samples: list[float]) -> None:
    shown = ", ".join(f"{s:,.0f}" for s in samples)
    print(f"{name}: {median:,.0f}  (runs: {shown})", flush=True)
