"""Run work concurrently across keys and strictly in order within a key.

A partition carries many aggregates; processing them one at a time would cap
a worker at one command per round trip. Lanes let different aggregates proceed
in parallel while each aggregate's commands keep their order.
"""
from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any


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


class InOrderAcks:
    """Acknowledge each partition's messages in offset order, whatever order they finish in.

    Faust commits the highest run of acked offsets; when acks arrive out of order it can
    commit past a message that is still being processed (faust-streaming issue #606:
    one unacked offset at the head is taken for a compaction gap), and a crash then
    loses that message. Lanes finish out of order by design, so completions are held
    here until every earlier message of the partition is done.
    """

    def __init__(self, ack: Callable[[Any], Awaitable[None]]) -> None:
        self._ack = ack
        self._waiting: dict[tuple[str, int], deque[list[Any]]] = {}

    def started(self, event: Any) -> list[Any]:
        """Register a message as it is read (reads are in offset order per partition)."""
        message = event.message
        entry = [event, False]
        self._waiting.setdefault((message.topic, message.partition), deque()).append(entry)
        return entry

    async def finished(self, entry: list[Any]) -> None:
        entry[1] = True
        message = entry[0].message
        queue = self._waiting[(message.topic, message.partition)]
        while queue and queue[0][1]:
            await self._ack(queue.popleft()[0])

    @property
    def held(self) -> int:
        return sum(len(q) for q in self._waiting.values())
