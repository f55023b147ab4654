"""Commands in batches: the common case costs a few statements per batch, not per command.

One command at a time, each command paid its own task, claim, two status writes, event
append, graph write and mark-done, and a worker applied ~300 commands/s with its
core busy. Here the commands that arrived together go through each stage at once:
one claim statement, one status write for PROCESSING and one for COMPLETED, one
group-committed append, the graph writes of the batch, one mark-done.

Only the plain case is batched: a single-instance command, already in the event
store, first of its aggregate in the batch, claimed for the first time and with no
sequence gap before it. Duplicates and stale claims are answered here. Everything
else (a busy claim, a retry, a gap to catch up, a bulk create, a command produced
straight to the topic, a second command for the same aggregate) goes the one-by-one
way, `CommandHandler.process` with its retries and its DLQ, in a per-aggregate lane
(spice/agents/lanes.py) so that its waiting holds up only its aggregate. So does
every command of a batch that fails as a whole: its claims are given back first, and
the one-by-one path finds whatever the failed attempt already stored (event ids are
deterministic) exactly as it does after a crash.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from spice.domain.envelope import Envelope
from spice.domain.errors import DomainError
from spice.domain.messages import CommandType, command_type_of, database_of
from spice.faults import crash_point
from spice.observability import COMMANDS
from spice.stores.errors import TRANSIENT_ERRORS
from spice.stores.registry import Claim, ClaimOutcome
from spice.stores.status import CommandStatus, make_change

if TYPE_CHECKING:
    from spice.handlers.commands import CommandHandler, Origin

log = logging.getLogger(__name__)
BATCHABLE = frozenset({CommandType.CREATE_INSTANCE, CommandType.UPDATE_INSTANCE,
                       CommandType.DELETE_INSTANCE})
Item = tuple[Envelope, "Origin"]


def split(items: list[Item], held: Callable[[str], bool] = lambda aggregate: False
          ) -> tuple[list[Item], list[Item]]:
    """(the batch, the rest): an aggregate's first command joins the batch if it is a
    plain one and `held(aggregate)` is false (no earlier work of it still going on
    elsewhere); its later commands, and every command after one that is not, wait."""
    batch: list[Item] = []
    rest: list[Item] = []
    taken: set[str] = set()
    waiting: set[str] = set()
    for envelope, origin in items:
        aggregate = envelope.aggregate_id
        if (aggregate in taken or aggregate in waiting or held(aggregate) or not origin.from_store
                or envelope.metadata.get("command_type") not in BATCHABLE):
            waiting.add(aggregate)
            rest.append((envelope, origin))
        else:
            taken.add(aggregate)
            batch.append((envelope, origin))
    return batch, rest


def plain(envelope: Envelope, claim: Claim) -> bool:
    seq = envelope.sequence_number
    return (claim.outcome is ClaimOutcome.CLAIMED and claim.attempt == 1
            and (seq is None or seq <= claim.last_sequence + 1))


class CommandBatch:
    def __init__(self, handler: CommandHandler, name: str) -> None:
        self.handler = handler
        self.name = name  # the registry's handler name, shared with the one-by-one path

    async def run(self, batch: list[Item]) -> list[Item]:
        """Apply the plain commands of `batch` (distinct aggregates, from `split`); return,
        in their order, the ones that must go one by one (`CommandHandler.process`)."""
        registry = self.handler.registry
        try:
            claims = await registry.claim_many(self.name, [
                (e.event_id, e.aggregate_id, e.sequence_number) for e, _ in batch])
        except TRANSIENT_ERRORS:
            return batch
        ready: list[Item] = []
        leftovers: list[Item] = []
        given_back: list[str] = []
        for item, claim in zip(batch, claims, strict=True):
            envelope = item[0]
            if plain(envelope, claim):
                ready.append(item)
            elif claim.outcome is ClaimOutcome.DONE:
                await self.handler._quietly(self.handler._report_done(envelope))
            elif claim.outcome is ClaimOutcome.STALE:
                await self.handler._quietly(self.handler._report_stale(envelope, claim))
            else:
                # Busy elsewhere (a rebalance), or ours but a retry or behind a gap: the
                # one-by-one path. Ours are given back first, so that it can claim them
                # again instead of waiting for our own lease to lapse.
                leftovers.append(item)
                if claim.outcome is ClaimOutcome.CLAIMED:
                    given_back.append(envelope.event_id)
        await self.handler.give_back(given_back, "handed to the one-by-one path")
        if not ready:
            return leftovers
        crash_point("after_claim")
        try:
            await self._apply([envelope for envelope, _ in ready])
        except Exception as error:  # noqa: BLE001 - each command alone decides what it was
            log.warning("a batch of %d commands failed (%s: %s); each goes alone",
                        len(ready), type(error).__name__, error)
            await self.handler.give_back([e.event_id for e, _ in ready],
                                          f"{type(error).__name__}: {error}")
            return leftovers + ready
        return leftovers

    async def _apply(self, envelopes: list[Envelope]) -> None:
        handler = self.handler
        await handler.status.record_many([
            make_change(e.command_id, CommandStatus.PROCESSING, "processing (attempt 1)",
                        progress=0.0, db=database_of(e), command_type=e.metadata.get("command_type"),
                        aggregate_id=e.aggregate_id) for e in envelopes])
        beat = asyncio.create_task(handler._heartbeat(*[e.event_id for e in envelopes]))
        try:
            decided = await asyncio.gather(*[self._decide(e) for e in envelopes])
            accepted = [(envelope, outcome) for envelope, outcome in zip(envelopes, decided, strict=True)
                        if outcome is not None]
            stored = await handler._append_events([ev for _, (events, _) in accepted for ev in events])
            crash_point("after_event_append")
            # Distinct aggregates: their graph writes do not depend on each other, and the
            # graph store shares one statement among concurrent instance writes.
            await asyncio.gather(*[handler.graph.apply(event) for event in stored])
            crash_point("after_graph_write")
            crash_point("before_mark_done")
            await handler.registry.mark_done_many(self.name, [
                (e.event_id, e.aggregate_id, e.sequence_number) for e, _ in accepted])
        finally:
            beat.cancel()
        by_command: dict[str, list[str]] = {}
        for event in stored:
            by_command.setdefault(event.command_id, []).append(event.event_id)
        await handler.status.record_many([
            make_change(e.command_id, CommandStatus.COMPLETED, "completed", progress=100.0,
                        result={**result, "event_ids": by_command.get(e.command_id, [])[:100],
                                "sequence_number": e.sequence_number})
            for e, (_, result) in accepted])
        for envelope, _ in accepted:
            COMMANDS.inc(str(envelope.metadata.get("command_type")), "completed")

    async def _decide(self, envelope: Envelope) -> tuple[list[Envelope], dict[str, Any]] | None:
        """The command's events and result, or None when the domain refused it (the
        refusal is recorded and reported here, as the one-by-one path does)."""
        try:
            return await self.handler._decide(envelope, command_type_of(envelope))
        except DomainError as error:
            await self.handler._reject(envelope, error)
            return None
