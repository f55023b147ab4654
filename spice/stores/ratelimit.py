"""A token bucket per key in Redis: one Lua call per request, shared by all workers."""
from __future__ import annotations

import math
from dataclasses import dataclass

from redis.asyncio import Redis

# KEYS[1] the bucket; ARGV: rate per second, burst. Redis's own clock (TIME; allowed
# in scripts since Redis 5 replicates effects), so every worker sees the same time.
# Returns {allowed (0/1), seconds until one token is back}.
TOKEN_BUCKET = """
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local allowed = 0
if tokens >= 1 then tokens = tokens - 1; allowed = 1 end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(burst / rate) + 1)
local wait = 0
if allowed == 0 then wait = (1 - tokens) / rate end
return {allowed, tostring(wait)}
"""


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after: int  # whole seconds, at least 1 when refused


class RateLimiter:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self.script = redis.register_script(TOKEN_BUCKET)

    async def take(self, principal: str, rate: float, burst: int) -> Decision:
        allowed, wait = await self.script(keys=[f"ratelimit:{principal}"], args=[rate, burst])
        return Decision(bool(int(allowed)), max(1, math.ceil(float(wait))) if not int(allowed) else 0)
