"""Command and projection agents: decode, hand to a handler, ack when done.

Acks are manual: Faust commits a partition's offset only up to the first
message not yet acked, so concurrent lanes never commit past unfinished work.
"""
from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from spice.agents.lanes import Batches, InOrderAcks
from spice.app import app
from spice.domain.envelope import Envelope
from spice.handlers.commands import Origin
from spice.raw_topics import raw_topic
from spice.topics import COMMAND_TOPICS, EVENT_TOPICS

log = logging.getLogger(__name__)
MAX_IN_FLIGHT = 1000  # commands read ahead of the batch being applied
COMMAND_BATCH = 500
PROJECTION_BATCH = 500
PROJECTION_LINGER = 0.01  # seconds a partial batch waits for more events
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


def envelope_agent(topic_name: str, kind: str, process_batch: Callable[[], Any]) -> None:
    """An agent that hands envelopes of `kind` to `process_batch()` (resolved per batch,
    once the worker's stores are open) in batches of what arrived together, acking each
    message, in offset order, once its batch is done."""
    @app.agent(raw_topic(topic_name), name=f"spice.agents.{topic_name}")
    async def worker(stream: Any) -> None:
        manual = stream.noack()
        acks = InOrderAcks(manual.ack)

        async def run(items: list[tuple[Envelope, Origin, list[Any]]]) -> None:
            try:
                await process_batch()([(envelope, origin) for envelope, origin, _ in items])
            finally:
                for _, _, entry in items:
                    await acks.finished(entry)

        batches: Batches[tuple[Envelope, Origin, list[Any]]] = Batches(
            run, max_batch=COMMAND_BATCH, max_pending=MAX_IN_FLIGHT)
        try:
            async for event in manual.events():
                message = event.message
                entry = acks.started(event)
                try:
                    envelope = Envelope.from_json(event.value)
                    if envelope.kind != kind or (kind == "command"
                                                 and "command_type" not in envelope.metadata):
                        raise ValueError(f"not a {kind} envelope (metadata.kind/command_type)")
                except (ValidationError, ValueError, UnicodeDecodeError) as error:
                    await poison(f"{topic_name}_dlq", topic_name, message, error)
                    await acks.finished(entry)
                    continue
                headers = dict(message.headers or [])
                origin = Origin(message.topic, message.partition, message.offset,
                                from_store=headers.get("spice-stored") == b"1")
                await batches.put((envelope, origin, entry))
        finally:
            batches.cancel()


def projection_agent(topic_name: str) -> None:
    """Domain events in batches: the read model takes a batch in a few statements
    (claims, one folded write, mark-done) where one event at a time costs the same
    round trips per event. take_events acks a batch, in offset order, only once the
    loop body has returned, so a crash mid-batch redelivers the whole batch."""
    @app.agent(raw_topic(topic_name), name=f"spice.agents.{topic_name}")
    async def projector(stream: Any) -> None:
        async for events in stream.take_events(PROJECTION_BATCH, within=PROJECTION_LINGER):
            batch = []
            for event in events:
                message = event.message
                try:
                    envelope = Envelope.from_json(event.value)
                    if envelope.kind != "domain":
                        raise ValueError("not a domain event envelope (metadata.kind)")
                except (ValidationError, ValueError, UnicodeDecodeError) as error:
                    await poison(PROJECTION_DLQ, topic_name, message, error)
                    continue
                batch.append((envelope, Origin(message.topic, message.partition, message.offset)))
            if batch:
                await app.runtime.projector.process_batch(batch)


for _name in COMMAND_TOPICS:
    envelope_agent(_name, "command", lambda: app.runtime.handler.process_batch)
for _name in EVENT_TOPICS:
    projection_agent(_name)
