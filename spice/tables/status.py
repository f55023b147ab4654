"""The status agent and its Faust tables: per-command status (changelog-backed, so
it survives a Redis flush) and counts by state and command type."""
from __future__ import annotations

import json
from typing import Any

from spice.app import app
from spice.topics import STATUS_TOPIC

TERMINAL = {"COMPLETED", "FAILED", "CANCELLED"}

status_topic = app.topic(STATUS_TOPIC, partitions=app.settings.topic_partitions, key_type=bytes,
                         value_type=bytes, key_serializer="raw", value_serializer="raw")
# Raw keys: the status topic is keyed by the command id's bytes, and table routing
# must hash the very same bytes, or a request lands on a worker that lacks the key.
# key_type=bytes is what makes Faust pick the raw key serializer (str gets JSON).
command_status = app.Table("command-status", default=None, key_type=bytes,
                           partitions=app.settings.topic_partitions)
# Keyed by "partition|status|command_type": a table's changelog is partitioned
# like its source topic, so each partition keeps its own counters.
command_counts = app.Table("command-counts", default=int, key_type=bytes,
                           partitions=app.settings.topic_partitions)


def merge(doc: dict[str, Any] | None, change: dict[str, Any]) -> dict[str, Any]:
    doc = dict(doc) if doc else {"command_id": change["command_id"], "created_at": change["timestamp"],
                                 "history": []}
    status = change["status"]
    if doc.get("status") in TERMINAL and status not in TERMINAL and status != "PROJECTED":
        return doc
    if status != "PROJECTED":
        doc["status"] = status
    doc["updated_at"] = change["timestamp"]
    for field in ("command_type", "db", "aggregate_id", "progress", "error", "projected", "result"):
        if field in change:
            doc[field] = change[field]
    doc["history"] = [*doc.get("history", []), {"status": status, "timestamp": change["timestamp"],
                                                 "message": change.get("message", "")}]
    return doc


@app.agent(status_topic, name="spice.agents.command_status")
async def status_agent(stream: Any) -> None:
    async for event in stream.events():
        change = json.loads(event.value)
        key = change["command_id"].encode()
        before = command_status.get(key)
        after = merge(before, change)
        command_status[key] = after
        previous, current = (before or {}).get("status"), after.get("status")
        if previous != current:
            kind = after.get("command_type", "UNKNOWN")
            partition = event.message.partition
            if previous:
                command_counts[f"{partition}|{previous}|{kind}".encode()] -= 1
            command_counts[f"{partition}|{current}|{kind}".encode()] += 1


def read_status(command_id: str) -> dict[str, Any] | None:
    value = command_status.get(command_id.encode())
    return dict(value) if value else None


def counts() -> dict[str, Any]:
    by_state: dict[str, int] = {}
    by_type: dict[str, dict[str, int]] = {}
    for key, value in command_counts.items():
        _, state, kind = (key.decode() if isinstance(key, bytes) else key).split("|", 2)
        by_state[state] = by_state.get(state, 0) + value
        by_type.setdefault(kind, {})[state] = by_type.get(kind, {}).get(state, 0) + value
    return {"by_state": by_state, "by_command_type": by_type}
