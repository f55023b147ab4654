"""Fixes to faust-streaming, applied by spice.bootstrap when a worker starts: a bug that loses messages
(below), warm standbys for in-memory tables, and three costs found by profiling (each
explained where it is patched).

faust-streaming issue #606 (open; PR #707 proposes a fix): `Consumer._new_offset`
treats one unacked offset at the head of a partition as a compaction gap and
commits past it. Our agents finish messages out of order, and Faust may also drop
fetched-but-undelivered messages at a rebalance; either way the committed offset can
jump over a message that was never processed, and it is then never delivered again.
The reliability suite and the projection benchmark both caught it (an event acked
by nobody, committed past).

The fix: when the lowest acked offset is above the committed one and no known gap
(compaction, transaction markers: Faust records those as it fetches) covers the
committed offset, the head message is still owed: commit nothing yet.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from faust.stores.memory import Store as MemoryStore
from faust.tables import recovery as recovery_module
from faust.tables.recovery import Recovery
from faust.transport.consumer import CONSUMER_FETCHING, Consumer
from faust.transport.drivers.aiokafka import Producer as KafkaProducer
from faust.transport.producer import ProducerBuffer

from spice.topics import COMMAND_TOPICS, EVENT_TOPICS

_original = Consumer._new_offset
# Faust's own functions these patches replace or wrap, as imported (before apply()):
# tests/unit/test_faust_fixes.py compares their source with the version the fixes were
# checked against (the pin in pyproject.toml), and fails when an upgrade changes them.
PATCHED = {"Consumer._new_offset": Consumer._new_offset,
           "Consumer._drain_messages": Consumer._drain_messages,
           "Recovery.need_recovery": Recovery.need_recovery,
           # relied on to await `asyncio.wait_for(changelog_queue.get(), ...)` per record
           "Recovery._slurp_changelogs": Recovery._slurp_changelogs.fun,  # a Service.task
           "MemoryStore.on_recovery_completed": MemoryStore.on_recovery_completed,
           # wrapped; relied on to keep a promoted partition's standby offset
           "Recovery.on_rebalance": Recovery.on_rebalance,
           "KafkaProducer._settings_extra": KafkaProducer._settings_extra}



def _idempotent(self: Any) -> dict[str, Any]:
    """Faust's producer (table changelogs, agent output) writes with acks from every
    in-sync replica and idempotence always, not only inside transactions: a retried
    send after a broker failover must not write a changelog record twice."""
    return {"acks": "all", "enable_idempotence": True}


def _new_offset(self: Any, tp: Any) -> int | None:
    acked = self._acked[tp]
    committed = self._committed_offset[tp]
    if acked and committed is not None and min(acked) > committed \
            and not self._gap[tp].overlaps(committed):
        return None
    result: int | None = _original(self, tp)
    return result


# Table writes go through Faust's ProducerBuffer, and while it holds more than
# max_messages the conductor stops delivering to *every* agent until that many have
# been sent. Faust's 100 is less than one batch of the status agent (up to 1,000
# changes, each a table write), so command processing stalled many times a second:
# a worker applied ~80 commands/s with a third of its lanes busy and the CPU idle.
PRODUCER_BUFFER_MESSAGES = 20_000


class _Resumed:
    """Await the rest of a coroutine that was already driven to its first suspension."""

    def __init__(self, coro: Any, first: Any) -> None:
        self.coro, self.first = coro, first

    def __await__(self) -> Any:
        value = self.first
        while True:
            try:
                sent = yield value
            except GeneratorExit:
                self.coro.close()
                raise
            except BaseException as error:  # noqa: BLE001 - cancellation and all: forwarded
                try:
                    value = self.coro.throw(error)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    value = self.coro.send(sent)
                except StopIteration as stop:
                    return stop.value


async def _drain_messages(self: Any, fetcher: Any) -> None:  # pragma: no cover - Faust's loop
    """Faust's fetch loop, with one change: each message is handed to the conductor
    directly, and only if that has to wait (a full stream buffer, suspended flow)
    does it go through `wait_first` as Faust does for every message. `wait_first`
    makes four tasks and at least one event-loop turn per message; on a busy loop a
    turn takes milliseconds, so Faust delivered ~100 messages a second to an agent
    while its lanes sat idle. Delivery that needs no wait now costs no turn."""
    callback = self.callback
    getmany = self.getmany
    consumer_should_stop = self._stopped.is_set
    fetcher_should_stop = fetcher._stopped.is_set
    get_read_offset = self._read_offset.__getitem__
    set_read_offset = self._read_offset.__setitem__
    set_flag, unset_flag = self.diag.set_flag, self.diag.unset_flag
    commit_every = self._commit_every
    acks_enabled_for = self.app.topics.acks_enabled_for
    yield_every, num_since_yield = 100, 0
    refetch = _Refetch()
    next_check = time.monotonic() + REFETCH_SECONDS
    try:
        while not (consumer_should_stop() or fetcher_should_stop()):
            set_flag(CONSUMER_FETCHING)
            ait = getmany(timeout=1.0)
            await self.sleep(0)
            if not self.should_stop:
                async for tp, message in ait:
                    num_since_yield += 1
                    if num_since_yield > yield_every:
                        await asyncio.sleep(0)
                        num_since_yield = 0
                    offset = message.offset
                    r_offset = get_read_offset(tp)
                    if r_offset is None or offset >= r_offset:
                        gap = offset - (r_offset or 0)
                        if gap > 1 and r_offset and acks_enabled_for(message.topic):
                            if tp.topic in UNCOMPACTED and refetch.hole(tp, r_offset, offset):
                                await self.seek(tp, r_offset)
                                continue  # delivered again from r_offset
                            await self._add_gap(tp, r_offset + 1, offset)
                        else:
                            refetch.arrived(tp)
                        if commit_every is not None and self._n_acked >= commit_every:
                            self._n_acked = 0
                            await self.commit()
                        coro = callback(message)
                        try:
                            first = coro.send(None)
                        except StopIteration:
                            pass  # delivered without waiting: the common case
                        else:
                            await self.wait_first(_Resumed(coro, first), self.suspend_flow.wait())
                        set_read_offset(tp, offset)
                unset_flag(CONSUMER_FETCHING)
                if time.monotonic() >= next_check and self.flow_active \
                        and not self.app.rebalancing:
                    next_check = time.monotonic() + REFETCH_SECONDS
                    positions = _fetch_positions(self, self._read_offset)
                    for tp, (read, position) in _passed_over(positions, self._read_offset).items():
                        if refetch.stalled(tp, read, position):
                            await self.seek(tp, read)
    except self.consumer_stopped_errors:
        if self.transport.app.should_stop:
            return
        raise
    except asyncio.CancelledError:
        if self.transport.app.should_stop:
            return
        raise
    finally:
        unset_flag(CONSUMER_FETCHING)


# Our command and event topics are neither compacted nor written in transactions by
# the service, so a hole in the offsets Faust delivers is not a compaction gap. Faust
# took it for one, and the commit then passed the messages in it. Right after a
# rebalance the holes are common: Faust sets its read offsets to the committed ones,
# but the fetch goes on from where it was, so a message the stream skipped while the
# flow was suspended was never delivered again (the sweeper re-sent its command 20 s
# later). Such a hole is fetched again instead, once: if the same hole comes back
# after REFETCH_SECONDS it is a real one (a transactional producer's markers) and is
# recorded as Faust does.
UNCOMPACTED = frozenset([*COMMAND_TOPICS, *EVENT_TOPICS])
REFETCH_SECONDS = 2.0


class _Refetch:
    def __init__(self) -> None:
        self._sought: dict[Any, int] = {}  # tp -> read offset it was last sought back to
        self._until: dict[Any, float] = {}  # tp -> while its stale fetches are skipped

    def hole(self, tp: Any, read: int, offset: int) -> bool:
        """True: skip this message (a seek back to `read` is due, or under way)."""
        until = self._until.get(tp)
        if until is not None:
            if time.monotonic() < until:
                return True  # fetched before the seek
            del self._until[tp]
        if self._sought.get(tp) == read:
            return False  # the same hole again: a real gap
        self._sought[tp] = read
        self._until[tp] = time.monotonic() + REFETCH_SECONDS
        logging.getLogger(__name__).warning(
            "%s[%d]: offsets %d-%d were not delivered; fetching again from %d",
            tp.topic, tp.partition, read + 1, offset - 1, read)
        return True

    def stalled(self, tp: Any, read: int, position: int) -> bool:
        """True: seek back to `read`, the fetch went on to `position` past messages the
        stream never got, and no seek for this partition is under way."""
        if self._until.get(tp, 0.0) > time.monotonic():
            return False
        return self.hole(tp, read, position)

    def arrived(self, tp: Any) -> None:
        self._until.pop(tp, None)


# A hole is seen when a later message of the partition arrives. After a burst that may
# be never: the commands dropped at a rebalance were the last ones produced, and only
# the sweeper's re-send 20 s later brought a later message (the crash-point scenarios
# on TerminusDB + Elasticsearch recovered in 35-65 s that way). So every
# REFETCH_SECONDS, between two fetches (when everything fetched has been delivered or
# dropped), the fetch position of each partition is compared with what was delivered.
def _fetch_positions(consumer: Any, partitions: Any) -> dict[Any, int]:
    """aiokafka's next fetch offset of each of `partitions` it holds a valid position
    for, read from its subscription state (no await, no request)."""
    try:
        subscription = consumer._thread._ensure_consumer()._subscription.subscription
    except Exception:  # noqa: BLE001 - not started or stopping: nothing to compare
        return {}
    assignment = subscription.assignment if subscription is not None else None
    if assignment is None:
        return {}
    positions = {}
    for tp in list(partitions):
        if tp.topic not in UNCOMPACTED:
            continue
        state = assignment.state_value(tp)
        if state is not None and state.has_valid_position and not state.paused:
            positions[tp] = state.position
    return positions


def _passed_over(positions: dict[Any, int], read: Any) -> dict[Any, tuple[int, int]]:
    """{tp: (last delivered offset, fetch position)} where the fetch is more than one
    past what was delivered: messages in between were fetched and never delivered."""
    passed = {}
    for tp, position in positions.items():
        delivered = read.get(tp)
        if delivered is not None and position > delivered + 1:
            passed[tp] = (delivered, position)
    return passed


def _need_recovery(self: Any) -> bool:
    """Faust's own answer (`any` over `active_remaining()`), without building a Counter
    of every changelog partition for each message it recovers: table recovery asks this
    once per changelog record, and that was a fifth of a worker's start-up CPU."""
    offsets = self.active_offsets
    for tp, highwater in self.active_highwaters.items():
        if highwater is not None:
            offset = offsets[tp]
            if offset is not None and highwater - offset > 0:
                return True
    return False


# Warm standbys. A worker keeps a standby copy of the other workers' table partitions
# (table_standby_replicas, 1), read from their changelogs as they are written. With
# the in-memory store Faust threw both halves of that copy away: the store dropped
# every key outside the *active* partitions once a recovery ended, and a standby
# partition promoted to active got no offset to start from (the memory store persists
# none), so its recovery read the whole changelog from its first record. After a day
# of load that is tens of thousands of records (15 s on this 2-core machine) during
# which the worker applies no command: every rolling restart paused the cluster.
# Kept, and carried over by `_own_writes_recovered`, the promoted partition's recovery
# reads only the records its standby had not reached yet. Readers of a table that iterate it see standby keys
# too, so they filter by owned partitions (spice/tables/status.py `owned`).
async def _keep_active_and_standby(self: Any, active_tps: Any, standby_tps: Any) -> None:
    """The memory store's end of recovery, keeping standby partitions' keys too."""
    kept = {partition for _, partition in set(active_tps) | set(standby_tps)}
    for key in [k for k, p in self._key_partition.items() if p not in kept]:
        self.data.pop(key, None)
        self._key_partition.pop(key, None)


# A partition this worker owned before a rebalance and owns or stands by for after it
# is in memory up to the last record it wrote there (spice/tables/changelog.py
# WRITTEN) or read at the last recovery, whichever is later: it was the partition's
# one writer in between. Faust's in-memory store persists no offsets, so Faust read
# every such record again: an owned partition from the last recovery's end, and a
# partition handed to a newcomer and kept here as standby from its first record
# (20,000 records, 13 s, after a second worker joined). Both now start after what is
# in memory. WRITTEN starts over at each rebalance, so a write from an earlier
# ownership never stands for a later one.
_on_rebalance = Recovery.on_rebalance


async def _own_writes_recovered(self: Any, assigned: Any, revoked: Any, newly_assigned: Any,
                                generation_id: int = 0) -> None:
    """Faust's rebalance, then the start offsets of what this worker already holds: a
    promoted standby partition from its standby's offset, a partition it owned before
    from what it read or wrote there."""
    owned_before = set(self.active_tps)
    read_before = dict(self.active_offsets)
    from spice.tables.changelog import WRITTEN  # read at call time: tests replace it

    await _on_rebalance(self, assigned, revoked, newly_assigned, generation_id)
    for tp in self.active_tps - owned_before:
        if self.active_offsets.get(tp) is None and self.standby_offsets.get(tp) is not None:
            self.active_offsets[tp] = self.standby_offsets[tp]
    written = dict(WRITTEN)
    WRITTEN.clear()
    for tp in owned_before:
        in_memory = max(read_before.get(tp) or -1, written.get((tp.topic, tp.partition), -1))
        offsets = self.active_offsets if tp in self.active_tps else \
            self.standby_offsets if tp in self.standby_tps else None
        if offsets is not None and in_memory >= 0 and \
                (offsets.get(tp) is None or in_memory > offsets[tp]):
            offsets[tp] = in_memory


class _RecoveryAsyncio:
    """Stands in for the `asyncio` module inside faust.tables.recovery, whose loop that
    reads the changelogs (`Recovery._slurp_changelogs`) takes every record through
    `asyncio.wait_for(queue.get(), timeout=5.0)`: a task, a timer and a loop turn per
    record. `wait_for` here first drives the get: a record already queued is returned
    at once, and only an empty queue waits, under the same timeout. Everything else is
    asyncio's own."""

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio, name)

    @staticmethod
    async def wait_for(awaitable: Any, timeout: float | None) -> Any:
        try:
            first = awaitable.send(None)
        except StopIteration as done:
            return done.value
        return await asyncio.wait_for(_Resumed(awaitable, first), timeout)


class _YieldNowAndThen:
    """Stands in for `asyncio.sleep` in Faust's stream iterator, which awaits
    `sleep(0)` before *every* event so that a busy stream cannot starve the loop. One
    loop turn per event caps a stream at one event per turn: with a few hundred command
    tasks in flight a turn takes 3-5 ms, and the command agent was handed ~250
    commands a second while thousands sat in its buffer. Yielding once every
    STREAM_YIELD_EVERY events keeps the fairness and loses the cap."""

    def __init__(self, every: int) -> None:
        self.every, self.count = every, 0

    def __call__(self, delay: float, result: Any = None) -> Any:
        self.count += 1
        if delay or result is not None or self.count >= self.every:
            self.count = 0
            return asyncio.sleep(delay, result)
        return _READY


class _Ready:
    """An awaitable that is already done: awaiting it does not suspend."""

    def __await__(self) -> Any:
        return iter(())


_READY = _Ready()
STREAM_YIELD_EVERY = 64


def apply() -> None:
    try:
        import faust._cython.streams as compiled_streams
    except ImportError:  # pragma: no cover - Faust then runs its pure-Python iterator
        pass
    else:
        compiled_streams.sleep = _YieldNowAndThen(STREAM_YIELD_EVERY)
    Recovery.need_recovery = _need_recovery  # type: ignore[method-assign]
    recovery_module.asyncio = _RecoveryAsyncio()  # type: ignore[assignment]
    Recovery.on_rebalance = _own_writes_recovered  # type: ignore[method-assign]
    MemoryStore.on_recovery_completed = _keep_active_and_standby  # type: ignore[method-assign]
    ProducerBuffer.max_messages = PRODUCER_BUFFER_MESSAGES
    KafkaProducer._settings_extra = _idempotent  # type: ignore[method-assign]
    Consumer._drain_messages = _drain_messages  # type: ignore[method-assign]
    if Consumer._new_offset is not _new_offset:
        Consumer._new_offset = _new_offset  # type: ignore[method-assign]
