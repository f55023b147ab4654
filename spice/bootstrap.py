"""What a process of the service sets up before it runs, in one place.

Called once per process: by the Faust worker start (`SpiceApp.worker_init`, which
`faust -A spice.app worker` and `spice run` reach before any loop or thread exists)
and by tests that run an app in-process. Importing a module of the package changes
nothing in the process; this does:

- the fixes to faust-streaming (spice/faust_fixes.py);
- the event loop: uvloop by default (EVENT_LOOP);
- the cyclic collector's thresholds (WORKER_GC_THRESHOLD);
- a worker's CPU priority (WORKER_NICE);
- the worker's data directory.

Measured effects of each setting are in docs/benchmarks.md and docs/roles.md.
"""
from __future__ import annotations

import gc
import os

from spice import faust_fixes
from spice.settings import Settings

_configured: set[int] = set()


def use_event_loop(name: str) -> None:
    """uvloop: the worker's agents, producer, consumer and API share one loop, and most of
    its CPU is the loop's own bookkeeping, which uvloop does in C. Must run before Faust
    creates its loop. EVENT_LOOP=aio keeps asyncio's own."""
    if name == "uvloop":
        import mode.loop

        mode.loop.use("uvloop")


def tune_collector(threshold: str) -> None:
    """A worker allocates in bursts (a batch of 500 commands is thousands of objects);
    Python's default threshold of 700 collects every few hundred microseconds of work.
    With 10,000 young objects per collection, and what is alive once the worker has
    started frozen out of later collections (`SpiceApp.on_started`), reference counting
    still frees everything that is not a cycle at once."""
    gc.set_threshold(*(int(part) for part in threshold.split(",")))


def lower_priority(increment: int) -> None:
    """A worker's applying can wait; intake, on a host whose cores it shares with API
    processes, should not. Set before any thread is started, so every thread inherits it."""
    if increment:
        os.nice(increment)


def configure_process(settings: Settings) -> None:
    """Once per process, whoever calls first."""
    if os.getpid() in _configured:
        return
    _configured.add(os.getpid())
    faust_fixes.apply()
    use_event_loop(settings.event_loop)
    tune_collector(settings.worker_gc_threshold)
    if settings.is_worker:
        lower_priority(settings.worker_nice)
    settings.spice_data_dir.mkdir(parents=True, exist_ok=True)
