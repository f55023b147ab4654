"""The event store on S3, with group commit.

One PUT per event caps the system at the store's PUT rate, so concurrent appends
are gathered into one batch object (JSON lines) and written with a single
create-only PUT. PostgreSQL holds the sequence allocator and an index of event ids
(the dedup check and the per-aggregate read path); the index is derived and can be
rebuilt from the batches. See docs/event-store.md for the protocol and why.
"""
from __future__ import annotations

import asyncio
import itertools
import logging
import os
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
from asyncpg.exceptions._base import DataError as ClientDataError  # bad argument, client side
from botocore.exceptions import BotoCoreError, ClientError

from spice.domain.envelope import Envelope
from spice.observability import UNREADABLE
from spice.stores.audit import record_arguments
from spice.stores.errors import (
    EventIdConflict,
    InvalidEnvelope,
    SequenceConflict,
    StoreUnavailable,
)
from spice.stores.event_store import Batch, check_duplicate, content_hash
from spice.stores.s3 import error_code
from spice.stores.s3_signed import SignedS3, Unreached

log = logging.getLogger(__name__)
BATCH_PREFIX = "events/"
NOTIFY_CHANNEL = "spice_event_store"
PENDING_GRACE_SECONDS = 60.0
# A PUT this process gave up on may still land while S3 works through it: its own
# batches are settled this long after the attempt (the client's connect and read
# timeouts, and a margin), or at once when the request never reached S3.
IN_FLIGHT_SECONDS = 20.0
# Another writer's batch still pending after this long is settled by whoever needs it
# (a redelivered command waiting on its first copy): its writer died mid-append, or its
# PUT is very slow. Safe at any age because settling fences the key first (_settle).
SETTLE_OTHERS_AFTER_SECONDS = 5.0
FENCE = b""  # the empty object a settler puts at a pending batch's key (_settle)
FENCE_SIZE = len(FENCE)
DUPLICATE_POLL_SECONDS = 0.1
# Marking a stored batch again after PostgreSQL refused: the pauses before each try.
REMARK_PAUSES = (0.2, 0.5, 1.0, 2.0, 4.0)
MARK_TIMEOUT_SECONDS = 2.0  # marking (and the audit record) may not hold an answer longer
SEQ_MAX = 2**63 - 1  # aggregate_sequences.last_seq is a bigint
# One round trip: mark the batch's rows stored, record its envelopes in the audit index
# (spice_record_batch, spice/stores/audit.py) and wake publishers in other processes.
# The payload names the bucket: several stores (tests, benchmarks) may share one database.
MARK_STORED = ("WITH tagged AS (INSERT INTO batch_buckets VALUES ($1, $4) ON CONFLICT DO NOTHING) "
               "SELECT spice_record_batch($1, $5, $6, $7, $8), pg_notify($2, $3)")
# Batches of this store: another bucket's (tagged when stored) are left out, one key
# probe per distinct batch of the range (OFFSET 0 keeps it a probe). As an anti join
# the planner merged the range with every batch_buckets row from its first (a cost
# that grew with history) or, bounded by the range and misjudging it as one row (fresh
# keys lie past the statistics' histogram), scanned the whole range of batch_buckets
# once per envelope: 1.2 s for a sweeper pass of 6,500 envelopes at any history size.
OURS = ("NOT EXISTS (SELECT 1 FROM batch_buckets b WHERE b.batch_key = e.batch_key "
        "AND b.bucket <> $4 OFFSET 0)")
STORED = "NOT EXISTS (SELECT 1 FROM pending_batches p WHERE p.batch_key = e.batch_key)"


def batch_key(writer_id: str, counter: int, at: float | None = None) -> str:
    """Lexicographic order of keys is time order: the publisher tails by StartAfter."""
    at = time.time() if at is None else at
    stamp = datetime.fromtimestamp(at, UTC)
    return (f"{BATCH_PREFIX}{stamp:%Y/%m/%d/%H}/"
            f"{int(at * 1_000_000):016d}-{writer_id}-{counter:08d}.jsonl")


def position_at(at: float) -> str:
    """The smallest key a batch written at time `at` can have."""
    stamp = datetime.fromtimestamp(at, UTC)
    return f"{BATCH_PREFIX}{stamp:%Y/%m/%d/%H}/{int(at * 1_000_000):016d}"


def time_of(position: str) -> float:
    """The time a position (a batch key, or `position_at`'s) stands for."""
    return int(position.rsplit("/", 1)[-1][:16]) / 1_000_000


def encode_batch(envelopes: list[Envelope]) -> bytes:
    return b"\n".join(e.to_json() for e in envelopes) + b"\n"


def decode_batch(body: bytes, key: str = "") -> list[Envelope]:
    """Each line alone: one line that does not decode (written by an older or foreign
    writer) must not hide the other envelopes of its batch."""
    envelopes = []
    for number, line in enumerate(body.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            envelopes.append(Envelope.from_json(line))
        except ValueError as error:  # pydantic's ValidationError is a ValueError
            UNREADABLE.inc()
            log.error("batch %s line %d is not an envelope, skipped: %s", key, number,
                      str(error)[:500])
    return envelopes


@dataclass
class _Request:
    envelope: Envelope
    allocate: bool
    expected_seq: int | None
    future: asyncio.Future[Envelope]
    hash: str = field(init=False)

    def __post_init__(self) -> None:
        self.hash = content_hash(self.envelope)
        # What cannot be encoded fails here, alone, before it joins a batch whose
        # encoding (after sequences are reserved) it would otherwise break for all.
        try:
            self.envelope.to_json()
        except (ValueError, TypeError) as error:
            raise InvalidEnvelope(self.envelope.event_id, error) from None
        if self.expected_seq is not None and not 0 <= self.expected_seq <= SEQ_MAX:
            raise InvalidEnvelope(self.envelope.event_id, "expected_seq out of range")


class S3EventStore:
    def __init__(self, s3: Any, signed: SignedS3, pool: asyncpg.Pool, bucket: str, *,
                 max_batch: int = 500, linger_ms: float = 2.0, max_in_flight: int = 2,
                 on_stored: Callable[[str], None] | None = None) -> None:
        """`s3`: aiobotocore, for listing and HEAD; `signed`: the hot PUT and GET, at a
        quarter of botocore's CPU per request (see s3_signed.py)."""
        self.s3 = s3
        self.signed = signed
        self.pool = pool
        self.bucket = bucket
        self.max_batch = max_batch
        self.linger = linger_ms / 1000
        self.max_in_flight = max_in_flight
        self.on_stored = on_stored
        self.writer_id = f"{os.getpid():x}{uuid.uuid4().hex[:6]}"
        self._counter = itertools.count(1)
        self._queue: list[_Request] = []
        self._wakeup = asyncio.Event()
        self._committer: asyncio.Task[None] | None = None
        self._cache: OrderedDict[str, list[Envelope]] = OrderedDict()
        self._raw: dict[str, bytes] = {}
        # Batches of this process left pending because S3 did not answer: key ->
        # (sequence rollbacks, when settling it is safe). See settle_own().
        self._unsettled: dict[str, tuple[dict[str, tuple[int, int]], float]] = {}
        self._settling = asyncio.Lock()
        self._abandoned: dict[str, asyncio.Lock] = {}  # other writers' batches being settled
        self._settler: asyncio.Task[int] | None = None
        self._remarks: set[asyncio.Task[None]] = set()  # batches being marked again

    # ---- append -------------------------------------------------------------

    async def append(self, envelope: Envelope, *, allocate: bool = False,
                     expected_seq: int | None = None) -> Envelope:
        future: asyncio.Future[Envelope] = asyncio.get_running_loop().create_future()
        request = _Request(envelope, allocate, expected_seq, future)
        self._queue.append(request)
        if self._committer is None or self._committer.done():
            self._committer = asyncio.create_task(self._commit_loop(), name="event-store-commit")
        self._wakeup.set()
        return await future

    async def close(self) -> None:
        for task in (self._committer, self._settler, *self._remarks):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    async def ping(self) -> None:
        """Both halves answer: the bucket (S3) and the index (PostgreSQL)."""
        try:
            await self.s3.head_bucket(Bucket=self.bucket)
        except (ClientError, BotoCoreError, OSError) as error:
            raise _as_store_error(error) from error
        async with self.pool.acquire() as conn:
            await conn.fetchval("SELECT 1")

    async def _commit_loop(self) -> None:
        in_flight: set[asyncio.Task[None]] = set()
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            if in_flight and len(self._queue) < self.max_batch and self.linger:
                # While a commit is under way, a short linger lets concurrent appends
                # share the next PUT. With none under way there is nothing to wait
                # for: the append goes at once (the linger was 2 of an idle append's
                # ~13 ms), and the appends that arrive meanwhile make the next batch.
                await asyncio.sleep(self.linger)
            while self._queue:
                # Several commits in flight hide the PUT's latency; order within an
                # aggregate still follows the sequence numbers (see docs/event-store.md).
                while len(in_flight) >= self.max_in_flight:
                    _, in_flight = await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
                requests, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch:]
                task = asyncio.create_task(self._commit_guarded(requests))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)

    async def _commit_guarded(self, requests: list[_Request]) -> None:
        try:
            await self._commit(requests)
        except _RefusedInput as error:
            if len(requests) > 1:
                # One request's values broke the shared statement, which reserved
                # nothing: each goes alone, so only the one at fault hears of it.
                log.warning("a batch of %d appends was refused (%s); each goes alone",
                            len(requests), error)
                for request in requests:
                    await self._commit_guarded([request])
                return
            self._fail(requests, InvalidEnvelope(requests[0].envelope.event_id, error))
        except Exception as error:  # noqa: BLE001 - every caller must hear back
            self._fail(requests, _as_store_error(error))

    @staticmethod
    def _fail(requests: list[_Request], failure: Exception) -> None:
        for request in requests:
            if not request.future.done():
                request.future.set_exception(failure)

    async def _commit(self, requests: list[_Request]) -> None:
        key = batch_key(self.writer_id, next(self._counter))
        try:
            to_store, duplicates, rollbacks = await self._reserve(requests, key)
        except (asyncpg.DataError, ClientDataError) as error:
            # Its message quotes the statement's arguments: every request's values.
            log.warning("reservation refused its input: %s", error)
            raise _RefusedInput(type(error).__name__) from error
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as error:
            log.warning("reservation failed: %s", error)
            raise StoreUnavailable("postgres", type(error).__name__) from error
        if to_store:
            body = encode_batch([r.envelope for r in to_store])
            await self._put(key, body, rollbacks)
            stored = [r.envelope for r in to_store]
            self._remember(key, stored, body)
            # Recorded before the answer, so that a caller who heard "stored" (and a
            # client whose sync write completed) finds the event in the history and
            # the audit log; if PostgreSQL fails here the batch is still stored, and
            # it is marked again shortly (and resolve_pending() is the last resort).
            if not await self._mark_stored(key, body, stored):
                remark = asyncio.create_task(self._mark_again(key, body, stored))
                self._remarks.add(remark)
                remark.add_done_callback(self._remarks.discard)
            for request in to_store:
                request.future.set_result(request.envelope)
            if self._unsettled and (self._settler is None or self._settler.done()):
                # S3 answers again: settle what it missed, without waiting for a retry.
                self._settler = asyncio.create_task(self.settle_own(), name="event-store-settle")
            if self.on_stored is not None:
                self.on_stored(key)
        for request in duplicates:
            asyncio.create_task(self._settle_duplicate(request))

    async def _mark_stored(self, key: str, body: bytes,
                           envelopes: list[Envelope] | None = None) -> bool:
        """Never raises and never waits long: the batch is in S3, so its appends are
        stored and must hear so whatever PostgreSQL does now; an error here would reach
        the API as a 503 for a command that is then applied all the same."""
        try:
            async with asyncio.timeout(MARK_TIMEOUT_SECONDS):
                async with self.pool.acquire() as conn:
                    await conn.execute(MARK_STORED, key, NOTIFY_CHANNEL, f"{self.bucket}/{key}",
                                       self.bucket, *record_arguments(body, envelopes))
            return True
        except Exception:  # noqa: BLE001 - any failure: resolve_pending() settles it later
            # The batch is in S3, so its events exist; resolve_pending() marks the rows
            # later, and the publisher finds the batch by listing, not by the index.
            log.warning("batch %s stored but its index rows stay pending", key)
            return False

    async def _mark_again(self, key: str, body: bytes, envelopes: list[Envelope]) -> None:
        """A batch whose index rows PostgreSQL refused a moment ago (a dropped connection)
        is marked again within seconds: until then no index row and no notification
        names it, so the publisher of another process would find it only through
        resolve_pending() (every 30 s) and the sweeper, and its commands waited that long."""
        for pause in REMARK_PAUSES:
            await asyncio.sleep(pause)
            if await self._mark_stored(key, body, envelopes):
                return

    async def _reserve(self, requests: list[_Request], key: str
                       ) -> tuple[list[_Request], list[_Request], dict[str, tuple[int, int]]]:
        """Phase 1, one round trip (the spice_reserve function): dedup against the index,
        allocate sequences, insert pending index rows.
        Returns (to store, duplicates, {aggregate: (last before, last after)})."""
        # Repeats of one event id inside the batch: the first goes in, the others wait for it.
        first: dict[str, _Request] = {}
        duplicates: list[_Request] = []
        for request in requests:
            if request.envelope.event_id in first:
                duplicates.append(request)
            else:
                first[request.envelope.event_id] = request
        requests = list(first.values())
        envelopes = [r.envelope for r in requests]
        allocated = [e.aggregate_id for e, r in zip(envelopes, requests, strict=True) if r.allocate]
        function = "spice_reserve_distinct" if len(set(allocated)) == len(allocated) else "spice_reserve"
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                f"SELECT idx, outcome, seq FROM {function}($1, $2, $3, $4, $5, $6, $7, $8)",
                [e.event_id for e in envelopes], [e.aggregate_type for e in envelopes],
                [e.aggregate_id for e in envelopes], [e.sequence_number for e in envelopes],
                [r.hash for r in requests], [r.allocate for r in requests],
                [r.expected_seq for r in requests], key)
        to_store: list[_Request] = []
        rollbacks: dict[str, tuple[int, int]] = {}
        for row in rows:
            request = requests[row["idx"]]
            outcome, seq = row["outcome"], row["seq"]
            if outcome == "reserved":
                if request.allocate:
                    request.envelope = request.envelope.model_copy(update={"sequence_number": seq})
                    before, _ = rollbacks.get(request.envelope.aggregate_id, (seq - 1, seq))
                    rollbacks[request.envelope.aggregate_id] = (before, seq)
                to_store.append(request)
            elif outcome == "duplicate":
                duplicates.append(request)
            elif outcome == "conflict":
                request.future.set_exception(EventIdConflict(request.envelope.event_id))
            else:
                request.future.set_exception(SequenceConflict(
                    request.envelope.aggregate_id, request.expected_seq or 0, seq))
        return to_store, duplicates, rollbacks

    async def _put(self, key: str, body: bytes, rollbacks: dict[str, tuple[int, int]]) -> None:
        try:
            await self.signed.put_if_absent(self.bucket, key, body, "application/x-ndjson")
            return
        except (TimeoutError, ClientError, BotoCoreError, OSError) as error:
            failure = error
        # The PUT may have landed even though we saw an error: ask before undoing.
        try:
            head = await self.s3.head_object(Bucket=self.bucket, Key=key)
            if head.get("ContentLength", 1) == FENCE_SIZE:
                # Another process settled this batch (undone) and fenced the key
                # before our PUT arrived: not stored; the caller retries.
                raise _as_store_error(failure) from failure
            return
        except ClientError as error:
            if error_code(error) not in ("404", "NoSuchKey", "NotFound"):
                raise _as_store_error(failure) from failure
        except (TimeoutError, BotoCoreError, OSError):
            # S3 is unreachable: the index rows stay pending (their ids refuse a second
            # copy) until settle_own() finds S3 answering again; resolve_pending() is
            # the net for a writer that dies first.
            safe_at = time.monotonic() + (0.0 if isinstance(failure, Unreached) else IN_FLIGHT_SECONDS)
            self._unsettled[key] = (rollbacks, safe_at)
            raise _as_store_error(failure) from failure
        await self._undo(key, rollbacks)
        raise _as_store_error(failure) from failure

    async def _undo(self, key: str, rollbacks: dict[str, tuple[int, int]] | None) -> None:
        """`rollbacks` None: another writer's batch, whose numbers are read from its
        index rows (each aggregate's range in the batch)."""
        async with self.pool.acquire() as conn, conn.transaction():
            if rollbacks is None:
                rollbacks = {r["aggregate_id"]: (r["before"], r["after"]) for r in await conn.fetch(
                    "SELECT aggregate_id, min(sequence_number) - 1 AS before, "
                    "max(sequence_number) AS after FROM event_index WHERE batch_key = $1 "
                    "AND sequence_number IS NOT NULL GROUP BY aggregate_id", key)}
            await conn.execute("DELETE FROM event_index WHERE batch_key = $1", key)
            await conn.execute("DELETE FROM pending_batches WHERE batch_key = $1", key)
            # Give the numbers back unless someone allocated after us; a hole left
            # behind is bridged by the workers' gap timeout.
            for aggregate, (before, after) in rollbacks.items():
                await conn.execute(
                    "UPDATE aggregate_sequences SET last_seq = $3 "
                    "WHERE aggregate_id = $1 AND last_seq = $2", aggregate, after, before)

    async def _settle_duplicate(self, request: _Request) -> None:
        """Same event_id again: wait until the first copy is stored, then answer with it.
        A first copy of this process's own that S3 never took is settled here as soon
        as S3 answers (settle_own); once undone, the id is free and this request goes
        into the next batch as a first copy itself."""
        deadline = time.monotonic() + PENDING_GRACE_SECONDS
        event_id = request.envelope.event_id
        try:
            while True:
                async with self.pool.acquire() as conn:
                    row = await conn.fetchrow(
                        f"SELECT batch_key, {STORED} AS stored, EXISTS (SELECT 1 FROM pending_batches p "
                        "WHERE p.batch_key = e.batch_key AND p.created_at < now() - "
                        "make_interval(secs => $2)) AS abandoned FROM event_index e "
                        "WHERE event_id = $1", event_id, SETTLE_OTHERS_AFTER_SECONDS)
                if row is None:
                    self._queue.append(request)
                    self._wakeup.set()
                    return
                if self._visible(row["batch_key"], row["stored"]):
                    stored = await self._from_batch(row["batch_key"], event_id)
                    if stored is not None:
                        request.future.set_result(
                            check_duplicate(stored, request.envelope, request.allocate))
                        return
                if time.monotonic() > deadline:
                    raise StoreUnavailable("event store", "an earlier append of this id is unresolved")
                if row["batch_key"] in self._unsettled:
                    await self.settle_own()
                elif row["abandoned"] and row["batch_key"] not in self._cache:
                    # Another writer's first copy, pending for seconds: its writer most
                    # likely died mid-append. Settling it (fenced) frees or confirms the id
                    # now instead of after the housekeeping timer's grace.
                    await self._settle_abandoned(row["batch_key"])
                await asyncio.sleep(DUPLICATE_POLL_SECONDS)
        except Exception as error:  # noqa: BLE001
            if not request.future.done():
                request.future.set_exception(error)

    async def settle_own(self) -> int:
        """Settle this process's batches that S3 did not answer for, once that is safe
        (IN_FLIGHT_SECONDS): marked stored if the batch is in S3, undone (index rows
        removed, sequences given back) if it is not. Stops at the first batch S3 still
        does not answer for. Returns how many were settled. Waiting out
        PENDING_GRACE_SECONDS instead held every retried command of an outage for a
        minute after S3 was back."""
        if self._settling.locked():
            return 0  # another caller is at it
        settled = 0
        async with self._settling:
            now = time.monotonic()
            for key, (rollbacks, safe_at) in list(self._unsettled.items()):
                if safe_at > now:
                    continue
                try:
                    if not await self._settle(key, rollbacks):
                        return settled
                except (ClientError, BotoCoreError, OSError, StoreUnavailable,
                        asyncpg.PostgresError, asyncpg.InterfaceError):
                    return settled  # S3 (or PostgreSQL) still away
                del self._unsettled[key]
                settled += 1
        if settled:
            log.info("settled %d batches S3 had not answered for", settled)
        return settled

    async def _settle_abandoned(self, key: str) -> None:
        """Settle another writer's pending batch once, whichever waiter gets there first."""
        lock = self._abandoned.setdefault(key, asyncio.Lock())
        async with lock:
            try:
                async with self.pool.acquire() as conn:
                    pending = await conn.fetchval(
                        "SELECT 1 FROM pending_batches WHERE batch_key = $1", key)
                if pending and await self._settle(key, None):
                    log.info("settled batch %s, left pending by another writer", key)
            except (ClientError, BotoCoreError, OSError, StoreUnavailable,
                    asyncpg.PostgresError, asyncpg.InterfaceError) as error:
                log.warning("could not settle batch %s yet: %s", key, error)
            finally:
                self._abandoned.pop(key, None)

    async def resolve_pending(self, older_than: float = PENDING_GRACE_SECONDS) -> int:
        """Settle index rows left pending by a crash or an outage: stored if the batch
        exists in S3, removed if it does not. Returns how many batches were settled."""
        async with self.pool.acquire() as conn:
            keys = [r["batch_key"] for r in await conn.fetch(
                "SELECT batch_key FROM pending_batches "
                "WHERE created_at < now() - make_interval(secs => $1)", older_than)]
        for key in keys:
            await self._settle(key, None)
        return len(keys)

    async def _settle(self, key: str, rollbacks: dict[str, tuple[int, int]] | None) -> bool:
        """One pending batch: marked stored if it is in S3, undone (rows removed, numbers
        given back per `rollbacks`) if not. False when marking failed (it stays pending).
        S3's and PostgreSQL's errors pass through.

        Before undoing, the key is fenced: an empty object put there if absent. A PUT of
        the batch still on its way (a writer alive but slow, or dead with its request
        already sent) then fails instead of landing after the undo, where the publisher,
        which lists the bucket, would publish events the index no longer has; the writer
        reads the fence as "not stored" (_put). If the fence finds the key taken, the
        batch did land: it is marked stored. So any process may settle any pending
        batch without waiting out how long a PUT can take."""
        try:
            head = await self.s3.head_object(Bucket=self.bucket, Key=key)
        except ClientError as error:
            if error_code(error) not in ("404", "NoSuchKey", "NotFound"):
                raise
            try:
                await self.signed.put_if_absent(self.bucket, key, FENCE)
            except ClientError as taken:
                if error_code(taken) != "PreconditionFailed":
                    raise
                return await self._mark_stored(key, await self.read_raw(key))  # it landed
            await self._undo(key, rollbacks)
            return True
        if head.get("ContentLength", 1) == FENCE_SIZE:  # fenced before: finish the undo
            await self._undo(key, rollbacks)
            return True
        return await self._mark_stored(key, await self.read_raw(key))

    # ---- read ---------------------------------------------------------------

    def _remember(self, key: str, envelopes: list[Envelope], raw: bytes | None = None) -> None:
        self._cache[key] = envelopes
        if raw is not None:
            self._raw[key] = raw
        while len(self._cache) > 256:
            dropped, _ = self._cache.popitem(last=False)
            self._raw.pop(dropped, None)

    def raw_cached(self, key: str) -> bytes | None:
        return self._raw.get(key)

    async def read_raw(self, key: str) -> bytes:
        """A stored batch as bytes (JSON lines), uncached: for bulk readers (rebuild)."""
        try:
            return await self.fetch(key)
        except (ClientError, BotoCoreError, OSError) as error:
            raise _as_store_error(error) from error

    async def fetch(self, key: str) -> bytes:
        """A batch's bytes; S3's own errors (ClientError NoSuchKey) pass through."""
        return await self.signed.get(self.bucket, key)

    async def read_batch(self, key: str) -> list[Envelope]:
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        envelopes = decode_batch(await self.read_raw(key), key)
        self._remember(key, envelopes)
        return envelopes

    def _visible(self, key: str, stored: bool) -> bool:
        # Rows are marked stored just after the caller hears back; batches this
        # process wrote (cached only after their PUT succeeded) are visible at once.
        return stored or key in self._cache

    async def get(self, event_id: str) -> Envelope | None:
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow(
                f"SELECT batch_key, {STORED} AS stored FROM event_index e WHERE event_id = $1", event_id)
        if row is None or not self._visible(row["batch_key"], row["stored"]):
            return None
        return await self._from_batch(row["batch_key"], event_id)

    async def _from_batch(self, key: str, event_id: str) -> Envelope | None:
        return next((e for e in await self.read_batch(key) if e.event_id == event_id), None)

    async def read_aggregate(self, aggregate_id: str, after_seq: int = 0) -> AsyncIterator[Envelope]:
        cursor: tuple[int, str | None] = (after_seq, None)
        while True:
            async with self.pool.acquire() as conn:
                rows = await conn.fetch(
                    f"SELECT event_id, batch_key, sequence_number, {STORED} AS stored "
                    "FROM event_index e WHERE aggregate_id = $1 "
                    "AND (sequence_number > $2 OR (sequence_number = $2 AND event_id > $3)) "
                    "ORDER BY sequence_number, event_id LIMIT 500", aggregate_id, *cursor)
            if not rows:
                return
            for row in rows:
                if not self._visible(row["batch_key"], row["stored"]):
                    continue
                batch = await self.read_batch(row["batch_key"])
                yield next(e for e in batch if e.event_id == row["event_id"])
            cursor = (rows[-1]["sequence_number"], rows[-1]["event_id"])

    async def list_positions(self, after: str | None = None,
                             limit: int | None = None) -> AsyncIterator[str]:
        token: str | None = None
        listed = 0
        while True:
            try:
                keys, token = await self.signed.list_keys(
                    self.bucket, BATCH_PREFIX, start_after=after if token is None else None,
                    token=token)
            except (ClientError, BotoCoreError, OSError) as error:
                raise _as_store_error(error) from error
            for key in keys:
                yield key
                listed += 1
                if limit is not None and listed >= limit:
                    return
            if token is None:
                return

    async def indexed_batches(self, after: str, up_to: str, limit: int | None = None) -> list[str]:
        """Batch keys in (after, up_to] from the PostgreSQL index, in order. Every append
        writes its index rows before its PUT, so this lists every batch the store wrote
        in a fraction of the time an S3 listing takes (SeaweedFS: ~1 ms a key, plus
        botocore's XML parsing). May name a batch whose PUT is still in flight or failed
        (then not found in S3); another bucket's batches are left out once stored."""
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT batch_key FROM (SELECT DISTINCT batch_key FROM event_index "
                "WHERE batch_key > $1 AND batch_key <= $2) e "
                f"WHERE {OURS} ORDER BY batch_key LIMIT $3",
                after, up_to, limit, self.bucket)
        return [r["batch_key"] for r in rows]

    async def replay(self, after: str | None = None) -> AsyncIterator[Batch]:
        async for key in self.list_positions(after):
            yield Batch(key, await self.read_batch(key))

    def position_before(self, at: float) -> str:
        return position_at(at)

    async def estimated_count(self) -> int:
        """About how many envelopes are stored: the planner's row estimate of the event
        index, not a count(*) that scans it (65 ms at 700,000 envelopes, growing)."""
        async with self.pool.acquire() as conn:
            estimate = await conn.fetchval(
                "SELECT reltuples::bigint FROM pg_class WHERE oid = 'event_index'::regclass")
        return max(int(estimate or 0), 0)

    async def last_sequence(self, aggregate_id: str) -> int:
        async with self.pool.acquire() as conn:
            value = await conn.fetchval(
                "SELECT last_seq FROM aggregate_sequences WHERE aggregate_id = $1", aggregate_id)
        return int(value or 0)


class _RefusedInput(Exception):
    """A statement refused a batch's values (not the server's availability)."""


def _as_store_error(error: BaseException) -> Exception:
    if isinstance(error, (SequenceConflict, EventIdConflict, StoreUnavailable)):
        return error
    if isinstance(error, (asyncpg.PostgresError, asyncpg.InterfaceError)):
        # Not str(error): a statement's error may quote other requests' values.
        return StoreUnavailable("postgres", type(error).__name__)
    return StoreUnavailable("s3", str(error) or type(error).__name__)
