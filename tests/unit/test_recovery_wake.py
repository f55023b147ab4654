"""After an outage, retries go as soon as a probe finds the store back, not when their
backoff (up to 10 s) runs out; a ring is never missed, and never rings too often."""
from __future__ import annotations

import asyncio
import time

import asyncpg
import pytest

from spice.handlers import retry
from spice.stores import breaker as breakers
from spice.stores.breaker import RECOVERED, CircuitBreaker, Guarded
from spice.stores.errors import StoreUnavailable

pytestmark = pytest.mark.unit


async def give_up(error: BaseException, attempts: int) -> None:
    raise AssertionError(f"gave up after {attempts}: {error}")


async def test_a_ring_ends_the_backoff():
    attempts: list[float] = []

    async def work() -> None:
        attempts.append(time.monotonic())
        if len(attempts) == 1:
            asyncio.get_running_loop().call_later(0.2, RECOVERED.ring)
            raise StoreUnavailable("s3", "down")

    # A base of 30 s: without the ring the second attempt would come 15-30 s later.
    await retry.with_retries(work, what="t", max_attempts=3, base=30.0, give_up=give_up)
    assert len(attempts) == 2 and attempts[1] - attempts[0] < 2.0


async def test_a_ring_during_the_failing_attempt_is_not_missed():
    attempts = 0

    async def work() -> None:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            RECOVERED.ring()  # the store came back while this attempt was failing
            raise StoreUnavailable("s3", "down")

    started = time.monotonic()
    await retry.with_retries(work, what="t", max_attempts=3, base=30.0, give_up=give_up)
    assert attempts == 2 and time.monotonic() - started < 1.0


class Flaky:
    """A store whose calls fail, and whose ping answers from the `up`-th ping on."""

    def __init__(self, up: int) -> None:
        self.up, self.pings = up, 0

    async def write(self) -> None:
        raise StoreUnavailable("flaky", "down")

    async def ping(self) -> None:
        self.pings += 1
        if self.pings < self.up:
            raise StoreUnavailable("flaky", "still down")


async def test_the_probe_finds_the_store_back_closes_the_circuit_and_rings(monkeypatch):
    monkeypatch.setattr(breakers, "PROBE_SECONDS", 0.01)
    monkeypatch.setattr(breakers, "RING_SPACING_SECONDS", 0.0)
    store = Flaky(up=3)
    circuit = CircuitBreaker("flaky", threshold=1, cooldown=60)
    guarded = Guarded(store, circuit)
    rings = RECOVERED.rings
    with pytest.raises(StoreUnavailable):
        await guarded.write()
    assert circuit.state == "open"
    await asyncio.wait_for(RECOVERED.wait(rings), 2)
    assert store.pings == 3 and circuit.state == "closed"


async def test_rings_are_spaced(monkeypatch):
    """A ping that answers while real calls still fail must not wake every retry each
    probe interval (their attempts would run out in seconds)."""
    monkeypatch.setattr(breakers, "PROBE_SECONDS", 0.01)
    monkeypatch.setattr(breakers, "RING_SPACING_SECONDS", 0.5)
    guarded = Guarded(Flaky(up=1), CircuitBreaker("flaky", threshold=1))
    RECOVERED.ring()
    rang_at, rings = time.monotonic(), RECOVERED.rings
    with pytest.raises(StoreUnavailable):
        await guarded.write()
    await asyncio.wait_for(RECOVERED.wait(rings), 2)
    assert time.monotonic() - rang_at >= 0.45


class Dropping:
    """A store whose connection the server ends (raised as an adapter does: a
    StoreUnavailable from asyncpg's error), then whose server refuses new ones."""

    def __init__(self) -> None:
        self.refusing = False

    async def write(self) -> None:
        if self.refusing:
            raise StoreUnavailable("postgres", "ConnectionRefusedError") from ConnectionRefusedError()
        try:
            raise asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator command")
        except asyncpg.PostgresError as error:
            raise StoreUnavailable("postgres", type(error).__name__) from error


async def test_dropped_connections_do_not_open_the_circuit_refused_ones_do():
    store = Dropping()
    circuit = CircuitBreaker("postgres", threshold=3)
    guarded = Guarded(store, circuit)
    for _ in range(10):
        with pytest.raises(StoreUnavailable):
            await guarded.write()
    assert circuit.state == "closed"
    store.refusing = True
    for _ in range(3):
        with pytest.raises(StoreUnavailable):
            await guarded.write()
    assert circuit.state == "open"
