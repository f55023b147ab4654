"""The publisher: tails the event store into Kafka, at least once, never skipping.

One publisher is active per cluster: every worker runs this loop, and the one
holding a PostgreSQL advisory lock publishes (the lock dies with its connection,
so a crashed publisher is replaced within a poll interval).

Late writers: a batch key carries the writer's clock at PUT time, so a slow PUT
can land *behind* the checkpoint. Appends announce their keys (in-process or by
NOTIFY), so a late batch is normally published when announced; besides, a
background scan reads the keys of the last EVENT_PUBLISHER_LOOKBACK_SECONDS from
the event index in PostgreSQL (every third of that window, at least every poll
interval) and publishes what it has not published yet (remembered in the
checkpoint). The index, not an S3 listing: every append writes its index rows
before its PUT, and listing the window in S3 cost more CPU than publishing it. The
S3 client's read timeout (10 s) bounds a PUT well inside the 30 s window.
A high-water mark was the alternative; it would hold every event back by the
longest possible PUT, and the p50 latency target rules that out.
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from botocore.exceptions import BotoCoreError, ClientError

from spice.agents.forever import every, survived
from spice.agents.sweeper import Sweeper
from spice.faults import crash_point
from spice.kafka_client import kafka_options
from spice.observability import UNREADABLE
from spice.partitioner import KeyPartitioner
from spice.settings import Settings
from spice.stores.checkpoint import Checkpoint, CheckpointStore
from spice.stores.errors import StoreUnavailable
from spice.stores.s3 import error_code
from spice.stores.s3_event_store import NOTIFY_CHANNEL, S3EventStore, position_at
from spice.topics import PUBLISHER_DLQ

log = logging.getLogger(__name__)
# Tells consumers the envelope came out of the event store, so they need not check.
STORED_HEADER = [("spice-stored", b"1")]
# Concurrent GETs while catching up; hundreds at once make the S3 client fail.
READ_CONCURRENCY = 16
ABSENT_TRIES = 3
# Regaining the lock after its connection died: tries, and the pause between them.
REGAIN_TRIES, REGAIN_PAUSE = 5, 0.2
# What a lost or refused PostgreSQL connection raises.
POSTGRES_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError)


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
        self._late: set[str] = set()
        # Keys the index named but S3 did not have, with how often: a PUT in flight shows
        # up by the next pass (PUTs are bounded well inside it); one that failed, or
        # another bucket's batch, never does, and after ABSENT_TRIES the lookback stops
        # asking (an announcement still counts).
        self._absent: dict[str, int] = {}
        self._caught_up = False
        self._dirty = False
        self._known_topics: set[str] = set()
        self._topics_fetched_at = 0.0

    def wake(self, key: str | None = None) -> None:
        """A batch was stored (its key, when known): publish without waiting for a poll."""
        if key:
            self._late.add(key)
        self._wake.set()

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        bucket, _, key = payload.partition("/")
        if bucket == self.store.bucket:
            self.wake(key)

    async def run(self) -> None:
        """Run until cancelled: wait for leadership, then publish."""
        try:
            while True:
                if not await self._acquire_leadership():
                    await asyncio.sleep(self.settings.event_publisher_poll_interval)
                    continue
                try:
                    await self._lead()
                except (*POSTGRES_ERRORS, KafkaError,
                        StoreUnavailable, ClientError, BotoCoreError) as error:
                    log.warning("publisher lost its footing (%s); retrying", error)
                except Exception as error:  # noqa: BLE001 - never a dead publisher
                    survived("publisher", error)
                await self._release()
                await asyncio.sleep(1)
        finally:
            await self._release()

    async def _acquire_leadership(self) -> bool:
        try:
            taken = await self._try_lock()
        except POSTGRES_ERRORS as error:
            log.warning("publisher cannot reach postgres: %s", error)
            return False
        if taken:
            self.stats.is_leader = True
            log.info("publisher is the leader")
        return taken

    async def _try_lock(self) -> bool:
        """Take the advisory lock on a connection of its own (False: another worker holds
        it); that connection also listens for the appends of other processes."""
        conn = await asyncpg.connect(self.settings.postgres_dsn, timeout=5)
        try:
            if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", self.lock_id):
                await conn.close()
                return False
            await conn.add_listener(NOTIFY_CHANNEL, self._on_notify)
            # A lost connection wakes the loop, which takes the lock again at once.
            conn.add_termination_listener(lambda _conn: self._wake.set())
        except BaseException:
            conn.terminate()
            raise
        self._lock_conn = conn
        return True

    async def _keep_leadership(self) -> None:
        """The lock's connection died (a PostgreSQL restart, a terminated backend) while
        this publisher led. Take the lock again at once on a new connection and go on
        with the same producer and checkpoint: stepping down meant a second's pause, a
        new producer and a checkpoint read, and a PostgreSQL that drops connections every
        second kept the publisher from publishing at all. If another worker took the lock
        in between, step down."""
        self._lock_conn = None
        for _ in range(REGAIN_TRIES):
            try:
                taken = await self._try_lock()
            except POSTGRES_ERRORS:
                await asyncio.sleep(REGAIN_PAUSE)
                continue
            if not taken:
                raise OSError("another worker took the leadership")
            log.info("publisher kept the leadership on a new connection")
            # Appends announced while nothing listened are not lost: list from the
            # position, and look back for the ones that landed behind it.
            self._caught_up = False
            try:
                await self._look_back()
            except POSTGRES_ERRORS as error:
                log.warning("lookback after regaining the leadership failed (%s); "
                            "the next scheduled one covers it", error)
            return
        raise OSError("leadership connection closed")

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
            **kafka_options(self.settings), acks="all",
            enable_idempotence=True, linger_ms=1, max_batch_size=1 << 20,
            max_request_size=8 << 20, partitioner=KeyPartitioner())
        await self._producer.start()
        await self._refresh_topics()
        loaded = await self.checkpoints.load()
        self.checkpoint = loaded or Checkpoint(position=self.start_after, floor=self.start_after)
        helpers = [asyncio.create_task(self._lookback_loop()),
                   asyncio.create_task(self._save_loop()),
                   asyncio.create_task(self._sweep_loop())]
        try:
            while True:
                if self._lock_conn is None or self._lock_conn.is_closed():
                    await self._keep_leadership()
                self._wake.clear()
                published = await self.publish_available()
                if not published:
                    try:
                        await asyncio.wait_for(self._wake.wait(),
                                               self.settings.event_publisher_poll_interval)
                    except TimeoutError:
                        self._caught_up = False  # nothing announced for a while: list
        finally:
            for helper in helpers:
                helper.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            if self._dirty:
                await self.checkpoints.save(self.checkpoint)

    async def publish_available(self) -> int:
        """One pass: batches after the checkpoint, plus late ones that were announced
        (by an append's notification) or found by the lookback scan."""
        late, self._late = self._late, set()
        keys = {k for k in late if k not in self.checkpoint.recent}
        ceiling = None
        if not self._caught_up:
            # Listing is the slow path (SeaweedFS: ~1 ms a key); when caught up,
            # the keys announced by appends are all there is to publish.
            listed = await self._list_after(self.checkpoint.position)
            self._caught_up = len(listed) < self.settings.event_publisher_batch_size
            keys.update(listed)
            if not self._caught_up:
                # Behind a backlog, announced keys (fresh appends) are published at once
                # but must not move the position past batches not listed yet: the
                # listing would skip them, and the lookback only reaches back so far.
                ceiling = listed[-1]
        return await self._publish_keys(sorted(keys), ceiling)

    async def _list_after(self, after: str | None) -> list[str]:
        return [key async for key in self.store.list_positions(
            after, limit=self.settings.event_publisher_batch_size)]

    async def _lookback_loop(self) -> None:
        """Every poll interval, re-list the lookback window for batches that landed behind
        the checkpoint (a slow PUT, a lost notification). Runs beside the publishing loop
        so a long listing never delays fresh events."""
        interval = max(self.settings.event_publisher_poll_interval,
                       self.settings.event_publisher_lookback_seconds / 3)
        await every("publisher lookback", interval, self._look_back)

    async def _look_back(self) -> None:
        horizon = position_at(time.time() - self.settings.event_publisher_lookback_seconds)
        horizon = max(horizon, self.checkpoint.floor or "")
        position = self.checkpoint.position
        if position is not None and position > horizon:  # else the fast path covers it
            # From the index, not an S3 listing: listing the window cost more CPU than
            # publishing it (see docs/event-store.md).
            missing = [key for key in await self.store.indexed_batches(horizon, position)
                       if key not in self.checkpoint.recent
                       and self._absent.get(key, 0) < ABSENT_TRIES]
            if missing:
                log.info("lookback found %d batches not yet published", len(missing))
                self._late.update(missing)
                self._wake.set()
            self.checkpoint.prune(horizon)
            self._absent = {k: n for k, n in self._absent.items() if k > horizon}

    async def _sweep_loop(self) -> None:
        """The leader also sweeps the store for what was stored but never processed."""
        async def send(topic: str, value: bytes, key: bytes) -> None:
            assert self._producer is not None
            await self._producer.send_and_wait(await self._routable(topic), value, key=key,
                                               headers=STORED_HEADER)
        sweeper = Sweeper(self.store, self.store.pool, send,
                          delay=self.settings.event_sweep_delay_seconds)

        async def sweep() -> None:
            try:
                while (await sweeper.sweep_once())[0] == sweeper.batch:
                    pass  # a full pass: more is waiting
                await sweeper.prune_registry(self.settings.registry_retention_seconds)
            except (OSError, asyncpg.PostgresError, KafkaError, StoreUnavailable) as error:
                log.warning("sweeper pass failed (%s); next pass in %.0fs", error,
                            self.settings.event_sweep_interval_seconds)

        await every("sweeper", self.settings.event_sweep_interval_seconds, sweep)

    async def _publish_keys(self, keys: list[str], ceiling: str | None = None) -> int:
        """Read the batches concurrently, send every envelope, wait for all of Kafka's
        acknowledgements, and only then move the checkpoint (never beyond `ceiling`)."""
        assert self._producer is not None
        keys = [k for k in keys if k not in self.checkpoint.recent]
        if not keys:
            return 0
        reads = asyncio.Semaphore(READ_CONCURRENCY)

        async def read(key: str) -> bytes | None:
            async with reads:
                return await self._read_raw(key)

        bodies = await asyncio.gather(*[read(key) for key in keys])
        missing = [k for k, body in zip(keys, bodies, strict=True) if body is None]
        if missing:
            # An announcement or the index can name a key S3 does not have (a PUT that
            # failed and was undone); a listing cannot.
            log.info("batches named but not found, ignored: %s", missing[:5])
            for key in missing:
                self._absent[key] = self._absent.get(key, 0) + 1
        found = [(k, body) for k, body in zip(keys, bodies, strict=True) if body is not None]
        keys = [k for k, _ in found]
        futures = []
        for _, body in found:
            for line in body.splitlines():
                if not line.strip():
                    continue
                try:  # only its topic and key are needed
                    envelope = orjson.loads(line)
                    topic, key = envelope["metadata"].get("kafka_topic"), envelope["aggregate_id"]
                    key = key.encode()
                except (ValueError, KeyError, TypeError, AttributeError) as error:
                    UNREADABLE.inc()
                    log.error("a line of a stored batch is not an envelope, not published: %s",
                              error)
                    continue
                futures.append(await self._producer.send(
                    await self._routable(topic), line, key=key, headers=STORED_HEADER))
        await asyncio.gather(*futures)
        crash_point("publisher_after_send")
        for key in keys:
            self.checkpoint.recent.add(key)
            if ceiling is not None and key > ceiling:
                continue  # published, remembered in `recent`, but not yet a position
            if self.checkpoint.position is None or key > self.checkpoint.position:
                self.checkpoint.position = key
        self._dirty = True
        self.stats.batches += len(keys)
        self.stats.events += len(futures)
        self.stats.last_publish_at = time.time()
        return len(futures)

    async def _routable(self, topic: str | None) -> str:
        """An envelope naming a topic that does not exist goes to the publisher's DLQ
        instead: waiting for the topic would stall every event behind it."""
        assert self._producer is not None
        if topic and topic in self._known_topics:
            return topic
        # One metadata fetch per interval, not one per envelope of an unknown topic.
        if topic and time.monotonic() - self._topics_fetched_at > 5.0:
            await self._refresh_topics()
            if topic in self._known_topics:
                return topic
        log.error("envelope names unknown topic %r; sent to %s", topic, PUBLISHER_DLQ)
        return PUBLISHER_DLQ

    async def _refresh_topics(self) -> None:
        assert self._producer is not None
        metadata = await self._producer.client.fetch_all_metadata()
        self._known_topics = set(metadata.topics())
        self._topics_fetched_at = time.monotonic()

    async def _read_raw(self, key: str) -> bytes | None:
        cached = self.store.raw_cached(key)
        if cached is not None:  # written by this very process a moment ago
            return cached
        try:
            return await self.store.fetch(key)
        except ClientError as error:
            if error_code(error) in ("NoSuchKey", "404", "NotFound"):
                return None
            raise

    async def _save_loop(self) -> None:
        """Save the checkpoint twice a second when it moved, off the publishing path.
        It only ever holds acknowledged batches; saving late means more duplicates
        after a crash, never a gap."""
        async def save() -> None:
            if self._dirty:
                self._dirty = False
                try:
                    await self.checkpoints.save(self.checkpoint)
                except BaseException:
                    self._dirty = True  # saved by a later pass
                    raise

        await every("publisher checkpoint", 0.5, save)


async def publisher_lag(pool: asyncpg.Pool, checkpoint: Checkpoint) -> dict[str, float | int]:
    """Events stored but not yet published, and the age of the oldest of them."""
    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT count(*) AS events, min(batch_key) AS oldest FROM event_index "
            "WHERE batch_key > $1 AND NOT batch_key = ANY($2)",
            checkpoint.position or "", list(checkpoint.recent))
    oldest = row["oldest"]
    # The key carries its write time in microseconds (see batch_key()).
    age = time.time() - int(oldest.rsplit("/", 1)[1].split("-")[0]) / 1e6 if oldest else 0.0
    return {"events": int(row["events"]), "oldest_age_seconds": round(max(age, 0.0), 3)}
