"""How late the worker's event loop runs.

Every agent, the producer, the consumer and the API share one loop, so anything that
holds it (a long synchronous pass over a table, a large JSON encode, the collector)
delays all of them at once, and shows in no figure but tail latency. A task asks to
wake every TICK seconds and records how much later it woke: a histogram in /metrics
(`spice_event_loop_lag_seconds`), the worst wake-up of the last minute as a gauge,
and a warning in the log for a wake-up later than WARN_AFTER. The status table's
whole-table expiry, found with cProfile, held the loop 139 ms every 10 s.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable

from spice.app import app
from spice.observability import LOOP_LAG

log = logging.getLogger(__name__)
TICK = 0.25
WARN_AFTER = 0.5
WINDOW_SECONDS = 60.0


class LagMeter:
    def __init__(self, tick: float = TICK, warn_after: float = WARN_AFTER,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.tick, self.warn_after, self.clock = tick, warn_after, clock
        self._recent: deque[tuple[float, float]] = deque()  # (when, lag)

    def record(self, lag: float) -> None:
        now = self.clock()
        LOOP_LAG.observe(lag)
        self._recent.append((now, lag))
        while self._recent and self._recent[0][0] < now - WINDOW_SECONDS:
            self._recent.popleft()
        if lag > self.warn_after:
            log.warning("event loop stalled: a %.2f s timer woke %.0f ms late", self.tick,
                        lag * 1000)

    @property
    def worst_recent(self) -> float:
        """The latest wake-up of the last minute, in seconds."""
        return max((lag for _, lag in self._recent), default=0.0)

    async def run(self) -> None:
        while True:
            asked = self.clock()
            await asyncio.sleep(self.tick)
            self.record(max(0.0, self.clock() - asked - self.tick))


meter = LagMeter()


@app.task
async def measure_loop_lag() -> None:
    await meter.run()
