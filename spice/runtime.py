"""The process's connections and adapters, opened once and shared by agents and views."""
from __future__ import annotations

from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import redis.asyncio as aioredis

from spice.settings import Settings
from spice.stores.postgres import create_pool
from spice.stores.s3 import open_s3_client
from spice.stores.s3_event_store import S3EventStore


@dataclass
class Runtime:
    settings: Settings
    pool: asyncpg.Pool
    s3: Any
    redis: aioredis.Redis
    event_store: S3EventStore
    _stack: AsyncExitStack = field(repr=False, default_factory=AsyncExitStack)

    @classmethod
    async def open(cls, settings: Settings) -> Runtime:
        stack = AsyncExitStack()
        try:
            pool = await create_pool(settings)
            stack.push_async_callback(pool.close)
            s3 = await open_s3_client(settings, stack)
            redis = aioredis.from_url(settings.redis_url, decode_responses=True)
            stack.push_async_callback(redis.aclose)
            event_store = S3EventStore(
                s3, pool, settings.event_store_bucket,
                max_batch=settings.event_store_group_commit_max,
                linger_ms=settings.event_store_group_commit_wait_ms)
            stack.push_async_callback(event_store.close)
        except BaseException:
            await stack.aclose()
            raise
        return cls(settings, pool, s3, redis, event_store, stack)

    async def close(self) -> None:
        await self._stack.aclose()
