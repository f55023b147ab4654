"""The status agent and its Faust tables: per-command status (changelog-backed, so
it survives a Redis flush) and counts by state and command type."""
from __future__ import annotations

import logging
import time
from collections import Counter, deque
from typing import Any, cast

from spice.agents.forever import survived
from spice.app import app
from spice.raw_topics import raw_topic
from spice.stores.status_topic import decode
from spice.tables.changelog import ChangelogWrites
from spice.topics import CHANGELOG_CONFIGS, STATUS_TOPIC

log = logging.getLogger(__name__)

TERMINAL = {"COMPLETED", "FAILED", "CANCELLED"}
# The latest commands this worker's status agent saw (its partitions), newest last:
# the dashboard's "recent commands" without scanning the table.
RECENT_KEPT = 50
RECENT: deque[bytes] = deque(maxlen=RECENT_KEPT)
WINDOW_SECONDS = 10
WINDOWS_KEPT = 60  # ten minutes of tumbling windows

status_topic = raw_topic(STATUS_TOPIC)
# How long the status agent gathers changes before it writes the table: a command's
# steps (PENDING, PROCESSING, COMPLETED, PROJECTED) that land within one batch make one
# changelog record, not one each, and every record is read again by each recovery of
# the table. The table is read only while Redis is down (pollers look every 0.5 s) and
# by the dashboard: a reader sees a step at most half a second later.
BATCH_SECONDS = 0.5
# Raw keys: the status topic is keyed by the command id's bytes, and table routing
# must hash the very same bytes, or a request lands on a worker that lacks the key.
# key_type=bytes is what makes Faust pick the raw key serializer (str gets JSON).
command_status = app.Table("command-status", default=None, key_type=bytes,
                           partitions=app.settings.topic_partitions,
                           extra_topic_configs=CHANGELOG_CONFIGS)
# Keyed by "partition|status|command_type": a table's changelog is partitioned
# like its source topic, so each partition keeps its own counters.
command_counts = app.Table("command-counts", default=int, key_type=bytes,
                           partitions=app.settings.topic_partitions,
                           extra_topic_configs=CHANGELOG_CONFIGS)
# Tumbling windows of WINDOW_SECONDS, keyed "partition|window_start|command_type|outcome".
command_rates = app.Table("command-rates", default=int, key_type=bytes,
                          partitions=app.settings.topic_partitions,
                          extra_topic_configs=CHANGELOG_CONFIGS)


def merge(doc: dict[str, Any] | None, change: dict[str, Any]) -> dict[str, Any]:
    doc = dict(doc) if doc else {"command_id": change["command_id"], "created_at": change["timestamp"],
                                 "history": []}
    status = change["status"]
    if status == "PENDING" and doc.get("status") not in (None, "PENDING"):
        # Recorded by the API without waiting: a fast worker may have been first, even
        # to the end. PENDING goes first in the history, once, and brings the type and
        # database the worker's steps do not carry (as the Redis script does).
        for field in ("command_type", "db", "aggregate_id"):
            if doc.get(field) is None and change.get(field) is not None:
                doc[field] = change[field]
        if not any(step.get("status") == "PENDING" for step in doc.get("history", [])):
            doc["created_at"] = change["timestamp"]
            doc["history"] = [{"status": status, "timestamp": change["timestamp"],
                               "message": change.get("message", "")}, *doc.get("history", [])][-50:]
        return doc
    if doc.get("status") in TERMINAL and status not in TERMINAL and status != "PROJECTED":
        return doc
    if doc.get("status") in TERMINAL and status == doc.get("status"):
        return doc  # the same outcome reported again: recorded once
    if status != "PROJECTED":
        doc["status"] = status
    doc["updated_at"] = change["timestamp"]
    for field in ("command_type", "db", "aggregate_id", "progress", "error", "projected", "result"):
        if field in change:
            doc[field] = change[field]
    # The table keeps the latest steps; Redis (and the event store) keep the rest.
    doc["history"] = [*doc.get("history", []), {"status": status, "timestamp": change["timestamp"],
                                                 "message": change.get("message", "")}][-50:]
    return doc


def changes_of(event: Any) -> list[dict[str, Any]]:
    """A message holds one change or several (spice/stores/status_topic.py); one that is
    not a status change is logged and skipped, never allowed to stop the agent."""
    try:
        changes = decode(event.value)
        for change in changes:
            if not isinstance(change.get("command_id"), str) or "status" not in change \
                    or "timestamp" not in change:
                raise ValueError("a change needs command_id, status and timestamp")
        return changes
    except (ValueError, TypeError, AttributeError) as error:
        log.warning("command_status %s@%s skipped: %s", event.message.partition,
                    event.message.offset, error)
        return []


@app.agent(status_topic, name="spice.agents.command_status")
async def status_agent(stream: Any) -> None:
    # Changes are taken in batches and merged per command before the table is written:
    # every table write is a changelog record, one per command per batch rather than
    # one per change. The batch's writes go to the changelogs as one record batch per
    # partition (spice/tables/changelog.py), acknowledged before the batch's messages
    # are acked.
    async for events in stream.take_events(1000, within=BATCH_SECONDS):
        writes = ChangelogWrites()
        docs: dict[bytes, dict[str, Any]] = {}
        previous: dict[bytes, tuple[str | None, str]] = {}  # (status, command type) before
        partitions: dict[bytes, int] = {}
        for event in events:
            for change in changes_of(event):
                key = change["command_id"].encode()
                if key not in docs:
                    # .data: the plain dict under the table (its own get costs an
                    # exception per unknown key, and most keys here are new)
                    before = command_status.data.get(key)
                    previous[key] = counted_as(before)
                    docs[key] = before or {}
                    partitions[key] = event.message.partition
                docs[key] = merge(docs[key] or None, change)
        deltas: Counter[bytes] = Counter()
        finished: Counter[bytes] = Counter()
        for key, doc in docs.items():
            doc["_p"] = partitions[key]  # where its tombstone goes when it expires
            writes.put(command_status, partitions[key], key, doc)
            now = counted_as(doc)
            deltas.update(count_deltas(partitions[key], previous[key], now))
            status, kind = now
            if previous[key][0] != status and status in TERMINAL:
                window = int(doc["updated_at"] // WINDOW_SECONDS * WINDOW_SECONDS)
                finished[f"{partitions[key]}|{window}|{kind}|{status}".encode()] += 1
        # Only a batch's last keys can be among the latest: `key in RECENT` for every key
        # was a scan of the deque per change (the agent's own largest cost in cProfile).
        for key in list(docs)[-RECENT_KEPT:]:
            if key in RECENT:
                RECENT.remove(key)
            RECENT.append(key)
        for key, count in finished.items():
            writes.put(command_rates, _partition_of(key), key,
                       (command_rates.data.get(key) or 0) + count)
        for key, delta in deltas.items():
            if delta:
                writes.put(command_counts, _partition_of(key), key,
                           (command_counts.data.get(key) or 0) + delta)
        await writes.flush(app.runtime.producer)


def counted_as(doc: dict[str, Any] | None) -> tuple[str | None, str]:
    """Where a document is counted: its status and its command type."""
    doc = doc or {}
    return doc.get("status"), doc.get("command_type") or "UNKNOWN"


def count_deltas(partition: int, was: tuple[str | None, str],
                 now: tuple[str | None, str]) -> Counter[bytes]:
    """A document moves from one (status, command type) count to another. The type can
    change too: steps come from several producers (API processes, workers), and a
    worker's PROCESSING, which does not carry the type, can land before the API's
    PENDING, which does; the document was then counted as UNKNOWN until PENDING came."""
    deltas: Counter[bytes] = Counter()
    if was != now:
        if was[0]:
            deltas[f"{partition}|{was[0]}|{was[1]}".encode()] -= 1
        if now[0]:
            deltas[f"{partition}|{now[0]}|{now[1]}".encode()] += 1
    return deltas


# Expiry walks the table a slice per tick. A whole pass every 10 s made a stall that
# grew with the table (~180,000 documents at 600 commands/s and five minutes'
# retention) and, after a restart or a busy hour, tombstoned tens of thousands of
# documents at once: a live projection benchmark ran at 583 events/s instead of ~3,000
# while one pass tombstoned 20,290. A slice bounds both the scan (~3 µs a key: 6 ms a
# second for 2,000) and the tombstones of one tick, and still expires 2,000 commands a
# second; a document may outlive the retention by one pass (a minute and a half at
# 180,000). A new pass starts from a fresh list of keys, so keys that arrived with a
# rebalance are seen too.
EXPIRY_TICK_SECONDS = 1.0
EXPIRY_SLICE = 2_000


class _ExpiryPass:
    def __init__(self) -> None:
        self.keys: list[bytes] = []  # the table's keys when this pass began
        self.at = 0
        self.expired = 0  # in this pass, logged once it is over

    def next_slice(self) -> list[bytes]:
        if self.at >= len(self.keys):
            if self.expired:
                log.info("status table: %d finished commands past retention tombstoned "
                         "(a pass over %d documents)", self.expired, len(self.keys))
            self.keys, self.at, self.expired = list(command_status.data), 0, 0
        keys = self.keys[self.at:self.at + EXPIRY_SLICE]
        self.at += len(keys)
        return keys


expiry = _ExpiryPass()


@app.timer(interval=EXPIRY_TICK_SECONDS)
async def expire_statuses() -> None:
    # An exception in a Faust timer stops the worker: log, count, and expire next tick.
    try:
        writes = ChangelogWrites()
        expired = expire_finished(time.time() - app.settings.status_table_retention_seconds,
                                  writes, expiry.next_slice(), owned(command_status))
        # Here, not per status batch: a walk of the whole rates table (windows x types x
        # outcomes x partitions) for each batch took 5 % of a worker's loop (py-spy).
        expire_windows(writes, owned(command_rates))
        await writes.flush(app.runtime.producer)
        expiry.expired += expired
    except Exception as error:  # noqa: BLE001
        survived("status expiry", error)


def owned(table: Any) -> set[int]:
    """The partitions of `table` this worker owns. Its memory also holds the standby
    copies of other workers' partitions (spice/faust_fixes.py, warm standbys): whatever
    iterates a table counts, expires or reports only the partitions it owns."""
    recovery = cast(Any, app.tables).recovery  # TableManager's, not on its interface
    return {tp.partition for tp in recovery.actives_for_table.get(table, ())}


def _partition_of(key: bytes) -> int:
    return int(key.split(b"|", 1)[0])


def expire_finished(cutoff: float, writes: ChangelogWrites, keys: list[bytes],
                    partitions: set[int]) -> int:
    """Finished commands among `keys` older than the retention leave the table (a
    tombstone, so the changelog compacts them away too): the table holds recent history,
    Redis holds a day, and the event store, which the status API falls back to, holds
    everything."""
    # A document with no status at all holds only PROJECTED steps (a domain event whose
    # command this table never saw, e.g. one produced at topic level): it would never
    # become terminal, so it leaves on the same clock.
    data = command_status.data
    stale = []
    for key in keys:
        doc = data.get(key)
        if doc and (doc.get("status") in TERMINAL or doc.get("status") is None) \
                and doc.get("_p") in partitions and (doc.get("updated_at") or 0) < cutoff:
            stale.append((key, doc["_p"]))
    for key, partition in stale:
        writes.put(command_status, partition, key, None)  # a tombstone: compacted away
    return len(stale)


def expire_windows(writes: ChangelogWrites, partitions: set[int]) -> None:
    horizon = time.time() - WINDOW_SECONDS * WINDOWS_KEPT
    for key in [k for k, v in command_rates.items()
                if _partition_of(k) in partitions and (v is None or int(k.split(b"|")[1]) < horizon)]:
        writes.put(command_rates, _partition_of(key), key, None)  # a tombstone compacts it away


def rates() -> list[dict[str, Any]]:
    """Commands finished per second in each tumbling window (newest first), by type and
    outcome, summed over this worker's partitions."""
    windows: dict[int, dict[str, Any]] = {}
    partitions = owned(command_rates)
    for key, count in command_rates.items():
        if count is None or _partition_of(key) not in partitions:  # None: a replayed tombstone
            continue
        _, window, kind, outcome = key.decode().split("|")
        entry = windows.setdefault(int(window), {"window_start": int(window), "finished": 0,
                                                 "by_type": {}})
        entry["finished"] += count
        by_outcome = entry["by_type"].setdefault(kind, {})
        by_outcome[outcome] = by_outcome.get(outcome, 0) + count
    for entry in windows.values():
        entry["per_second"] = round(entry["finished"] / WINDOW_SECONDS, 2)
    return sorted(windows.values(), key=lambda e: -e["window_start"])


def read_status(command_id: str) -> dict[str, Any] | None:
    value = command_status.get(command_id.encode())
    return dict(value) if value else None


def recent(limit: int = 20) -> list[dict[str, Any]]:
    out = []
    for key in reversed(RECENT):
        doc = command_status.get(key)
        if doc:
            out.append({k: doc.get(k) for k in ("command_id", "status", "command_type", "db",
                                                 "updated_at", "progress")})
        if len(out) >= limit:
            break
    return out


def counts() -> dict[str, Any]:
    by_state: dict[str, int] = {}
    by_type: dict[str, dict[str, int]] = {}
    partitions = owned(command_counts)
    for key, value in command_counts.items():
        if value is None or _partition_of(key) not in partitions:
            continue
        _, state, kind = (key.decode() if isinstance(key, bytes) else key).split("|", 2)
        by_state[state] = by_state.get(state, 0) + value
        by_type.setdefault(kind, {})[state] = by_type.get(kind, {}).get(state, 0) + value
    return {"by_state": by_state, "by_command_type": by_type}
