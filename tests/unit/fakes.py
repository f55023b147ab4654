"""In-memory fakes of the ports the command handler uses, for unit tests of its logic
(as cosmicpython tests its handlers): the registry, the status sink, a graph store of
databases only. The event store's fake is spice.stores.event_store.InMemoryEventStore."""
from __future__ import annotations

from typing import Any

from spice.domain.envelope import Envelope
from spice.stores.errors import StoreUnavailable
from spice.stores.registry import Claim, ClaimOutcome


class FakeRegistry:
    lease_seconds = 30.0

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], dict[str, Any]] = {}
        self.last: dict[tuple[str, str], int] = {}

    async def claim(self, handler: str, event_id: str, aggregate_id: str,
                    sequence: int | None) -> Claim:
        row = self.rows.get((handler, event_id))
        last = self.last.get((handler, aggregate_id), 0)
        if row is not None and row["status"] != "failed":
            outcome = ClaimOutcome.IN_PROGRESS if row["status"] == "processing" else ClaimOutcome.DONE
            return Claim(outcome, last_sequence=last)
        attempt = 1 if row is None else row["attempt"] + 1
        self.rows[(handler, event_id)] = {"status": "processing", "attempt": attempt, "error": None}
        if sequence is not None and sequence <= last:
            self.rows[(handler, event_id)]["status"] = "skipped_stale"
            return Claim(ClaimOutcome.STALE, attempt, last)
        return Claim(ClaimOutcome.CLAIMED, attempt, last)

    async def claim_when_free(self, handler: str, event_id: str, aggregate_id: str,
                              sequence: int | None, poll: float = 0.5) -> Claim:
        claim = await self.claim(handler, event_id, aggregate_id, sequence)
        assert claim.outcome is not ClaimOutcome.IN_PROGRESS, "no other owner in these tests"
        return claim

    async def claim_many(self, handler: str, events: list[tuple[str, str, int | None]]) -> list[Claim]:
        return [await self.claim(handler, *event) for event in events]

    async def heartbeat(self, handler: str, event_id: str) -> bool:
        return True

    async def mark_done(self, handler: str, event_id: str, aggregate_id: str,
                        sequence: int | None, error: str | None = None) -> None:
        self.rows[(handler, event_id)].update(status="done", error=error)
        if sequence is not None:
            key = (handler, aggregate_id)
            self.last[key] = max(self.last.get(key, 0), sequence)

    async def mark_done_many(self, handler: str, events: list[tuple[str, str, int | None]]) -> None:
        for event in events:
            await self.mark_done(handler, *event)

    async def mark_failed(self, handler: str, event_id: str, error: str) -> None:
        self.rows[(handler, event_id)].update(status="failed", error=error)

    async def mark_failed_many(self, handler: str, event_ids: list[str], error: str) -> None:
        for event_id in event_ids:
            await self.mark_failed(handler, event_id, error)

    async def last_sequence(self, handler: str, aggregate_id: str) -> int:
        return self.last.get((handler, aggregate_id), 0)


class FakeStatus:
    def __init__(self) -> None:
        self.docs: dict[str, dict[str, Any]] = {}

    async def update(self, command_id: str, status: str, message: str = "", *,
                     result: Any = None, error: Any = None, progress: float | None = None,
                     **fields: Any) -> dict[str, Any] | None:
        doc = self.docs.setdefault(command_id, {"command_id": command_id, "history": []})
        doc["history"].append(str(status))
        if status != "PROJECTED":
            doc["status"] = str(status)
        for key, value in {"result": result, "error": error, "progress": progress, **fields}.items():
            if value is not None:
                doc[key] = value
        return doc

    async def record_many(self, changes: list[dict[str, Any]]) -> None:
        for change in changes:
            fields = {k: v for k, v in change.items()
                      if k not in ("command_id", "status", "message", "timestamp")}
            await self.update(change["command_id"], change["status"], change.get("message", ""),
                              **fields)

    async def get(self, command_id: str) -> dict[str, Any] | None:
        return self.docs.get(command_id)


class FakeGraph:
    """Databases only: enough for the handler's paths, whatever the command."""

    def __init__(self, failures: int = 0) -> None:
        self.databases: set[str] = set()
        self.applied: list[str] = []
        self.failures = failures  # the next applies that find the store unavailable

    async def apply(self, event: Envelope) -> None:
        if self.failures:
            self.failures -= 1
            raise StoreUnavailable("graph", "down for the test")
        self.applied.append(event.event_id)
        if event.event_type == "DATABASE_CREATED":
            self.databases.add(event.aggregate_id)
        elif event.event_type == "DATABASE_DELETED":
            self.databases.discard(event.aggregate_id)

    async def database_exists(self, db: str) -> bool:
        return db in self.databases
