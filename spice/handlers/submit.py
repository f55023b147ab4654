"""Accept a command: validate its shape, append it to the event store, mark it PENDING.

Idempotency-Key: the command id is derived from (actor, key), so the event
store's own idempotency does the work: the same key with the same body is the
same event (the stored envelope comes back), the same key with another body is
an EventIdConflict (409). It survives restarts because it lives in S3.
"""
from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

from spice.domain.envelope import Envelope
from spice.domain.messages import CommandType, new_command
from spice.stores.event_store import EventStore
from spice.stores.status import CommandStatus, StatusSink

log = logging.getLogger(__name__)
_background: set[asyncio.Task[None]] = set()
IDEMPOTENCY_NAMESPACE = uuid.UUID("0d5a3a8e-2f49-4c1e-9a77-52b1f3c6f0aa")


def idempotent_command_id(actor: str, key: str) -> str:
    return str(uuid.uuid5(IDEMPOTENCY_NAMESPACE, f"{actor}|{key}"))


class CommandSubmitter:
    def __init__(self, store: EventStore, status: StatusSink) -> None:
        self.store = store
        self.status = status

    async def submit(self, command: CommandType, aggregate_id: str, data: dict[str, Any], *,
                     actor: str, db: str | None = None, expected_seq: int | None = None,
                     idempotency_key: str | None = None, scope: str | None = None,
                     metadata: dict[str, Any] | None = None) -> Envelope:
        """`scope`: whose Idempotency-Keys these are (by default the actor)."""
        command_id = idempotent_command_id(scope or actor, idempotency_key) \
            if idempotency_key else None
        envelope = new_command(command, aggregate_id, data, actor=actor, command_id=command_id,
                               metadata={**(metadata or {}), **({"db": db} if db else {})})
        stored = await self.store.append(envelope, allocate=True, expected_seq=expected_seq)
        if stored.occurred_at == envelope.occurred_at:  # new, not a repeat of an earlier request
            # Not awaited: the 202 promises "stored", and until PENDING lands the status
            # API answers PENDING from the event store itself.
            task = asyncio.create_task(self._pending(stored.command_id, command, db, aggregate_id))
            _background.add(task)
            task.add_done_callback(_background.discard)
        return stored

    async def _pending(self, command_id: str, command: CommandType, db: str | None,
                       aggregate_id: str) -> None:
        try:
            await self.status.update(command_id, CommandStatus.PENDING, "accepted and stored",
                                     command_type=command.value, db=db, aggregate_id=aggregate_id)
        except Exception as error:  # noqa: BLE001 - stored is what 202 promises
            log.warning("command %s stored, status not recorded: %s", command_id, error)
