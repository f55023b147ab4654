"""Do the books balance? Every accepted command ended COMPLETED or FAILED exactly
once, every domain event is in the event store exactly once, and the graph store
and the search index equal what the stored events say."""
from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from redis.exceptions import RedisError

from spice.domain.messages import instance_aggregate
from spice.handlers import rebuild

TERMINAL = ("COMPLETED", "FAILED")
REPORT = Path("test-artifacts") / "reliability-report.jsonl"


@dataclass
class Books:
    scenario: str
    accepted: int = 0
    completed: int = 0
    failed: int = 0
    lost: int = 0
    duplicated: int = 0
    recovery_seconds: float = 0.0
    unanswered: int = 0  # requests with no answer (their process died): maybe stored
    unanswered_applied: int = 0  # ... of which were stored and applied (once)
    # Where the recovery's time went, in seconds after the fault's end (`Timeline`).
    timeline: dict[str, float | int] = field(default_factory=dict)
    # What the scenario measured besides the books (accepted/s, pauses, answers).
    figures: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def record(self) -> None:
        REPORT.parent.mkdir(exist_ok=True)
        with REPORT.open("a") as handle:
            handle.write(json.dumps({**asdict(self), "problems": self.problems[:20]}) + "\n")

    def assert_balanced(self) -> None:
        self.record()
        if self.timeline:
            print(f"{self.scenario}: timeline {self.timeline}")
        summary = {k: v for k, v in asdict(self).items() if k != "problems"}
        assert self.lost == 0 and self.duplicated == 0 and not self.problems, \
            f"{summary}; {len(self.problems)} problems, first: {self.problems[:5]}"


class Timeline:
    """The recovery's steps, from the terminal transitions in the status histories
    (the worker's clock: the same machine). `fault_end` is when the fault ended (a
    server back, a worker killed); `store_back`, when given, when the process under
    test first found its stores answering again."""

    def __init__(self, fault_end: float, store_back: float | None = None) -> None:
        self.fault_end, self.store_back = fault_end, store_back
        self.endings: list[float] = []

    def add(self, history: list[dict[str, Any]]) -> None:
        self.endings.extend(float(h["timestamp"]) for h in history
                            if h.get("status") in TERMINAL and "timestamp" in h)

    def summary(self) -> dict[str, float | int]:
        after = sorted(t - self.fault_end for t in self.endings if t >= self.fault_end)
        steps: dict[str, float | int] = {
            "owed_at_fault_end": len(after),
            "first_terminal": round(after[0], 1) if after else 0.0,
            "last_terminal": round(after[-1], 1) if after else 0.0}
        if self.store_back is not None:
            steps["store_back"] = round(self.store_back - self.fault_end, 1)
        if len(after) > 1 and after[-1] > after[0]:
            # How fast the backlog drained once work resumed: a slow store shows here,
            # a slow resumption in first_terminal.
            steps["per_second_after"] = round((len(after) - 1) / (after[-1] - after[0]), 1)
        return steps


StatusOf = Callable[[str], Awaitable[dict[str, Any] | None]]


def redis_status(runtime: Any) -> StatusOf:
    """Straight from Redis; a failed read (Redis restarting, a connection a restart broke)
    counts as 'not known yet', and the caller asks again."""
    async def status_of(command_id: str) -> dict[str, Any] | None:
        try:
            return await runtime.status.get(command_id)  # type: ignore[no-any-return]
        except (RedisError, OSError):
            return None
    return status_of


def api_status(http: Any, url: str) -> StatusOf:
    """Through the status API: Redis, else the Faust table (after a Redis restart)."""
    async def status_of(command_id: str) -> dict[str, Any] | None:
        for _ in range(100):
            async with http.get(f"{url}/api/v1/commands/{command_id}/status") as response:
                if response.status == 429:
                    # The books read thousands of statuses one after another, faster than
                    # the key's rate (500/s) since the API got quicker: a refusal is not
                    # an answer, and counting it as "no status" made commands look lost.
                    await asyncio.sleep(float(response.headers.get("Retry-After", "1")))
                    continue
                if response.status != 200:
                    return None
                body = await response.json()
            return {**body, "history": (body.get("result") or {}).get("history", [])}
        raise AssertionError(f"status of {command_id}: still rate limited after 100 tries")
    return status_of


async def wait_terminal(runtime: Any, command_ids: list[str], timeout: float,
                        status_of: StatusOf | None = None) -> float:
    """Seconds until every command is terminal (or the timeout)."""
    status_of = status_of or redis_status(runtime)
    started = time.monotonic()
    pending = set(command_ids)
    while pending and time.monotonic() - started < timeout:
        for command_id in list(pending):
            doc = await status_of(command_id)
            if doc and doc.get("status") in TERMINAL:
                pending.discard(command_id)
        if pending:
            await asyncio.sleep(0.5)
    return time.monotonic() - started


async def balance(runtime: Any, scenario: str, db: str, class_id: str,
                  accepted: dict[str, tuple[str, dict[str, Any]]], recovery: float,
                  status_of: StatusOf | None = None,
                  unanswered: dict[str, dict[str, Any]] | None = None,
                  timeline: Timeline | None = None) -> Books:
    """`accepted`: command id → (instance id, data) of create-instance commands.
    `unanswered`: instance id → data of requests that got no answer (the process that
    took them died): each may have been stored or not, so each may be in the graph,
    once and as sent, or absent. With a `timeline`, the recovery is read from the
    status histories: from the fault's end to the last terminal transition."""
    unanswered = unanswered or {}
    status_of = status_of or redis_status(runtime)
    books = Books(scenario, accepted=len(accepted), recovery_seconds=round(recovery, 1))
    aggregates = {instance_aggregate(db, class_id, iid): cid for cid, (iid, _) in accepted.items()}
    async with runtime.pool.acquire() as conn:
        per_aggregate = dict(await conn.fetch(
            "SELECT aggregate_id, count(*) FROM event_index WHERE aggregate_id = ANY($1) "
            "GROUP BY aggregate_id", list(aggregates)))
    # Through the graph store this run uses (PostgreSQL or TerminusDB), every page of it.
    graph: dict[str, Any] = {}
    after = None
    while True:
        page = await runtime.graph.list_instances(db, class_id, limit=1000, after=after)
        graph.update((row["instance_id"], row["data"]) for row in page)
        if len(page) < 1000:
            break
        after = page[-1]["instance_id"]
    for command_id, (instance_id, data) in accepted.items():
        doc = await status_of(command_id)
        status = (doc or {}).get("status")
        history = [h["status"] for h in (doc or {}).get("history", [])]
        if timeline is not None:
            timeline.add((doc or {}).get("history", []))
        endings = sum(1 for s in history if s in TERMINAL)
        if status == "COMPLETED":
            books.completed += 1
        elif status == "FAILED":
            books.failed += 1
        else:
            books.lost += 1
            books.problems.append(f"{command_id}: status {status}")
            continue
        if endings != 1:
            books.duplicated += 1
            books.problems.append(f"{command_id}: {endings} terminal transitions {history}")
        stored = per_aggregate.get(instance_aggregate(db, class_id, instance_id), 0)
        expected = 2 if status == "COMPLETED" else 3  # the command + its event(s)
        if status == "COMPLETED" and stored != expected:
            books.duplicated += stored > expected
            books.problems.append(f"{command_id}: {stored} envelopes for its aggregate, want {expected}")
        if status == "COMPLETED" and graph.get(instance_id) != data:
            books.problems.append(f"{command_id}: graph has {graph.get(instance_id)}, want {data}")
    if timeline is not None:
        books.timeline = timeline.summary()
        if books.timeline["owed_at_fault_end"]:
            books.recovery_seconds = float(books.timeline["last_terminal"])
    extra = set(graph) - {iid for iid, _ in accepted.values()}
    unowed = sorted(iid for iid in extra if iid not in unanswered)
    if unowed:
        books.problems.append(f"graph has instances no accepted command made: {unowed[:5]}")
    answered_late = sorted(extra & set(unanswered))
    books.unanswered, books.unanswered_applied = len(unanswered), len(answered_late)
    async with runtime.pool.acquire() as conn:
        maybe = dict(await conn.fetch(
            "SELECT aggregate_id, count(*) FROM event_index WHERE aggregate_id = ANY($1) "
            "GROUP BY aggregate_id", [instance_aggregate(db, class_id, iid) for iid in answered_late]))
    for instance_id in answered_late:
        stored = maybe.get(instance_aggregate(db, class_id, instance_id), 0)
        if stored != 2 or graph[instance_id] != unanswered[instance_id]:
            books.duplicated += stored > 2
            books.problems.append(f"unanswered {instance_id}: {stored} envelopes, graph has "
                                  f"{graph[instance_id]}, sent {unanswered[instance_id]}")
    deadline = time.monotonic() + 90  # the projections catch up (the sweeper within ~30 s)
    while True:
        drift = await rebuild.verify(runtime, db)
        if not drift.get("drift_count") or time.monotonic() > deadline:
            break
        await asyncio.sleep(1)
    if drift.get("drift_count"):
        books.problems.append(f"search index drifts from the graph: {drift['drift'][:3]}")
    return books
