"""The shared token bucket on the real Redis: workers take tokens a few at a time and
together never get more than the bucket gives."""
import asyncio
import time
import uuid

from spice.stores.ratelimit import LEASE_SECONDS, RateLimiter, chunk_for


def test_chunk_sizes():
    assert chunk_for(2, 4) == 1  # a slow key: one token a call, as strict as ever
    assert chunk_for(500, 1000) == 50
    assert chunk_for(1e6, 10**6) == 64


async def test_two_workers_together_never_exceed_the_burst_and_call_redis_per_chunk(runtime):
    principal = f"rl-{uuid.uuid4().hex[:8]}"
    first, second = RateLimiter(runtime.redis), RateLimiter(runtime.redis)
    rate, burst = 200.0, 200  # chunks of 20
    started = time.monotonic()
    decisions = await asyncio.gather(*[(first if n % 2 else second).take(principal, rate, burst)
                                       for n in range(600)])
    elapsed = time.monotonic() - started
    allowed = sum(d.allowed for d in decisions)
    assert allowed <= burst + rate * elapsed + 1, (allowed, elapsed)
    assert allowed >= burst - 2 * chunk_for(rate, burst), allowed  # at most a chunk each unspent
    refused = [d for d in decisions if not d.allowed]
    assert refused and all(d.retry_after >= 1 for d in refused)


async def test_while_tokens_last_a_redis_call_serves_a_chunk_of_requests(runtime):
    principal = f"rl-{uuid.uuid4().hex[:8]}"
    first, second = RateLimiter(runtime.redis), RateLimiter(runtime.redis)
    rate, burst = 1000.0, 1000  # chunks of 64
    decisions = await asyncio.gather(*[(first if n % 2 else second).take(principal, rate, burst)
                                       for n in range(640)])
    assert all(d.allowed for d in decisions)
    assert first.calls + second.calls <= 640 // 64 + 2, (first.calls, second.calls)


async def test_unspent_tokens_lapse_and_tokens_come_back_at_the_rate(runtime):
    principal = f"rl-{uuid.uuid4().hex[:8]}"
    limiter = RateLimiter(runtime.redis)
    rate, burst = 100.0, 40  # chunks of 10
    assert all([(await limiter.take(principal, rate, burst)).allowed for _ in range(40)])
    assert not (await limiter.take(principal, rate, burst)).allowed
    await asyncio.sleep(0.3)  # ~30 tokens back
    took = [(await limiter.take(principal, rate, burst)).allowed for _ in range(60)]
    assert 20 <= sum(took) <= 40, took
    await asyncio.sleep(LEASE_SECONDS * 2)
    calls = limiter.calls
    assert (await limiter.take(principal, rate, burst)).allowed
    assert limiter.calls == calls + 1  # the held tokens had lapsed: a fresh call


async def test_the_next_chunk_is_fetched_before_the_held_one_runs_out(runtime):
    principal = f"rl-{uuid.uuid4().hex[:8]}"
    limiter = RateLimiter(runtime.redis)
    rate, burst = 1000.0, 1000  # chunks of 64
    assert (await limiter.take(principal, rate, burst)).allowed
    held = limiter._held[principal]
    for _ in range(40):  # below half a chunk left: a look-ahead refill starts
        assert (await limiter.take(principal, rate, burst)).allowed
    assert held.refill is not None
    await held.refill
    assert held.tokens > 64 - 41  # the next chunk joined what was left
