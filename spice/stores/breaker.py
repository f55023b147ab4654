"""A circuit breaker per external store, added around an adapter as a decorator.

After `threshold` consecutive failures the circuit opens and calls fail fast
with StoreUnavailable for `cooldown` seconds; then one trial call is let through
(half-open) and its outcome closes or re-opens the circuit. A dropped connection
(the server ended one session) is not a failure of the store and does not count.
While it is open a probe (the store's `ping`, every PROBE_SECONDS) finds the store
back without waiting for a caller, and a store that answers again rings RECOVERED:
retries sleeping out their backoff (spice/handlers/retry.py) go at once instead of
up to 10 s later.
"""
from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import time
from typing import Any

from spice.stores.errors import (
    TRANSIENT_ERRORS,
    EventIdConflict,
    SequenceConflict,
    StoreUnavailable,
    is_dropped_connection,
)

TRANSIENT = TRANSIENT_ERRORS
PROBE_SECONDS = 0.5
# Rings at most this often: a store whose ping answers while its real calls still fail
# would otherwise wake every retry each half second and use up their attempts.
RING_SPACING_SECONDS = 5.0
log = logging.getLogger(__name__)


class RecoveryBell:
    """Rung when a probe finds a failing store answering again. A waiter passes the
    count of rings it saw before its attempt, so a ring that came while it was still
    failing or recording the failure is not missed. One event per event loop (the
    tests run several loops in one process)."""

    def __init__(self) -> None:
        self.rings = 0
        self.last_ring = float("-inf")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._event = asyncio.Event()

    def _current(self) -> asyncio.Event:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._loop, self._event = loop, asyncio.Event()
        return self._event

    def ring(self) -> None:
        self.rings += 1
        self.last_ring = time.monotonic()
        self._current().set()
        self._event = asyncio.Event()

    async def wait(self, since: int) -> None:
        """Return at the next ring, or at once if one came after `since`."""
        if self.rings == since:
            await self._current().wait()


RECOVERED = RecoveryBell()


class CircuitBreaker:
    def __init__(self, name: str, threshold: int = 5, cooldown: float = 5.0) -> None:
        self.name, self.threshold, self.cooldown = name, threshold, cooldown
        self.failures = 0
        self.opened_at: float | None = None

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        return "half-open" if time.monotonic() - self.opened_at >= self.cooldown else "open"

    def before_call(self) -> None:
        if self.state == "open":
            raise StoreUnavailable(self.name, "circuit open after repeated failures")

    def success(self) -> None:
        self.failures = 0
        self.opened_at = None

    def failure(self) -> None:
        self.failures += 1
        if self.failures >= self.threshold or self.opened_at is not None:
            self.opened_at = time.monotonic()


class Guarded:
    """Wrap every coroutine method of `target` in `breaker` (async generators pass through)."""

    def __init__(self, target: Any, breaker: CircuitBreaker) -> None:
        self._target = target
        self.breaker = breaker
        self._probe: asyncio.Task[None] | None = None

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._target, name)
        if not inspect.iscoroutinefunction(attribute):
            return attribute
        guarded = self._wrap(attribute)
        # Cached on the instance (found before __getattr__ from now on): wrapping on
        # every call (inspect, functools.wraps) was 3 % of a command worker's CPU.
        self.__dict__[name] = guarded
        return guarded

    def _wrap(self, attribute: Any) -> Any:
        @functools.wraps(attribute)
        async def guarded(*args: Any, **kwargs: Any) -> Any:
            self.breaker.before_call()
            try:
                result = await attribute(*args, **kwargs)
            except (SequenceConflict, EventIdConflict):
                self.breaker.success()  # the store answered; the caller was wrong
                raise
            except TRANSIENT as error:
                # A dropped connection ended one session, not the store: opening the
                # circuit on it would fail every call for a cooldown, and a server that
                # drops connections often (a pooler, an operator's terminate) would keep
                # it open. (One group-committed batch on such a connection fails every
                # append that waited on it: as many failures as callers.)
                if not is_dropped_connection(error):
                    self.breaker.failure()
                    self._start_probe()
                raise
            self.breaker.success()
            return result

        return guarded

    def _start_probe(self) -> None:
        if (self._probe is not None and not self._probe.done()) or not hasattr(self._target, "ping"):
            return
        self._probe = asyncio.create_task(self._probing(), name=f"probe-{self.breaker.name}")

    async def _probing(self) -> None:
        """Ping the store until it answers, then close the circuit and ring. Only the
        probe rings: a call that succeeds may have used half of a store (the event
        store's index without S3), the ping checks the whole of it."""
        while True:
            await asyncio.sleep(PROBE_SECONDS)
            try:
                await self._target.ping()
            except Exception:  # noqa: BLE001 - still away; a probe must never die of it
                continue
            self.breaker.success()
            log.info("%s answers again", self.breaker.name)
            await asyncio.sleep(max(0.0, RECOVERED.last_ring + RING_SPACING_SECONDS - time.monotonic()))
            RECOVERED.ring()
            return
