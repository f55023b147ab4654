"""The retry envelope shared by every handler: transient errors are retried with
exponential backoff and full jitter; exhausted attempts, and any unexpected error,
go to `give_up` (the dead-letter path) so an agent never stops on one message.
A backoff ends early when a store that was failing answers again (the circuit
breakers ring RECOVERED): after an outage work resumes at once, not up to MAX_DELAY
later."""
from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable

from spice.stores.breaker import RECOVERED
from spice.stores.errors import TRANSIENT_ERRORS

log = logging.getLogger(__name__)
MAX_DELAY = 10.0


class Transient(Exception):
    """Worth another attempt: a store was unavailable or timed out."""


RETRYABLE = TRANSIENT_ERRORS + (Transient,)


def backoff(attempt: int, base: float) -> float:
    return min(MAX_DELAY, base * 2 ** (attempt - 1)) * (0.5 + random.random() / 2)


async def with_retries(work: Callable[[], Awaitable[None]], *, what: str, max_attempts: int,
                       base: float,
                       give_up: Callable[[BaseException, int], Awaitable[None]],
                       on_retry: Callable[[int, BaseException, float], Awaitable[None]] | None = None,
                       ) -> None:
    for attempt in range(1, max_attempts + 1):
        rings = RECOVERED.rings
        try:
            await work()
            return
        except RETRYABLE as error:
            if attempt == max_attempts:
                await give_up(error, attempt)
                return
            delay = backoff(attempt, base)
            log.warning("%s attempt %d failed (%s); retrying in %.2fs", what, attempt, error, delay)
            if on_retry is not None:
                await on_retry(attempt, error, delay)
            try:
                await asyncio.wait_for(RECOVERED.wait(rings), delay)
            except TimeoutError:
                pass
        except Exception as error:  # noqa: BLE001 - a bug must not stop the agent
            log.exception("%s failed unexpectedly", what)
            await give_up(error, attempt)
            return
