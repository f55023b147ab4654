"""A clean stop for the agents (SIGTERM, a rolling deploy).

Faust stops a worker by cancelling its agents: batches in flight are cut off, their
claims stay leased for REGISTRY_LEASE_SECONDS, and the partitions' next owner waits
that long before it may apply those commands. Instead, before the agents stop
(SpiceApp.on_stop), `stop()`:

1. parks every agent's read loop: no new message is taken (what was fetched and not
   taken stays unacked, so its offset is not committed and the next owner reads it);
2. waits up to SHUTDOWN_DRAIN_SECONDS for the batches and lanes in flight to finish
   (each is acked as it finishes), then cancels what is left;
3. and the app then commits the acked offsets and ends this worker's leases
   (`Registry.release_owned`), so the next owner starts at once.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)


@dataclass
class Part:
    name: str
    drain: Callable[[], Awaitable[None]]
    cancel: Callable[[], None]


@dataclass
class Drain:
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    parts: list[Part] = field(default_factory=list)

    def register(self, name: str, drain: Callable[[], Awaitable[None]],
                 cancel: Callable[[], None]) -> Part:
        part = Part(name, drain, cancel)
        self.parts.append(part)
        return part

    def unregister(self, part: Part) -> None:
        if part in self.parts:
            self.parts.remove(part)

    async def hold(self) -> None:
        """Called by an agent before it takes a message: once stopping, it never returns
        (the agent waits here until Faust cancels it)."""
        if self.stopping.is_set():
            await asyncio.Event().wait()

    async def stop(self, timeout: float) -> tuple[bool, float]:
        """Stop taking work and let what is in flight finish: (all finished, seconds)."""
        self.stopping.set()
        started = time.monotonic()
        parts = list(self.parts)
        try:
            await asyncio.wait_for(asyncio.gather(*(p.drain() for p in parts)), timeout)
            finished = True
        except TimeoutError:
            finished = False
            for part in parts:
                part.cancel()
            log.warning("shutdown: work still in flight after %.0f s was cancelled; its "
                        "messages are not acked and go to the next owner", timeout)
        return finished, time.monotonic() - started


drain = Drain()
