"""A circuit breaker per external store, added around an adapter as a decorator.

After `threshold` consecutive failures the circuit opens and calls fail fast
with StoreUnavailable for `cooldown` seconds; then one trial call is let through
(half-open) and its outcome closes or re-opens the circuit.
"""
from __future__ import annotations

import functools
import inspect
import time
from typing import Any

from spice.stores.errors import TRANSIENT_ERRORS, EventIdConflict, SequenceConflict, StoreUnavailable

TRANSIENT = TRANSIENT_ERRORS


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
            except TRANSIENT:
                self.breaker.failure()
                raise
            self.breaker.success()
            return result

        return guarded
