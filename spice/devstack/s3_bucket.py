"""Create the event-store bucket through the real S3 API, once the server answers."""
from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

from spice.settings import Settings


async def _ensure(settings: Settings) -> None:
    from spice.stores.s3 import ensure_bucket, open_s3_client

    async with AsyncExitStack() as stack:
        s3 = await open_s3_client(settings, stack)
        for attempt in range(40):
            try:
                await ensure_bucket(s3, settings.event_store_bucket)
                return
            except Exception:
                if attempt == 39:
                    raise
                await asyncio.sleep(0.25)


def ensure_bucket(settings: Settings) -> None:
    asyncio.run(_ensure(settings))
