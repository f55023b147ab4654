"""Failed authentication, throttled per client address before any database work.

A well-formed made-up key costs a PostgreSQL lookup; without a limit, one client
could make every other tenant's requests queue behind its guesses. Counted in the
process (no shared store to ask: that would be the cost being avoided), per address,
in fixed windows; the table of addresses is bounded.
"""
from __future__ import annotations

import time
from collections import OrderedDict

WINDOW_SECONDS = 60.0
MAX_FAILURES = 30  # failed attempts an address may make in one window
MAX_ADDRESSES = 10_000


class FailureThrottle:
    def __init__(self, max_failures: int = MAX_FAILURES, window: float = WINDOW_SECONDS,
                 max_addresses: int = MAX_ADDRESSES) -> None:
        self.max_failures, self.window, self.max_addresses = max_failures, window, max_addresses
        self._seen: OrderedDict[str, tuple[float, int]] = OrderedDict()

    def retry_after(self, address: str, now: float | None = None) -> int:
        """Seconds until `address` may try again (0: it may now)."""
        now = time.monotonic() if now is None else now
        started, failures = self._seen.get(address, (now, 0))
        if now - started >= self.window or failures < self.max_failures:
            return 0
        return max(1, int(started + self.window - now + 0.999))

    def failed(self, address: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        started, failures = self._seen.pop(address, (now, 0))
        if now - started >= self.window:
            started, failures = now, 0
        self._seen[address] = (started, failures + 1)
        while len(self._seen) > self.max_addresses:
            self._seen.popitem(last=False)
