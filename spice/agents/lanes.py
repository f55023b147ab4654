"""How an agent hands its messages on: in batches, in per-key lanes, acked in offset order.

A command at a time would cap a worker at one command per round trip, and a task
per command spent the worker's core on tasks, futures and one-row statements. So
commands go in batches, each stage at once for the whole batch
(spice/handlers/command_batch.py), one batch at a time; the few that cannot join a
batch go to per-aggregate lanes, where waiting (for another worker's lease, for a
retry's backoff) holds up only their own aggregate. An aggregate with work in a lane
keeps its later commands in that lane, so its order holds across both paths.
"""
from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


class KeyedLanes:
    """Work concurrently across keys and strictly in order within a key: the commands
    that cannot join a batch (a busy claim waits out another worker's lease, a retry
    backs off), so that they hold up only their own aggregate."""

    def __init__(self, max_in_flight: int = 64) -> None:
        self._slots = asyncio.Semaphore(max_in_flight)
        self._tails: dict[str, asyncio.Task[None]] = {}

    @property
    def in_flight(self) -> int:
        return len(self._tails)

    def busy(self, key: str) -> bool:
        """Work for `key` is queued or running: its later work must follow it here."""
        return key in self._tails

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

    def cancel(self) -> None:
        for task in list(self._tails.values()):
            task.cancel()


class Batches(Generic[T]):
    """Hand items to `run` in batches: each batch is what arrived while the one before
    it ran. A lone item goes at once (no linger: a sync request waits for nothing);
    under load batches grow to `max_batch`. One batch runs at a time, so an item never
    overtakes an earlier one; `put` waits while `max_pending` items are queued."""

    def __init__(self, run: Callable[[list[T]], Awaitable[None]], *, max_batch: int = 500,
                 max_pending: int = 1000) -> None:
        self._run, self.max_batch, self.max_pending = run, max_batch, max_pending
        self._items: list[T] = []
        self._room = asyncio.Event()
        self._room.set()
        self._task: asyncio.Task[None] | None = None

    async def put(self, item: T) -> None:
        while len(self._items) >= self.max_pending:
            self._room.clear()
            await self._room.wait()
        self._items.append(item)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain())

    async def _drain(self) -> None:
        await asyncio.sleep(0)  # whatever the stream hands over in this turn joins in
        while self._items:
            batch, self._items = self._items[:self.max_batch], self._items[self.max_batch:]
            self._room.set()
            try:
                await self._run(batch)
            except Exception:  # noqa: BLE001 - `run` owns its errors; the next batch still goes
                log.exception("a batch of %d failed", len(batch))

    async def drain(self) -> None:
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)

    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()


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
