"""Shared bits of the benchmarks: what machine, how to print a figure, CPU per unit of work."""
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


TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU a process has used so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def machine_busy_seconds() -> float:
    """CPU time every core has spent not idle so far (Linux /proc/stat), all processes."""
    with open("/proc/stat") as stat:
        ticks = [int(v) for v in stat.readline().split()[1:]]
    idle = ticks[3] + ticks[4]  # idle, iowait
    return (sum(ticks[:8]) - idle) / TICKS


class CpuMeter:
    """CPU used between start() and stop(), by one process and by the whole machine: a
    figure that moves less than a rate when the shared host's speed moves, since both
    are per unit of work (divide by the work done)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.process = self.machine = 0.0

    def start(self) -> None:
        self._process, self._machine = process_cpu_seconds(self.pid), machine_busy_seconds()

    def stop(self) -> None:
        self.process = process_cpu_seconds(self.pid) - self._process
        self.machine = machine_busy_seconds() - self._machine
