"""Command and projection agents: decode, hand to a handler, ack when done.

Acks are manual: Faust commits a partition's offset only up to the first
message not yet acked, so concurrent lanes never commit past unfinished work.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from spice.agents import intake
from spice.agents.drain import drain
from spice.agents.lanes import Batches, InOrderAcks, KeyedLanes
from spice.app import app
from spice.domain.envelope import Envelope
from spice.handlers.command_batch import split
from spice.handlers.commands import Origin
from spice.handlers.projections import Finish
from spice.raw_topics import raw_topic
from spice.stores.status import CommandStatus
from spice.topics import COMMAND_TOPICS, EVENT_TOPICS

log = logging.getLogger(__name__)
MAX_READ_AHEAD = 1000  # commands read while the batch before them is applied
COMMAND_BATCH = 500
MAX_ONE_BY_ONE = 256  # commands in the per-aggregate lanes at once
PROJECTION_BATCH = 500
PROJECTION_DLQ = "projection_failures_dlq"


async def poison(dlq: str, topic: str, message: Any, error: Exception) -> None:
    """An undecodable message: to the DLQ with its raw bytes; the agent keeps going."""
    raw = message.value if isinstance(message.value, bytes) else bytes(message.value or b"")
    key = message.key if isinstance(message.key, bytes) else None
    payload = {"raw": raw.decode("utf-8", errors="backslashreplace"), "error": str(error)[:2000],
               "key": None if key is None else key.decode("utf-8", errors="backslashreplace"),
               "topic": topic, "partition": message.partition, "offset": message.offset,
               "failed_at": time.time(), "attempts": 0}
    await app.runtime.producer.send_and_wait(dlq, json.dumps(payload).encode())
    log.warning("poison message %s[%s]@%s to the DLQ: %s", topic, message.partition,
                message.offset, error)
    if topic in COMMAND_TOPICS:
        stored = dict(message.headers or []).get("spice-stored") == b"1"
        await fail_refused(raw, str(error), getattr(error, "field", None), stored)


async def fail_refused(raw: bytes, reason: str, field: str | None = None,
                       stored: bool = False) -> None:
    """A refused command that names itself gets a FAILED status with the reason, so its
    sender does not wait on PENDING forever. Only a command nobody has a status for, or
    one read from the event store (the publisher's own message, so the PENDING status is
    its own): an id another command holds must not let garbage overwrite its outcome."""
    named = intake.named_command(raw)
    if named is None:
        return
    command_id, db, command_type = named
    error = {"code": "invalid", "message": reason[:1000], **({"field": field} if field else {})}
    try:
        current = await app.runtime.status.get(command_id)
        if current is None or (stored and current.get("status") == CommandStatus.PENDING):
            await app.runtime.status.update(
                command_id, CommandStatus.FAILED, "refused at intake", error=error, db=db,
                command_type=command_type)
    except Exception as failure:  # noqa: BLE001 - the DLQ holds it either way
        log.warning("refused command %s: status not recorded: %s", command_id, failure)


def envelope_agent(topic_name: str, kind: str, handler: Callable[[], Any]) -> None:
    """An agent that hands envelopes of `kind` to `handler()` (resolved per batch, once
    the worker's stores are open): in batches of what arrived together, and what cannot
    join a batch in per-aggregate lanes; each message is acked, in offset order, once
    it is done."""
    @app.agent(raw_topic(topic_name), name=f"spice.agents.{topic_name}")
    async def worker(stream: Any) -> None:
        manual = stream.noack()
        acks = InOrderAcks(manual.ack)
        lanes = KeyedLanes(MAX_ONE_BY_ONE)

        async def one_by_one(envelope: Envelope, origin: Origin, entry: list[Any]) -> None:
            async def work() -> None:
                try:
                    await handler().process(envelope, origin)
                finally:
                    await acks.finished(entry)

            await lanes.submit(envelope.aggregate_id, work)

        async def run(items: list[tuple[Envelope, Origin, list[Any]]]) -> None:
            entries = {id(envelope): entry for envelope, _, entry in items}
            batch, rest = split([(envelope, origin) for envelope, origin, _ in items], lanes.busy)
            leftovers: list[tuple[Envelope, Origin]] = []
            try:
                leftovers = await handler().process_batch(batch) if batch else []
            except Exception:  # noqa: BLE001 - process_batch hands back what it could not do
                log.exception("a batch of %d commands failed; each goes alone", len(batch))
                leftovers = batch
            finally:
                left = {id(envelope) for envelope, _ in leftovers}
                for envelope, _ in batch:
                    if id(envelope) not in left:
                        await acks.finished(entries[id(envelope)])
            # A leftover is its aggregate's first command here, so it goes first.
            for envelope, origin in leftovers + rest:
                await one_by_one(envelope, origin, entries[id(envelope)])

        batches: Batches[tuple[Envelope, Origin, list[Any]]] = Batches(
            run, max_batch=COMMAND_BATCH, max_pending=MAX_READ_AHEAD)

        async def finish_in_flight() -> None:
            await batches.drain()
            await lanes.drain()

        def cut_off() -> None:
            batches.cancel()
            lanes.cancel()

        part = drain.register(topic_name, finish_in_flight, cut_off)
        try:
            async for event in manual.events():
                await drain.hold()
                message = event.message
                entry = acks.started(event)
                try:
                    envelope = intake.decode(event.value, kind)
                except (ValidationError, ValueError, UnicodeDecodeError) as error:
                    await poison(f"{topic_name}_dlq", topic_name, message, error)
                    await acks.finished(entry)
                    continue
                headers = dict(message.headers or [])
                origin = Origin(message.topic, message.partition, message.offset,
                                from_store=headers.get("spice-stored") == b"1")
                await batches.put((envelope, origin, entry))
        finally:
            drain.unregister(part)
            batches.cancel()


def projection_agent(topic_name: str) -> None:
    """Domain events in batches: the read model takes a batch in a few statements
    (claims, one folded write, mark-done) where one event at a time costs the same round
    trips per event. A batch is what arrived while the one before it was written (a
    lone event goes at once). Its read-model write starts while the batch before it is
    still being marked done and reported searchable: each of the three steps is mostly a
    round trip (~25 ms each for 340 events), and the worker sat at half a core. The
    finishes run one at a time, in order, and a message is acked, in offset order, only
    once its batch is finished, so a crash redelivers whatever was not."""
    @app.agent(raw_topic(topic_name), name=f"spice.agents.{topic_name}")
    async def projector(stream: Any) -> None:
        manual = stream.noack()
        acks = InOrderAcks(manual.ack)
        finishing: asyncio.Task[None] | None = None

        async def finish_then_ack(finish: Finish, entries: list[list[Any]]) -> None:
            try:
                await finish()
            except Exception:  # noqa: BLE001 - a finish owns its errors; the next must still run
                log.exception("finishing a projection batch of %d failed", len(entries))
            finally:
                # Acked even after a failure: the registry still has the events unfinished,
                # and the sweeper sends such stored events again.
                for entry in entries:
                    await acks.finished(entry)

        async def run(items: list[tuple[Envelope, Origin, list[Any]]]) -> None:
            nonlocal finishing
            finish = await app.runtime.projector.start_batch([(e, o) for e, o, _ in items])
            if finishing is not None:
                await finishing  # the batch before finishes (and is acked) first
            finishing = asyncio.create_task(finish_then_ack(finish, [entry for *_, entry in items]))

        batches: Batches[tuple[Envelope, Origin, list[Any]]] = Batches(
            run, max_batch=PROJECTION_BATCH, max_pending=2 * PROJECTION_BATCH)

        async def finish_in_flight() -> None:
            await batches.drain()
            if finishing is not None:
                await asyncio.shield(finishing)

        def cut_off() -> None:
            batches.cancel()
            if finishing is not None:
                finishing.cancel()

        part = drain.register(topic_name, finish_in_flight, cut_off)
        try:
            async for event in manual.events():
                await drain.hold()
                message = event.message
                entry = acks.started(event)
                try:
                    envelope = intake.decode(event.value, "domain")
                except (ValidationError, ValueError, UnicodeDecodeError) as error:
                    await poison(PROJECTION_DLQ, topic_name, message, error)
                    await acks.finished(entry)
                    continue
                await batches.put((envelope, Origin(message.topic, message.partition,
                                                    message.offset), entry))
        finally:
            drain.unregister(part)
            batches.cancel()
            if finishing is not None:
                finishing.cancel()


for _name in COMMAND_TOPICS:
    envelope_agent(_name, "command", lambda: app.runtime.handler)
for _name in EVENT_TOPICS:
    projection_agent(_name)
