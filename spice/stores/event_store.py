"""The EventStore port: append-only, idempotent by event_id, sequenced per aggregate.

Adapters: `S3EventStore` (the source of truth, spice/stores/s3_event_store.py)
and `InMemoryEventStore` below, for unit tests of pure logic.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from spice.domain.envelope import Envelope
from spice.stores.errors import EventIdConflict, SequenceConflict


@dataclass(frozen=True)
class Batch:
    """Envelopes stored together; `position` orders batches in time (replay resumes after it)."""

    position: str
    envelopes: list[Envelope]


class EventStore(Protocol):
    async def append(self, envelope: Envelope, *, allocate: bool = False,
                     expected_seq: int | None = None) -> Envelope:
        """Store an envelope; return what is stored (with its sequence number).

        allocate: give it the aggregate's next sequence number; with expected_seq,
        only if the aggregate's last sequence is expected_seq (else SequenceConflict,
        and nothing is stored). The same event_id again is a no-op returning the
        stored envelope; a different payload under a stored id is EventIdConflict.
        """
        ...

    async def get(self, event_id: str) -> Envelope | None: ...

    def read_aggregate(self, aggregate_id: str, after_seq: int = 0) -> AsyncIterator[Envelope]:
        """The aggregate's envelopes in sequence order, streamed."""
        ...

    def replay(self, after: str | None = None) -> AsyncIterator[Batch]:
        """Every stored batch in time order, from after a position, streamed."""
        ...

    async def last_sequence(self, aggregate_id: str) -> int: ...

    def position_before(self, at: float) -> str:
        """A position that every batch stored at or after time `at` comes after."""
        ...


def content_hash(envelope: Envelope) -> str:
    """The identity of an event's payload; the sequence number is compared apart
    because an allocated append learns its number only inside the store."""
    body = envelope.content()
    body.pop("sequence_number", None)
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def check_duplicate(stored: Envelope, incoming: Envelope, allocate: bool) -> Envelope:
    if content_hash(stored) != content_hash(incoming):
        raise EventIdConflict(incoming.event_id)
    if not allocate and stored.sequence_number != incoming.sequence_number:
        raise EventIdConflict(incoming.event_id)
    return stored


class InMemoryEventStore:
    """Same contract as the S3 adapter, for unit tests; one batch per append."""

    def __init__(self) -> None:
        self.batches: list[Batch] = []
        self.by_id: dict[str, Envelope] = {}
        self.sequences: dict[str, int] = {}
        self._counter = itertools.count()

    async def append(self, envelope: Envelope, *, allocate: bool = False,
                     expected_seq: int | None = None) -> Envelope:
        stored = self.by_id.get(envelope.event_id)
        if stored is not None:
            return check_duplicate(stored, envelope, allocate)
        if allocate:
            last = self.sequences.get(envelope.aggregate_id, 0)
            if expected_seq is not None and expected_seq != last:
                raise SequenceConflict(envelope.aggregate_id, expected_seq, last)
            envelope = envelope.model_copy(update={"sequence_number": last + 1})
            self.sequences[envelope.aggregate_id] = last + 1
        self.by_id[envelope.event_id] = envelope
        position = f"{int(time.time() * 1_000_000):016d}-{next(self._counter):08d}"
        self.batches.append(Batch(position, [envelope]))
        return envelope

    async def get(self, event_id: str) -> Envelope | None:
        return self.by_id.get(event_id)

    async def read_aggregate(self, aggregate_id: str, after_seq: int = 0) -> AsyncIterator[Envelope]:
        matching = [e for e in self.by_id.values() if e.aggregate_id == aggregate_id
                    and (e.sequence_number or 0) > after_seq]
        for envelope in sorted(matching, key=lambda e: (e.sequence_number or 0, e.event_id)):
            yield envelope

    async def replay(self, after: str | None = None) -> AsyncIterator[Batch]:
        for batch in self.batches:
            if after is None or batch.position > after:
                yield batch

    async def last_sequence(self, aggregate_id: str) -> int:
        return self.sequences.get(aggregate_id, 0)

    def position_before(self, at: float) -> str:
        return f"{int(at * 1_000_000):016d}"
