"""Background loops that outlive their errors.

A loop that dies on an exception nobody listed (a decoding error, a bug, a driver's
surprise) stops its work until the process restarts, silently. Every step's error
is logged with its traceback, counted on /metrics, and the loop goes on.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from spice.observability import LOOP_ERRORS

log = logging.getLogger(__name__)


def survived(loop: str, error: BaseException) -> None:
    LOOP_ERRORS.inc(loop)
    log.error("%s: step failed, going on: %s: %s", loop, type(error).__name__, error,
              exc_info=error)


async def every(loop: str, interval: float, step: Callable[[], Awaitable[object]]) -> None:
    """Run `step` every `interval` seconds until cancelled, whatever it raises."""
    while True:
        await asyncio.sleep(interval)
        try:
            await step()
        except Exception as error:  # noqa: BLE001 - the loop must outlive any one step
            survived(loop, error)
