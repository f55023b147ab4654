"""Run work concurrently across keys and strictly in order within a key.

A partition carries many aggregates; processing them one at a time would cap
a worker at one command per round trip. Lanes let different aggregates proceed
in parallel while each aggregate's commands keep their order.
"""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


class KeyedLanes:
    def __init__(self, max_in_flight: int = 64) -> None:
        self._slots = asyncio.Semaphore(max_in_flight)
        self._tails: dict[str, asyncio.Task[None]] = {}

    @property
    def in_flight(self) -> int:
        return len(self._tails)

    async def submit(self, key: str, work: Callable[[], Awaitable[None]]) -> None:
        """Returns once the work is scheduled; blocks while every slot is busy (back-pressure)."""
        await self._slots.acquire()
        previous = self._tails.get(key)

        async def run() -> None:
            try:
                if previous is not None:
                    await asyncio.gather(previous, return_exceptions=True)
                await work()
            finally:
                self._slots.release()
                if self._tails.get(key) is task:
                    del self._tails[key]

        task = asyncio.create_task(run())
        self._tails[key] = task

    async def drain(self) -> None:
        while self._tails:
            await asyncio.gather(*list(self._tails.values()), return_exceptions=True)
