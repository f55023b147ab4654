"""Project one domain event into the search read model, exactly once in effect."""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from spice import tracing
from spice.domain.envelope import Envelope
from spice.handlers.commands import DeadLetter, Origin
from spice.handlers.retry import with_retries
from spice.observability import PROJECTED, log_context
from spice.stores.errors import TRANSIENT_ERRORS
from spice.stores.projection_postgres import FusedProjection, fusable
from spice.stores.registry import Claim, ClaimOutcome, Registry
from spice.stores.search import SearchIndex
from spice.stores.status import StatusSink, make_change

log = logging.getLogger(__name__)
HANDLER = "projection"
DLQ = "projection_failures_dlq"
Finish = Callable[[], Awaitable[None]]


class ProjectionHandler:
    def __init__(self, registry: Registry, index: SearchIndex, status: StatusSink,
                 dead_letter: DeadLetter, *, max_attempts: int = 8, retry_base: float = 0.5,
                 fused: FusedProjection | None = None) -> None:
        """`fused`: the read model shares the registry's database, and a batch's claims,
        writes and mark-done go in one statement (see spice/stores/projection_postgres)."""
        self.registry, self.index, self.status = registry, index, status
        self.fused = fused
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

    async def start_batch(self, items: list[tuple[Envelope, Origin]]) -> Finish:
        """Write a batch to the read model (one claim statement, one index write) and
        return what is left: mark it done and report it searchable (one wait for both).
        Each of the three is about a third of a batch's time, mostly waiting on a round
        trip, so the projection agent starts the next batch while this one finishes; it
        runs the finishes one at a time, in order. A batch that keeps failing goes the
        one-by-one way (each event with its own retries, and the DLQ for the one that
        must), so one bad event never holds the others."""
        unique: dict[str, tuple[Envelope, Origin]] = {}
        for envelope, origin in items:
            unique.setdefault(envelope.event_id, (envelope, origin))
        batch = list(unique.values())
        envelopes = [e for e, _ in batch]
        claims: list[Claim] = []
        failed: list[BaseException] = []
        fused = self.fused if self.fused is not None and fusable(envelopes) else None
        started = time.time_ns()

        async def write() -> None:
            claims[:] = await (fused.project(HANDLER, envelopes) if fused else self._write(envelopes))

        async def fall_back(error: BaseException, attempts: int) -> None:
            failed.append(error)

        await with_retries(write, what=f"projection batch of {len(batch)}", max_attempts=3,
                           base=self.retry_base, give_up=fall_back)
        if failed:
            return partial(self._one_by_one, batch)

        async def finish() -> None:
            await with_retries(lambda: self._finish(envelopes, claims, done=fused is not None),
                               what=f"projection batch of {len(batch)} (mark done)", max_attempts=3,
                               base=self.retry_base, give_up=fall_back)
            if not failed:
                tracing.record_spans("projection", [e.metadata.get("traceparent") for e in envelopes],
                                     started, time.time_ns(), batch_size=len(envelopes))
                return
            if fused:
                # The read model and the registry hold the batch already: what is left
                # is reporting it (a one-by-one pass would find the events done and
                # report nothing, and `wait=projected` would wait in vain).
                await self._report_each(batch, claims)
                return
            # Give the claims back so that each event can be claimed again at once.
            await self._release([e for e, c in zip(envelopes, claims, strict=True)
                                 if c.outcome is ClaimOutcome.CLAIMED], failed[0])
            await self._one_by_one(batch)
        return finish

    async def _report_each(self, batch: list[tuple[Envelope, Origin]], claims: list[Claim]) -> None:
        for (envelope, origin), claim in zip(batch, claims, strict=True):
            if claim.outcome is ClaimOutcome.IN_PROGRESS:
                await self.process(envelope, origin)  # waits for the holder, then reports
            elif claim.outcome is not ClaimOutcome.DONE:
                async def unreported(error: BaseException, attempts: int,
                                     envelope: Envelope = envelope) -> None:
                    log.warning("event %s is searchable but its PROJECTED step was not recorded "
                                "after %d attempts: %s", envelope.event_id, attempts, error)

                await with_retries(partial(self._report, envelope),
                                   what=f"PROJECTED step of {envelope.event_id}",
                                   max_attempts=self.max_attempts, base=self.retry_base,
                                   give_up=unreported)

    async def _one_by_one(self, batch: list[tuple[Envelope, Origin]]) -> None:
        for envelope, origin in batch:
            await self.process(envelope, origin)

    async def _release(self, envelopes: list[Envelope], error: BaseException) -> None:
        try:
            await self.registry.mark_failed_many(
                HANDLER, [e.event_id for e in envelopes], f"{type(error).__name__}: {error}")
        except TRANSIENT_ERRORS:
            pass  # the leases lapse on their own

    async def _write(self, envelopes: list[Envelope]) -> list[Claim]:
        keys = [(e.event_id, e.aggregate_id, e.sequence_number) for e in envelopes]
        claims = await self.registry.claim_many(HANDLER, keys)
        claimed = [e for e, c in zip(envelopes, claims, strict=True) if c.outcome is ClaimOutcome.CLAIMED]
        if claimed:
            try:
                await self.index.apply_many(claimed)
            except BaseException as error:
                # Give the claims back at once, so the retry need not wait out the lease.
                await self._release(claimed, error)
                raise
        return claims

    async def _finish(self, envelopes: list[Envelope], claims: list[Claim], *, done: bool) -> None:
        # The read model holds the batch now. Marking it done and reporting it searchable
        # do not depend on each other, so they share one wait (each was a quarter of a
        # batch's time). Stale events change nothing but their writes are as searchable
        # as they will get; busy ones are reported by handle() below.
        claimed = [e for e, c in zip(envelopes, claims, strict=True) if c.outcome is ClaimOutcome.CLAIMED]
        busy = [e for e, c in zip(envelopes, claims, strict=True)
                if c.outcome is ClaimOutcome.IN_PROGRESS]
        skip = {e.event_id for e, c in zip(envelopes, claims, strict=True)
                if c.outcome in (ClaimOutcome.DONE, ClaimOutcome.IN_PROGRESS)}
        work = [self.status.record_many([
            make_change(e.command_id, "PROJECTED", "read model caught up", projected=True)
            for e in envelopes if e.event_id not in skip])]
        if claimed and not done:
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
            await self._report(envelope)

    async def _report(self, envelope: Envelope) -> None:
        await self.status.update(envelope.command_id, "PROJECTED", "read model caught up",
                                 projected=True)
