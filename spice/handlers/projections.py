"""Project one domain event into the search read model, exactly once in effect."""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from spice import tracing
from spice.domain.envelope import Envelope
from spice.handlers.commands import DeadLetter, Origin
from spice.handlers.retry import with_retries
from spice.observability import PROJECTED, log_context
from spice.stores.errors import TRANSIENT_ERRORS
from spice.stores.registry import ClaimOutcome, PostgresRegistry
from spice.stores.search import SearchIndex
from spice.stores.status import StatusTracker, make_change

log = logging.getLogger(__name__)
HANDLER = "projection"
DLQ = "projection_failures_dlq"


class ProjectionHandler:
    def __init__(self, registry: PostgresRegistry, index: SearchIndex, status: StatusTracker,
                 dead_letter: DeadLetter, *, max_attempts: int = 8, retry_base: float = 0.5) -> None:
        self.registry, self.index, self.status = registry, index, status
        self.dead_letter = dead_letter
        self.max_attempts = max_attempts
        self.retry_base = retry_base

    async def process(self, envelope: Envelope, origin: Origin) -> None:
        async def give_up(error: BaseException, attempts: int) -> None:
            await self._give_up(envelope, origin, error, attempts)

        with log_context(envelope.command_id, envelope.event_id), tracing.span(
                "projection", envelope.metadata.get("traceparent"), event_id=envelope.event_id):
            await with_retries(lambda: self.handle(envelope), what=f"projection of {envelope.event_id}",
                               max_attempts=self.max_attempts, base=self.retry_base, give_up=give_up)

    async def _give_up(self, envelope: Envelope, origin: Origin, error: BaseException,
                       attempts: int) -> None:
        payload: dict[str, Any] = {
            "envelope": envelope.model_dump(mode="json"), "error": f"{type(error).__name__}: {error}",
            "attempts": attempts, "topic": origin.topic, "partition": origin.partition,
            "offset": origin.offset, "failed_at": time.time()}
        await self.dead_letter(DLQ, payload)
        try:
            await self.registry.mark_failed(HANDLER, envelope.event_id, payload["error"])
        except TRANSIENT_ERRORS:
            pass

    async def process_batch(self, items: list[tuple[Envelope, Origin]]) -> None:
        """A batch in one go: one claim statement, one index write, one mark-done. If the
        batch keeps failing, each event goes the one-by-one way (its own retries, and the
        DLQ for the one that must), so one bad event never holds the others."""
        unique: dict[str, tuple[Envelope, Origin]] = {}
        for envelope, origin in items:
            unique.setdefault(envelope.event_id, (envelope, origin))
        batch = list(unique.values())
        failed: list[BaseException] = []

        async def fall_back(error: BaseException, attempts: int) -> None:
            failed.append(error)

        await with_retries(lambda: self.handle_batch([e for e, _ in batch]),
                           what=f"projection batch of {len(batch)}", max_attempts=3,
                           base=self.retry_base, give_up=fall_back)
        if failed:
            for envelope, origin in batch:
                await self.process(envelope, origin)

    async def handle_batch(self, envelopes: list[Envelope]) -> None:
        keys = [(e.event_id, e.aggregate_id, e.sequence_number) for e in envelopes]
        claims = await self.registry.claim_many(HANDLER, keys)
        claimed = [e for e, c in zip(envelopes, claims, strict=True) if c.outcome is ClaimOutcome.CLAIMED]
        busy = [e for e, c in zip(envelopes, claims, strict=True)
                if c.outcome is ClaimOutcome.IN_PROGRESS]
        if claimed:
            try:
                await self.index.apply_many(claimed)
            except BaseException as error:
                # Give the claims back at once, so the retry need not wait out the lease.
                try:
                    await self.registry.mark_failed_many(
                        HANDLER, [e.event_id for e in claimed], f"{type(error).__name__}: {error}")
                except TRANSIENT_ERRORS:
                    pass
                raise
        # The read model holds the batch now. Marking it done and reporting it searchable
        # do not depend on each other, so they share one wait (each was a quarter of a
        # batch's time). Stale events change nothing but their writes are as searchable
        # as they will get; busy ones are reported by handle() below.
        skip = {e.event_id for e, c in zip(envelopes, claims, strict=True)
                if c.outcome in (ClaimOutcome.DONE, ClaimOutcome.IN_PROGRESS)}
        work = [self.status.record_many([
            make_change(e.command_id, "PROJECTED", "read model caught up", projected=True)
            for e in envelopes if e.event_id not in skip])]
        if claimed:
            work.append(self.registry.mark_done_many(
                HANDLER, [(e.event_id, e.aggregate_id, e.sequence_number) for e in claimed]))
        await asyncio.gather(*work)
        for envelope in claimed:
            PROJECTED.inc(envelope.event_type)
        for envelope in busy:  # another worker holds it (a rebalance): wait for it alone
            await self.handle(envelope)

    async def handle(self, envelope: Envelope) -> None:
        claim = await self.registry.claim_when_free(HANDLER, envelope.event_id,
                                                    envelope.aggregate_id, envelope.sequence_number)
        if claim.outcome is ClaimOutcome.CLAIMED:
            await self.index.apply(envelope)
            PROJECTED.inc(envelope.event_type)
            await self.registry.mark_done(HANDLER, envelope.event_id, envelope.aggregate_id,
                                          envelope.sequence_number)
        if claim.outcome is not ClaimOutcome.DONE:
            # Stale events change nothing (a newer version is in), but the write they
            # stand for is as searchable as it will get.
            await self.status.update(envelope.command_id, "PROJECTED", "read model caught up",
                                     projected=True)
