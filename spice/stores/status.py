"""Command status in Redis: `command:{id}:status`, `command:{id}:result`, and the
pub/sub channel `command_updates:{id}` on every change (sync waiters subscribe).

Transitions are applied by one Lua script, so the web layer and any number of
workers can write concurrently without losing history entries, and a terminal
state is never overwritten by a late, out-of-order PROCESSING.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from enum import StrEnum
from functools import partial
from typing import Any, Protocol

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError


class CommandStatus(StrEnum):
    PENDING = "PENDING"
    PROCESSING = "PROCESSING"
    RETRYING = "RETRYING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


log = logging.getLogger(__name__)

# Longest a status write waits on Redis before the topic alone records it.
REDIS_TIMEOUT = 5.0
# While Redis is known down, how often one probe checks whether it is back.
PROBE_INTERVAL = 1.0
# Transitions kept, while Redis is down, to replay once it is back (oldest dropped
# first beyond this; the command_status table has every one of them anyway).
MISSED_LIMIT = 200_000
REPLAY_BATCH = 500
TERMINAL = frozenset({CommandStatus.COMPLETED, CommandStatus.FAILED, CommandStatus.CANCELLED})

# Applies the changes of ARGV[3] (a JSON array) in order, in one call: a batch of
# transitions is one command for redis-py to build and parse instead of one each (its
# per-call CPU, not Redis's, was the cost). One JSON argument rather than one argument
# and three key names per change: redis-py encoded the ~2,000 arguments of a 500-change
# batch one by one (3.4 ms a call, 4 % of a busy worker). The key names are therefore
# made here (status_key, result_key and channel below, in Python, make the same names);
# a batch of commands' keys could not share one Redis Cluster slot anyway.
# ARGV[1] = TTL; ARGV[2] = '1' to return each resulting document, else the count.
UPDATE_SCRIPT = """
local ttl = tonumber(ARGV[1])
local terminal = {COMPLETED=true, FAILED=true, CANCELLED=true}

local function apply(change)
  local id = change.command_id
  local key = 'command:' .. id .. ':status'
  local result_key = 'command:' .. id .. ':result'
  local channel = 'command_updates:' .. id
  local current = redis.call('GET', key)
  local doc
  if current then
    doc = cjson.decode(current)
    if change.status == 'PENDING' and doc.status and doc.status ~= 'PENDING' then
      -- The API records PENDING without waiting; a fast worker may have been first,
      -- even to the end. PENDING goes first in the history, once, and brings the
      -- command's type and database, which the worker's steps do not carry (the
      -- status API shows a command only to those who may see its database).
      local seen = false
      for _, step in ipairs(doc.history) do
        if step.status == 'PENDING' then seen = true end
      end
      if not seen then
        table.insert(doc.history, 1, {status = 'PENDING', timestamp = change.timestamp,
                                      message = change.message})
        doc.created_at = change.timestamp
      end
      for _, field in ipairs({'command_type', 'db', 'aggregate_id'}) do
        if change[field] ~= nil and doc[field] == nil then doc[field] = change[field] end
      end
      local late = cjson.encode(doc)
      redis.call('SET', key, late, 'EX', ttl)
      redis.call('PUBLISH', channel, late)
      return late
    end
    if terminal[doc.status] and not terminal[change.status] and change.status ~= 'PROJECTED' then
      return current
    end
    if terminal[doc.status] and change.status == doc.status then
      -- The same outcome reported again (a redelivered command restoring its status):
      -- a command ends once, so its history says so once.
      return current
    end
  else
    doc = {command_id = change.command_id, created_at = change.timestamp, history = {}}
  end
  if change.status ~= 'PROJECTED' then
    doc.status = change.status
  end
  doc.updated_at = change.timestamp
  for _, field in ipairs({'command_type', 'db', 'aggregate_id', 'progress', 'error', 'projected'}) do
    if change[field] ~= nil then doc[field] = change[field] end
  end
  table.insert(doc.history, {status = change.status, timestamp = change.timestamp,
                             message = change.message})
  local encoded = cjson.encode(doc)
  redis.call('SET', key, encoded, 'EX', ttl)
  if change.result ~= nil then
    redis.call('SET', result_key, cjson.encode(change.result), 'EX', ttl)
  end
  redis.call('PUBLISH', channel, encoded)
  return encoded
end

local changes = cjson.decode(ARGV[3])
local out = {}
for i = 1, #changes do
  local encoded = apply(changes[i])
  if ARGV[2] == '1' then out[#out + 1] = encoded end
end
if ARGV[2] == '1' then return out end
return #changes
"""


def status_key(command_id: str) -> str:
    return f"command:{command_id}:status"


def result_key(command_id: str) -> str:
    return f"command:{command_id}:result"


def channel(command_id: str) -> str:
    return f"command_updates:{command_id}"


Emit = Callable[[dict[str, Any]], Awaitable[None]]


def make_change(command_id: str, status: str, message: str = "", *, result: Any = None,
                error: Any = None, progress: float | None = None, **fields: Any) -> dict[str, Any]:
    """One transition as the script, the topic and the status table take it."""
    change = {"command_id": command_id, "status": str(status), "message": message,
              "timestamp": time.time(), **{k: v for k, v in fields.items() if v is not None}}
    if progress is not None:
        change["progress"] = progress
    if error is not None:
        change["error"] = error
    if result is not None:
        change["result"] = result
    return change


class StatusSink(Protocol):
    """The port the handlers report to. Adapter: `StatusTracker` below (Redis, with the
    command_status topic behind it); unit tests use a fake (tests/unit/fakes.py)."""

    async def update(self, command_id: str, status: str, message: str = "", *,
                     result: Any = None, error: Any = None, progress: float | None = None,
                     **fields: Any) -> dict[str, Any] | None: ...

    async def record_many(self, changes: list[dict[str, Any]]) -> None: ...

    async def get(self, command_id: str) -> dict[str, Any] | None:
        """The status document, or None; raises one of UNAVAILABLE when it cannot tell."""
        ...


# What `StatusSink.get` raises when the status store cannot answer (the caller goes on
# without it): the handlers depend on this port, not on Redis.
UNAVAILABLE: tuple[type[BaseException], ...] = (RedisError, OSError)


class StatusTracker:
    """The one writer of command status: Redis first, then the command_status topic."""

    def __init__(self, redis: aioredis.Redis, ttl_seconds: int = 24 * 3600,
                 emit: Emit | None = None) -> None:
        self.redis = redis
        self.ttl = ttl_seconds
        self.emit = emit
        self._script = redis.register_script(UPDATE_SCRIPT)
        # Concurrent updates share one pipelined round trip: redis-py spends far more
        # CPU per call than Redis does, and a worker makes three updates per command.
        self._pending: list[tuple[dict[str, Any], asyncio.Future[str]]] = []
        self._flusher: asyncio.Task[None] | None = None
        # Redis down: writes skip it at once (instead of each waiting for its timeout,
        # which made a worker crawl through an outage), go to the topic, and are kept
        # here to be replayed when a probe finds Redis back, so Redis does not keep
        # showing a stale PENDING or PROCESSING for a command that finished meanwhile.
        self._missed: deque[dict[str, Any]] = deque(maxlen=MISSED_LIMIT)
        self._prober: asyncio.Task[None] | None = None

    async def close(self) -> None:
        if self._prober is not None:
            self._prober.cancel()
            await asyncio.gather(self._prober, return_exceptions=True)

    @property
    def redis_down(self) -> bool:
        return self._prober is not None and not self._prober.done()

    @property
    def missed(self) -> int:
        return len(self._missed)

    def _check_up(self) -> None:
        if self.redis_down:
            raise RedisError("Redis is down (status writes go to the command_status topic)")

    def _went_down(self, error: BaseException) -> None:
        if not self.redis_down:
            log.warning("Redis unavailable (%s: %s): status goes to the command_status topic "
                        "until it is back", type(error).__name__, error)
            self._prober = asyncio.create_task(self._probe_until_back())

    async def _probe_until_back(self) -> None:
        while True:
            await asyncio.sleep(PROBE_INTERVAL)
            try:
                await asyncio.wait_for(self.redis.ping(), REDIS_TIMEOUT)
                await self._replay()
            except (TimeoutError, RedisError, OSError):
                continue
            log.info("Redis is back: missed status transitions replayed")
            return

    async def _replay(self) -> None:
        """Send the transitions Redis missed, oldest first. The update script keeps a
        terminal state over any late non-terminal one, so replay order is safe. A batch
        leaves the queue only once Redis took it."""
        while self._missed:
            batch = [self._missed[i] for i in range(min(REPLAY_BATCH, len(self._missed)))]
            await self._apply(batch, docs=False)
            for _ in batch:
                self._missed.popleft()

    async def _apply(self, changes: list[dict[str, Any]], *, docs: bool) -> Any:
        """One script call for the whole batch; the resulting documents when `docs`."""
        return await asyncio.wait_for(
            self._script(args=[self.ttl, "1" if docs else "0", orjson.dumps(changes)]),
            REDIS_TIMEOUT)

    async def update(self, command_id: str, status: str, message: str = "", *,
                     result: Any = None, error: Any = None, progress: float | None = None,
                     **fields: Any) -> dict[str, Any] | None:
        change = make_change(command_id, status, message, result=result, error=error,
                             progress=progress, **fields)
        encoded = await self._record([change], lambda: asyncio.wait_for(self._queue(change),
                                                                        REDIS_TIMEOUT))
        return json.loads(encoded) if encoded is not None else None

    async def record_many(self, changes: list[dict[str, Any]]) -> None:
        """Transitions whose resulting documents nobody reads (a projection batch's
        PROJECTED steps): one script call per REPLAY_BATCH, no future per change."""
        for start in range(0, len(changes), REPLAY_BATCH):
            chunk = changes[start:start + REPLAY_BATCH]
            await self._record(chunk, partial(self._apply, chunk, docs=False))

    async def _record(self, changes: list[dict[str, Any]],
                      to_redis: Callable[[], Awaitable[Any]]) -> Any:
        """Redis first (what `to_redis` returns, None when Redis is down), then the topic.
        Redis is a cache of status: the topic (and its Faust table) still records the
        transitions, and the status API falls back to that table."""
        answer = None
        try:
            self._check_up()
            answer = await to_redis()
        except (TimeoutError, RedisError, OSError) as error:
            if self.emit is None:
                raise
            self._missed.extend(changes)
            self._went_down(error)
        if self.emit is not None:
            for change in changes:
                await self.emit(change)
        return answer

    def _queue(self, change: dict[str, Any]) -> asyncio.Future[str]:
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._pending.append((change, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return future

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending[:REPLAY_BATCH], self._pending[REPLAY_BATCH:]
            try:
                # The script is loaded on the way when Redis restarted empty, and that can
                # fail too: every failure must reach every waiter, or an update would wait
                # forever on a future nobody resolves.
                results = await self._apply([change for change, _ in batch], docs=True)
            except asyncio.CancelledError:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(RedisError("status write cancelled"))
                raise
            except Exception as error:  # noqa: BLE001 - each waiter gets the failure
                for _, future in batch:
                    if not future.done():
                        future.set_exception(error)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)

    async def get(self, command_id: str) -> dict[str, Any] | None:
        self._check_up()
        raw, result = await self.redis.mget(status_key(command_id), result_key(command_id))
        if raw is None:
            return None
        doc: dict[str, Any] = json.loads(raw)
        if result is not None:
            doc["result"] = json.loads(result)
        return doc

    async def wait(self, command_id: str, timeout: float,
                   done: Callable[[dict[str, Any]], bool] | None = None,
                   recheck_every: float = 1.0) -> dict[str, Any] | None:
        """Wait until the command is terminal (or `done` says so); None on timeout.

        Subscribes before the first read, so no update can fall between the two;
        re-reads every `recheck_every` seconds in case a message was dropped.
        """
        done = done or (lambda doc: doc.get("status") in TERMINAL)
        self._check_up()
        deadline = time.monotonic() + timeout
        pubsub = self.redis.pubsub()
        try:
            await pubsub.subscribe(channel(command_id))
            while True:
                doc = await self.get(command_id)
                if doc is not None and done(doc):
                    return doc
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                window = min(remaining, recheck_every)
                end = time.monotonic() + window
                while time.monotonic() < end:
                    message = await pubsub.get_message(
                        ignore_subscribe_messages=True, timeout=max(0.0, end - time.monotonic()))
                    if message is not None:
                        break
        finally:
            try:
                await pubsub.unsubscribe()
                await pubsub.aclose()
            except (RedisError, asyncio.CancelledError, OSError):
                pass
