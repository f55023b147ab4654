"""Concurrent single calls become one batched call.

A worker runs up to 64 commands at once (one lane per aggregate), and each makes the
same few PostgreSQL calls: claim, load, write, mark done. One statement per call
costs a round trip, a pool checkout and the server's parse and plan each time;
most of a command's time went there. A Coalescer collects the calls made while the
event loop turns once and sends them as one statement, then hands each caller its
own answer. The callers' code does not change: `await coalescer(item)` behaves
like the single call, including its exceptions.

Rules that keep it correct:
- items with the same key never share a batch (a statement may not touch one row
  twice, and two calls for one key keep their order: the later one waits);
- if a batch fails, each of its items is tried alone with `run_one`, so an error
  reaches only the caller whose item caused it (and a dependency that is down
  fails every caller, as it would have anyway).
"""
from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Coalescer(Generic[T, R]):
    def __init__(self, run_many: Callable[[list[T]], Awaitable[list[R]]],
                 run_one: Callable[[T], Awaitable[R]], *,
                 key: Callable[[T], Hashable] = id, max_batch: int = 500,
                 share: bool = False) -> None:
        """`share`: calls with the same key in one batch are one read and get one answer
        (for reads; writes keep the default, where the later call waits)."""
        self.run_many, self.run_one, self.key = run_many, run_one, key
        self.max_batch = max_batch
        self.share = share
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self.batches = 0  # for tests and curiosity: how many statements were sent

    async def __call__(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await future

    def _take(self) -> list[tuple[T, asyncio.Future[R]]]:
        batch: list[tuple[T, asyncio.Future[R]]] = []
        rest: list[tuple[T, asyncio.Future[R]]] = []
        keys: set[Hashable] = set()
        for entry in self._pending:
            k = self.key(entry[0])
            if k in keys or len(batch) >= self.max_batch:
                rest.append(entry)
            else:
                keys.add(k)
                batch.append(entry)
        self._pending = rest
        return batch

    def _take_shared(self) -> tuple[list[tuple[T, asyncio.Future[R]]], dict[Hashable, list[Any]]]:
        """One entry per key; the other callers with that key ride along."""
        batch: list[tuple[T, asyncio.Future[R]]] = []
        riders: dict[Hashable, list[Any]] = {}
        rest = []
        for entry in self._pending:
            k = self.key(entry[0])
            if k in riders:
                riders[k].append(entry[1])
            elif len(batch) >= self.max_batch:
                rest.append(entry)
            else:
                riders[k] = []
                batch.append(entry)
        self._pending = rest
        return batch, riders

    async def _flush(self) -> None:
        await asyncio.sleep(0)  # let every lane that is ready make its call first
        while self._pending:
            if self.share:
                batch, riders = self._take_shared()
                for item, future in batch:
                    for rider in riders[self.key(item)]:
                        future.add_done_callback(functools.partial(_copy, target=rider))
            else:
                batch = self._take()
            self.batches += 1
            try:
                results = await self.run_many([item for item, _ in batch])
            except asyncio.CancelledError:
                for _, future in batch:
                    if not future.done():
                        future.cancel()
                raise
            except Exception:  # noqa: BLE001 - each item alone decides whose error it is
                await asyncio.gather(*[self._alone(item, future) for item, future in batch])
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)

    async def _alone(self, item: T, future: asyncio.Future[Any]) -> None:
        try:
            result = await self.run_one(item)
        except Exception as error:  # noqa: BLE001 - delivered to its caller
            if not future.done():
                future.set_exception(error)
            return
        if not future.done():
            future.set_result(result)


def _copy(source: asyncio.Future[Any], target: asyncio.Future[Any]) -> None:
    if target.done():
        return
    if source.cancelled():
        target.cancel()
    elif source.exception() is not None:
        target.set_exception(source.exception())  # type: ignore[arg-type]
    else:
        target.set_result(source.result())
