"""Process one command envelope: claim, decide, record events, apply, report.

Order of effects (why events before the graph): the domain events are appended
to the event store *before* the graph write. A crash between the two is repaired
on the next attempt by finding this command's events in the store (their ids are
deterministic) and applying them again; the graph write is idempotent by
sequence number. The opposite order could leave a graph change that no event
records, i.e. a read model ahead of the source of truth.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from spice import tracing
from spice.domain import decisions
from spice.domain.envelope import Envelope, domain_event_id
from spice.domain.errors import DomainError
from spice.domain.messages import (
    SUCCESS_EVENTS,
    AggregateType,
    CommandType,
    EventType,
    command_failed,
    command_type_of,
    database_of,
    instance_aggregate,
    stamp,
)
from spice.faults import crash_point
from spice.handlers import state
from spice.handlers.command_batch import CommandBatch, Item
from spice.handlers.retry import RETRYABLE, with_retries
from spice.observability import COMMANDS, log_context
from spice.stores.errors import TRANSIENT_ERRORS, EventIdConflict
from spice.stores.event_store import EventStore
from spice.stores.graph import GraphStore
from spice.stores.registry import Claim, ClaimOutcome, Registry
from spice.stores.status import UNAVAILABLE, CommandStatus, StatusSink

log = logging.getLogger(__name__)


def _type_name(envelope: Envelope) -> str:
    return str(envelope.metadata.get("command_type") or envelope.event_type)


HANDLER = "command-worker"
BULK_CHUNK = 200
# A failed attempt gives its claims back at once; a store that refuses (the failure
# was often the store itself) is asked again within the lease (backoff from 0.2 s),
# so that the retry claims again promptly instead of waiting out its own worker's lease.
GIVE_BACK_ATTEMPTS = 4


@dataclass(frozen=True)
class Origin:
    topic: str
    partition: int | None = None
    offset: int | None = None
    # Published by our publisher (a Kafka header): already in the event store.
    from_store: bool = False


DeadLetter = Callable[[str, dict[str, Any]], Awaitable[None]]


class CommandHandler:
    def __init__(self, store: EventStore, registry: Registry, graph: GraphStore,
                 status: StatusSink, dead_letter: DeadLetter, *, max_attempts: int = 5,
                 retry_base: float = 0.2, gap_wait: float = 5.0) -> None:
        self.store, self.registry, self.graph, self.status = store, registry, graph, status
        self.dead_letter = dead_letter
        self.max_attempts = max_attempts
        self.retry_base = retry_base
        self.gap_wait = gap_wait
        self._batch = CommandBatch(self, HANDLER)

    async def process_batch(self, batch: list[Item]) -> list[Item]:
        """Plain commands of distinct aggregates (`command_batch.split`) in one pass per
        stage; returns those that must go through `process` one by one instead."""
        return await self._batch.run(batch)

    # ---- the retry envelope around one command ------------------------------

    async def process(self, envelope: Envelope, origin: Origin) -> None:
        async def retrying(attempt: int, error: BaseException, delay: float) -> None:
            await self._quietly(self.status.update(
                envelope.command_id, CommandStatus.RETRYING,
                f"attempt {attempt} failed: {error}; retrying in {delay:.1f}s"))

        async def give_up(error: BaseException, attempts: int) -> None:
            await self._give_up(envelope, origin, error, attempts)

        with log_context(envelope.command_id, envelope.event_id), tracing.span(
                "command", envelope.metadata.get("traceparent"), command_id=envelope.command_id):
            await with_retries(lambda: self.handle(envelope, known_stored=origin.from_store),
                               what=f"command {envelope.command_id}", max_attempts=self.max_attempts,
                               base=self.retry_base, give_up=give_up, on_retry=retrying)

    async def _give_up(self, envelope: Envelope, origin: Origin, error: BaseException,
                       attempts: int) -> None:
        reason = f"{type(error).__name__}: {error}"
        failure = {"code": "exhausted" if isinstance(error, RETRYABLE) else "internal",
                   "message": reason}
        await self._quietly(self.store.append(command_failed(envelope, failure)))
        await self.dead_letter(f"{origin.topic}_dlq", {
            "envelope": envelope.model_dump(mode="json"), "error": reason, "attempts": attempts,
            "topic": origin.topic, "partition": origin.partition, "offset": origin.offset,
            "failed_at": time.time()})
        await self._quietly(self.registry.mark_failed(HANDLER, envelope.event_id, reason))
        await self._quietly(self.status.update(
            envelope.command_id, CommandStatus.FAILED, f"gave up after {attempts} attempts",
            error=failure))
        COMMANDS.inc(_type_name(envelope), "dead_lettered")

    @staticmethod
    async def _quietly(work: Awaitable[Any]) -> None:
        try:
            await work
        except Exception as error:  # noqa: BLE001 - best effort while failing
            log.warning("while recording a failure: %s", error)

    # ---- one attempt --------------------------------------------------------

    async def handle(self, envelope: Envelope, known_stored: bool = False) -> None:
        if not known_stored:
            envelope = await self._ensure_stored(envelope)
        claim = await self.registry.claim_when_free(HANDLER, envelope.event_id,
                                                    envelope.aggregate_id, envelope.sequence_number)
        if claim.outcome is ClaimOutcome.DONE:
            await self._report_done(envelope)
            return
        if claim.outcome is ClaimOutcome.STALE:
            await self._report_stale(envelope, claim)
            return
        crash_point("after_claim")
        beat = asyncio.create_task(self._heartbeat(envelope.event_id))
        try:
            await self._catch_up(envelope, claim.last_sequence)
            await self._apply(envelope, claim.attempt)
        except TRANSIENT_ERRORS as error:
            await self.give_back([envelope.event_id], str(error))
            raise
        finally:
            beat.cancel()

    async def give_back(self, event_ids: list[str], reason: str) -> None:
        """End this worker's claims on `event_ids` after a failed attempt, so that the
        next attempt (here or elsewhere) claims them at once. Only claims this worker
        still holds are touched: one another worker took over after our lease lapsed
        stays its own. If the registry cannot be reached, the leases lapse by themselves."""
        if not event_ids:
            return

        async def lapse(error: BaseException, attempts: int) -> None:
            log.warning("could not give back %d claims (%s); their leases lapse in %.0fs",
                        len(event_ids), error, self.registry.lease_seconds)

        await with_retries(lambda: self.registry.mark_failed_many(HANDLER, event_ids, reason),
                           what=f"giving back {len(event_ids)} claims",
                           max_attempts=GIVE_BACK_ATTEMPTS, base=0.2, give_up=lapse)

    async def _report_stale(self, envelope: Envelope, claim: Claim) -> None:
        if await self._recorded_events(envelope, command_type_of(envelope)):
            # Its own outcome is recorded: a command done long ago, delivered again after
            # the registry's retention removed its row (spice/stores/registry.py
            # `prune_finished`). The aggregate moved on because of it; report what it did.
            await self._report_done(envelope)
            return
        COMMANDS.inc(_type_name(envelope), "stale")
        await self.status.update(
            envelope.command_id, CommandStatus.FAILED, "stale sequence: the aggregate moved on",
            error={"code": "sequence_mismatch", "message":
                   f"aggregate is at {claim.last_sequence}, command has {envelope.sequence_number}"})

    async def _heartbeat(self, *event_ids: str) -> None:
        """Keep the leases while long work (a bulk create, a batch on a slow store) goes on."""
        while True:
            await asyncio.sleep(max(0.5, self.registry.lease_seconds / 3))
            try:
                await asyncio.gather(*[self.registry.heartbeat(HANDLER, e) for e in event_ids])
            except TRANSIENT_ERRORS as error:
                log.warning("heartbeat for %d claims failed: %s", len(event_ids), error)

    async def _ensure_stored(self, envelope: Envelope) -> Envelope:
        """A command produced straight to the topic is recorded before anything else."""
        stored = await self.store.get(envelope.event_id)
        if stored is not None:
            return stored
        return await self.store.append(envelope, allocate=envelope.sequence_number is None)

    async def _catch_up(self, envelope: Envelope, last: int) -> None:
        """Apply stored predecessors first, so a command lands on the sequence it was
        accepted against even when Kafka delivers it early."""
        seq = envelope.sequence_number
        if seq is None or seq <= last + 1:
            return
        deadline = time.monotonic() + self.gap_wait
        while True:
            async for earlier in self.store.read_aggregate(envelope.aggregate_id, after_seq=last):
                if earlier.sequence_number is None or earlier.sequence_number >= seq:
                    break
                if earlier.kind == "command":
                    await self.handle(earlier, known_stored=True)
            last = await self.registry.last_sequence(HANDLER, envelope.aggregate_id)
            if last + 1 >= seq or time.monotonic() > deadline:
                if last + 1 < seq:
                    log.warning("sequence gap on %s: %d..%d never stored; going on",
                                envelope.aggregate_id, last + 1, seq - 1)
                return
            await asyncio.sleep(0.1)

    async def _apply(self, envelope: Envelope, attempt: int) -> None:
        command = command_type_of(envelope)
        # Type, database and aggregate again: a command produced at topic level had no
        # PENDING record from the API to carry them.
        await self.status.update(envelope.command_id, CommandStatus.PROCESSING,
                                 f"processing (attempt {attempt})", progress=0.0,
                                 db=database_of(envelope), command_type=command.value,
                                 aggregate_id=envelope.aggregate_id)
        events = await self._recorded_events(envelope, command) if attempt > 1 else []
        result: dict[str, Any] = {}
        if events:
            failed = [e for e in events if e.event_type == EventType.COMMAND_FAILED]
            if failed:  # recorded by an earlier attempt that crashed before finishing
                await self._finish_rejected(envelope, failed[0].data["error"])
                return
        try:
            if command is CommandType.BULK_CREATE_INSTANCES:
                # Chunks are stored and applied as they go (progress); a retry redoes
                # only what its recorded events do not already cover.
                events, result = await self._run_bulk(envelope)
            else:
                if not events:
                    events, result = await self._decide(envelope, command)
                    events = await self._append_events(events)
                    crash_point("after_event_append")
                await self._apply_to_graph(events)
                crash_point("after_graph_write")
        except DomainError as error:
            await self._reject(envelope, error)
            return
        crash_point("before_mark_done")
        await self.registry.mark_done(HANDLER, envelope.event_id, envelope.aggregate_id,
                                      envelope.sequence_number)
        await self.status.update(
            envelope.command_id, CommandStatus.COMPLETED, "completed", progress=100.0,
            result={**result, "event_ids": [e.event_id for e in events][:100],
                    "sequence_number": envelope.sequence_number})
        COMMANDS.inc(_type_name(envelope), "completed")

    async def _append_events(self, events: list[Envelope]) -> list[Envelope]:
        return list(await asyncio.gather(*[self._append_one(e) for e in events]))

    async def _append_one(self, event: Envelope) -> Envelope:
        try:
            return await self.store.append(event)
        except EventIdConflict:
            # A crashed attempt stored a different version of this event (the state it
            # decided on has changed since): the stored one is the record.
            stored = await self.store.get(event.event_id)
            if stored is None:
                raise
            return stored

    async def _apply_to_graph(self, events: list[Envelope]) -> None:
        apply_many = getattr(self.graph, "apply_many", None)
        if apply_many is not None and len(events) > 1:
            await apply_many(events)
            return
        for event in events:
            await self.graph.apply(event)

    async def _reject(self, envelope: Envelope, error: DomainError) -> None:
        if await self._applied_elsewhere(envelope):
            # A zombie: this worker was paused past its lease (a GC pause, a frozen VM)
            # while another took the command over and applied it; deciding again now,
            # it meets the command's own effect ("already exists"). The applied outcome
            # is the record: no second event, no FAILED after COMPLETED.
            log.warning("command %s was applied by another worker while this one held it; "
                        "its late rejection (%s) is dropped", envelope.command_id, error)
            await self._report_done(envelope)
            return
        await self.store.append(command_failed(envelope, error.to_dict()))
        await self._finish_rejected(envelope, error.to_dict())

    async def _applied_elsewhere(self, envelope: Envelope) -> bool:
        """The command's success event is stored: another attempt applied it. (Its event
        is appended before the graph write, so a decision that saw the effect in the
        graph finds the event.) Only asked on a rejection, which is rare."""
        command = command_type_of(envelope)
        if command is CommandType.BULK_CREATE_INSTANCES:
            return False  # per-item outcomes: a bulk retry skips what is recorded
        return any(e.event_type != EventType.COMMAND_FAILED
                   for e in await self._recorded_events(envelope, command))

    async def _finish_rejected(self, envelope: Envelope, error: dict[str, Any]) -> None:
        await self.registry.mark_done(HANDLER, envelope.event_id, envelope.aggregate_id,
                                      envelope.sequence_number, error=str(error.get("message")))
        await self.status.update(envelope.command_id, CommandStatus.FAILED,
                                 str(error.get("message")), error=error)
        COMMANDS.inc(_type_name(envelope), "rejected")

    async def _recorded_events(self, envelope: Envelope, command: CommandType) -> list[Envelope]:
        if command is CommandType.BULK_CREATE_INSTANCES:
            data = envelope.data
            aggregates = [instance_aggregate(data["db"], data["class_id"], str(i.get("instance_id")))
                          for i in data.get("items", [])]
            candidates = [(EventType.INSTANCE_CREATED, a) for a in aggregates]
        else:
            candidates = [(SUCCESS_EVENTS[command], envelope.aggregate_id)]
        candidates.append((EventType.COMMAND_FAILED, envelope.aggregate_id))
        found = await asyncio.gather(*[
            self.store.get(domain_event_id(envelope.command_id, kind, aggregate))
            for kind, aggregate in candidates])
        return [e for e in found if e is not None]

    async def _report_done(self, envelope: Envelope) -> None:
        """A done command delivered again. Usually a duplicate, nothing to do; but if the
        worker that did it died (or lost Redis) between mark-done and its last status
        write, the status still says PROCESSING: restore the outcome from the events."""
        try:
            doc = await self.status.get(envelope.command_id)
        except UNAVAILABLE:
            doc = None
        if doc is not None and doc.get("status") in (CommandStatus.COMPLETED, CommandStatus.FAILED):
            return
        events = await self._recorded_events(envelope, command_type_of(envelope))
        failed = next((e for e in events if e.event_type == EventType.COMMAND_FAILED), None)
        if failed is not None:
            await self.status.update(envelope.command_id, CommandStatus.FAILED,
                                     str(failed.data.get("error", {}).get("message", "failed")),
                                     error=failed.data.get("error"))
        elif events:
            await self.status.update(envelope.command_id, CommandStatus.COMPLETED, "completed",
                                     progress=100.0, result={
                                         "event_ids": [e.event_id for e in events][:100],
                                         "sequence_number": envelope.sequence_number})

    # ---- decisions ----------------------------------------------------------

    async def _decide(self, envelope: Envelope, command: CommandType
                      ) -> tuple[list[Envelope], dict[str, Any]]:
        data, seq = envelope.data, envelope.sequence_number
        aggregate = AggregateType(envelope.aggregate_type)
        if aggregate is AggregateType.DATABASE:
            current = await state.database_state(self.graph, envelope.aggregate_id)
            drafts = decisions.decide_database(command, data, current, seq)
            return [stamp(envelope, d) for d in drafts], {"db": envelope.aggregate_id}
        db = str(data.get("db"))
        if aggregate is AggregateType.ONTOLOGY_CLASS:
            onto = await state.ontology_state(self.graph, db, command)
            drafts = decisions.decide_class(command, data, onto, seq)
            return [stamp(envelope, d) for d in drafts], {"db": db, "class_id": drafts[0].data["class_id"]}
        inst = await state.instance_state(self.graph, db, data, command)
        drafts = decisions.decide_instance(command, data, inst, seq)
        if command is not CommandType.DELETE_INSTANCE:
            await state.check_references(self.graph, db, inst.schema, data["class_id"],
                                         drafts[0].data["data"])
        return [stamp(envelope, d) for d in drafts], {
            "db": db, "class_id": data["class_id"], "instance_id": data["instance_id"]}

    async def _check_bulk_references(self, decided: decisions.BulkDecision,
                                     items: list[dict[str, Any]], db: str, class_id: str,
                                     inst: decisions.InstanceState) -> decisions.BulkDecision:
        """Relationship values must name existing instances, or instances this same
        batch creates; an item that names neither fails on its own."""
        if not inst.schema.effective_relationships(class_id):
            return decided
        index = {str(item.get("instance_id")): i for i, item in enumerate(items)}
        batch = {(class_id, str(d.data["instance_id"])) for d in decided.events}
        kept, errors = [], list(decided.item_errors)
        for draft in decided.events:
            i = index[str(draft.data["instance_id"])]
            try:
                await state.check_references(self.graph, db, inst.schema, class_id,
                                             draft.data["data"], f"items[{i}].data", batch)
                kept.append(draft)
            except DomainError as error:
                errors.append({"index": i, "instance_id": draft.data["instance_id"], **error.to_dict()})
        return decisions.BulkDecision(kept, sorted(errors, key=lambda e: e["index"]))

    async def _run_bulk(self, envelope: Envelope) -> tuple[list[Envelope], dict[str, Any]]:
        data = envelope.data
        items: list[dict[str, Any]] = data.get("items", [])
        db, class_id = data["db"], data["class_id"]
        inst = await state.instance_state(self.graph, db, data, CommandType.BULK_CREATE_INSTANCES)
        ids = [str(i.get("instance_id")) for i in items]
        recorded = {e.aggregate_id: e for e in await self._recorded_events(
            envelope, CommandType.BULK_CREATE_INSTANCES) if e.event_type == EventType.INSTANCE_CREATED}
        existing = await self.graph.existing_instances(db, class_id, ids)
        # An instance this command created in a crashed attempt is not "already existing".
        existing -= {e.data["instance_id"] for e in recorded.values()}
        decided = await self._check_bulk_references(
            decisions.decide_bulk(items, db, class_id, inst, existing), items, db, class_id, inst)
        events: list[Envelope] = []
        total = max(1, len(decided.events))
        for start in range(0, len(decided.events), BULK_CHUNK):
            chunk = [stamp(envelope, d) for d in decided.events[start:start + BULK_CHUNK]]
            stored = await self._append_events(chunk)
            await self._apply_to_graph(stored)
            events.extend(stored)
            done = min(len(decided.events), start + BULK_CHUNK)
            await self.status.update(envelope.command_id, CommandStatus.PROCESSING,
                                     f"{done}/{len(decided.events)} instances written",
                                     progress=round(100.0 * done / total, 1))
        return events, {"db": db, "class_id": class_id, "created": len(decided.events),
                        "failed": len(decided.item_errors), "errors": decided.item_errors[:1000]}
