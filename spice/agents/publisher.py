"""The publisher: tails the event store into Kafka, at least once, never skipping.

One publisher is active per cluster: every worker runs this loop, and the one
holding a PostgreSQL advisory lock publishes (the lock dies with its connection,
so a crashed publisher is replaced within a poll interval).

Late writers: a batch key carries the writer's clock at PUT time, so a slow PUT
can land *behind* the checkpoint. The fast path lists after the checkpoint; every
poll interval a lookback scan re-lists the last EVENT_PUBLISHER_LOOKBACK_SECONDS
and publishes what it has not published yet (remembered in the checkpoint). The
S3 client's read timeout (10 s) bounds a PUT well inside the 30 s window.
A high-water mark was the alternative; it would hold every event back by the
longest possible PUT, and the p50 latency target rules that out.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from botocore.exceptions import BotoCoreError, ClientError

from spice.settings import Settings
from spice.stores.checkpoint import Checkpoint, CheckpointStore
from spice.stores.errors import StoreUnavailable
from spice.topics import PUBLISHER_DLQ
from spice.stores.s3_event_store import NOTIFY_CHANNEL, S3EventStore, position_at

log = logging.getLogger(__name__)


def leader_lock_id(checkpoint_key: str) -> int:
    # One leader per checkpoint: publishers sharing a checkpoint must never overlap.
    return int.from_bytes(hashlib.sha256(checkpoint_key.encode()).digest()[:8], "big", signed=True)


@dataclass
class PublisherStats:
    batches: int = 0
    events: int = 0
    is_leader: bool = False
    last_publish_at: float | None = None


class Publisher:
    def __init__(self, store: S3EventStore, settings: Settings, *,
                 start_after: str | None = None, checkpoint_key: str | None = None) -> None:
        self.store = store
        self.settings = settings
        checkpoint_key = checkpoint_key or settings.event_publisher_checkpoint_key
        self.checkpoints = CheckpointStore(store.s3, store.bucket, checkpoint_key)
        self.lock_id = leader_lock_id(checkpoint_key)
        # Where a publisher with no checkpoint yet starts (None: the very beginning).
        self.start_after = start_after
        self.checkpoint = Checkpoint()
        self.stats = PublisherStats()
        self._wake = asyncio.Event()
        self._producer: AIOKafkaProducer | None = None
        self._lock_conn: asyncpg.Connection | None = None
        self._last_lookback = 0.0
        self._last_save = 0.0
        self._dirty = False
        self._known_topics: set[str] = set()

    def wake(self, *_: Any) -> None:
        self._wake.set()

    async def run(self) -> None:
        """Run until cancelled: wait for leadership, then publish."""
        try:
            while True:
                if not await self._acquire_leadership():
                    await asyncio.sleep(self.settings.event_publisher_poll_interval)
                    continue
                try:
                    await self._lead()
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, KafkaError,
                        StoreUnavailable, ClientError, BotoCoreError) as error:
                    log.warning("publisher lost its footing (%s); retrying", error)
                    await self._release()
                    await asyncio.sleep(1)
        finally:
            await self._release()

    async def _acquire_leadership(self) -> bool:
        try:
            conn = await asyncpg.connect(self.settings.postgres_dsn)
        except (OSError, asyncpg.PostgresError) as error:
            log.warning("publisher cannot reach postgres: %s", error)
            return False
        if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", self.lock_id):
            await conn.close()
            return False
        await conn.add_listener(NOTIFY_CHANNEL, self.wake)
        self._lock_conn = conn
        self.stats.is_leader = True
        log.info("publisher is the leader")
        return True

    async def _release(self) -> None:
        self.stats.is_leader = False
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None
        if self._lock_conn is not None:
            await self._lock_conn.close(timeout=2)
            self._lock_conn = None

    async def _lead(self) -> None:
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self.settings.kafka_bootstrap_servers, acks="all",
            enable_idempotence=True, linger_ms=1, max_batch_size=1 << 20,
            max_request_size=8 << 20)
        await self._producer.start()
        await self._refresh_topics()
        loaded = await self.checkpoints.load()
        self.checkpoint = loaded or Checkpoint(position=self.start_after)
        while True:
            if self._lock_conn is None or self._lock_conn.is_closed():
                raise OSError("leadership connection closed")
            self._wake.clear()
            published = await self.publish_available()
            if not published:
                try:
                    await asyncio.wait_for(self._wake.wait(),
                                           self.settings.event_publisher_poll_interval)
                except TimeoutError:
                    pass

    async def publish_available(self) -> int:
        """One pass: the fast path after the checkpoint, then (periodically) the lookback."""
        count = await self._publish_keys(await self._list(self.checkpoint.position))
        now = time.time()
        if now - self._last_lookback >= self.settings.event_publisher_poll_interval:
            self._last_lookback = now
            horizon = position_at(now - self.settings.event_publisher_lookback_seconds)
            start = min(horizon, self.checkpoint.position or horizon)
            count += await self._publish_keys(await self._list(start, skip_known=True))
            self.checkpoint.prune(horizon)
        await self._maybe_save(force=count == 0)
        return count

    async def _list(self, after: str | None, skip_known: bool = False) -> list[str]:
        keys = []
        async for key in self.store.list_positions(after, limit=self.settings.event_publisher_batch_size):
            if skip_known and key in self.checkpoint.recent:
                continue
            keys.append(key)
        return keys

    async def _publish_keys(self, keys: list[str]) -> int:
        assert self._producer is not None
        sent = 0
        for key in keys:
            if key in self.checkpoint.recent:
                continue
            futures = []
            for line in (await self._read_raw(key)).splitlines():
                if not line.strip():
                    continue
                body = json.loads(line)
                topic = await self._routable(body["metadata"].get("kafka_topic"))
                futures.append(await self._producer.send(
                    topic, line, key=body["aggregate_id"].encode()))
            # Kafka's acknowledgement first; only then may the checkpoint move.
            await asyncio.gather(*futures)
            self.checkpoint.recent.add(key)
            if self.checkpoint.position is None or key > self.checkpoint.position:
                self.checkpoint.position = key
            self._dirty = True
            sent += len(futures)
            self.stats.batches += 1
            self.stats.events += len(futures)
            self.stats.last_publish_at = time.time()
        return sent

    async def _routable(self, topic: str | None) -> str:
        """An envelope naming a topic that does not exist goes to the publisher's DLQ
        instead: waiting for the topic would stall every event behind it."""
        assert self._producer is not None
        if topic and topic in self._known_topics:
            return topic
        if topic:
            await self._refresh_topics()
            if topic in self._known_topics:
                return topic
        log.error("envelope names unknown topic %r; sent to %s", topic, PUBLISHER_DLQ)
        return PUBLISHER_DLQ

    async def _refresh_topics(self) -> None:
        assert self._producer is not None
        metadata = await self._producer.client.fetch_all_metadata()
        self._known_topics = set(metadata.topics())

    async def _read_raw(self, key: str) -> bytes:
        response = await self.store.s3.get_object(Bucket=self.store.bucket, Key=key)
        async with response["Body"] as stream:
            return bytes(await stream.read())

    async def _maybe_save(self, force: bool) -> None:
        # Saving less often than publishing only means more duplicates after a crash.
        if self._dirty and (force or time.monotonic() - self._last_save > 0.5):
            await self.checkpoints.save(self.checkpoint)
            self._dirty = False
            self._last_save = time.monotonic()


async def publisher_lag(pool: asyncpg.Pool, checkpoint: Checkpoint) -> dict[str, float | int]:
    """Events stored but not yet published, and the age of the oldest of them."""
    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT count(*) AS events, extract(epoch FROM now() - min(created_at)) AS age "
            "FROM event_index WHERE stored AND batch_key > $1 AND NOT batch_key = ANY($2)",
            checkpoint.position or "", list(checkpoint.recent))
    return {"events": int(row["events"]), "oldest_age_seconds": float(row["age"] or 0.0)}
