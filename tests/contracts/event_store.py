"""The EventStore contract: every adapter passes these same tests.

Subclass with a `store` fixture returning a fresh-enough adapter; tests use
unique aggregate ids, so a shared backend is fine.
"""
import asyncio
import time
import uuid

import pytest

from spice.domain.envelope import Envelope, now
from spice.stores.errors import EventIdConflict, SequenceConflict


def envelope(aggregate_id: str, *, event_id: str | None = None, data: dict | None = None,
             seq: int | None = None) -> Envelope:
    event_id = event_id or str(uuid.uuid4())
    return Envelope(event_id=event_id, event_type="THING_REQUESTED", aggregate_type="Thing",
                    aggregate_id=aggregate_id, occurred_at=now(), actor="test",
                    data=data or {"n": 1},
                    metadata={"kind": "command", "command_id": event_id, "kafka_topic": "publisher_test"},
                    sequence_number=seq)


def aggregate() -> str:
    return f"agg-{uuid.uuid4().hex[:12]}"


class EventStoreContract:
    async def test_allocates_sequences_in_order(self, store):
        agg = aggregate()
        stored = [await store.append(envelope(agg), allocate=True) for _ in range(3)]
        assert [e.sequence_number for e in stored] == [1, 2, 3]
        assert await store.last_sequence(agg) == 3

    async def test_expected_seq_mismatch_stores_nothing(self, store):
        agg = aggregate()
        await store.append(envelope(agg), allocate=True, expected_seq=0)
        rejected = envelope(agg)
        with pytest.raises(SequenceConflict) as error:
            await store.append(rejected, allocate=True, expected_seq=0)
        assert (error.value.expected, error.value.actual) == (0, 1)
        assert await store.get(rejected.event_id) is None
        assert await store.last_sequence(agg) == 1

    async def test_same_event_again_is_a_noop_returning_the_stored_one(self, store):
        agg = aggregate()
        first = await store.append(envelope(agg, event_id="e-" + agg), allocate=True)
        again = await store.append(envelope(agg, event_id="e-" + agg), allocate=True)
        assert again == first and again.sequence_number == 1
        assert await store.last_sequence(agg) == 1

    async def test_different_payload_under_a_stored_id_is_an_error(self, store):
        agg = aggregate()
        await store.append(envelope(agg, event_id="x-" + agg, data={"n": 1}), allocate=True)
        with pytest.raises(EventIdConflict):
            await store.append(envelope(agg, event_id="x-" + agg, data={"n": 2}), allocate=True)

    async def test_explicit_sequence_is_kept(self, store):
        agg = aggregate()
        stored = await store.append(envelope(agg, seq=7))
        assert stored.sequence_number == 7

    async def test_read_aggregate_in_sequence_order(self, store):
        agg = aggregate()
        written = [await store.append(envelope(agg, data={"i": i}), allocate=True) for i in range(5)]
        read = [e async for e in store.read_aggregate(agg)]
        assert read == written
        assert [e.data["i"] async for e in store.read_aggregate(agg, after_seq=3)] == [3, 4]

    async def test_get(self, store):
        stored = await store.append(envelope(aggregate()), allocate=True)
        assert await store.get(stored.event_id) == stored
        assert await store.get(str(uuid.uuid4())) is None

    async def test_concurrent_appends_with_one_expected_seq_exactly_one_wins(self, store):
        agg = aggregate()
        results = await asyncio.gather(
            *[store.append(envelope(agg), allocate=True, expected_seq=0) for _ in range(20)],
            return_exceptions=True)
        winners = [r for r in results if isinstance(r, Envelope)]
        assert len(winners) == 1 and winners[0].sequence_number == 1
        assert all(isinstance(r, SequenceConflict) for r in results if r not in winners)
        assert [e.event_id async for e in store.read_aggregate(agg)] == [winners[0].event_id]

    async def test_concurrent_appends_of_one_event_id_store_one_envelope(self, store):
        agg = aggregate()
        same = envelope(agg, event_id="dup-" + agg)
        results = await asyncio.gather(*[store.append(same, allocate=True) for _ in range(20)])
        assert {r.sequence_number for r in results} == {1}
        assert len([e async for e in store.read_aggregate(agg)]) == 1

    async def test_replay_returns_everything_in_time_order(self, store):
        agg = aggregate()
        start = store.position_before(time.time() - 1)
        written = [await store.append(envelope(agg, data={"i": i}), allocate=True) for i in range(3)]
        seen = []
        positions = []
        async for batch in store.replay(after=start):
            positions.append(batch.position)
            seen.extend(e.event_id for e in batch.envelopes if e.aggregate_id == agg)
        assert seen == [e.event_id for e in written]
        assert positions == sorted(positions)
