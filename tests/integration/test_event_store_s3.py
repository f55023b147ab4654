import asyncio

import pytest

from tests.contracts.event_store import EventStoreContract


class TestS3EventStore(EventStoreContract):
    @pytest.fixture
    def store(self, scratch):
        return scratch.event_store


async def test_signed_client_speaks_s3_like_botocore(scratch):
    """The event store's PUT/GET client against the real SeaweedFS: what it writes
    botocore reads, and S3's refusals arrive as ClientError codes the callers know."""
    import uuid

    from botocore.exceptions import ClientError

    from spice.stores.s3_signed import SignedS3

    signed, bucket = scratch.event_store.signed, scratch.settings.event_store_bucket
    key = f"tests/signed/{uuid.uuid4()}.jsonl"
    await signed.put_if_absent(bucket, key, b'{"x": 1}\n', "application/x-ndjson")
    head = await scratch.s3.head_object(Bucket=bucket, Key=key)
    assert head["ContentLength"] == 9 and head["ContentType"] == "application/x-ndjson"
    assert await signed.get(bucket, key) == b'{"x": 1}\n'

    with pytest.raises(ClientError) as again:
        await signed.put_if_absent(bucket, key, b"other")
    assert again.value.response["Error"]["Code"] == "PreconditionFailed"
    assert await signed.get(bucket, key) == b'{"x": 1}\n'  # create-only: unchanged
    with pytest.raises(ClientError) as missing:
        await signed.get(bucket, key + ".absent")
    assert missing.value.response["Error"]["Code"] == "NoSuchKey"

    wrong = SignedS3(scratch.settings.s3_endpoint_url, scratch.settings.s3_access_key_id,
                     "not-the-secret", scratch.settings.s3_region)
    with pytest.raises(ClientError) as refused:
        await wrong.get(bucket, key)
    assert refused.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
    await wrong.close()
    nobody = SignedS3("http://127.0.0.1:9", "a", "b", "us-east-1", connect_timeout=1)
    with pytest.raises(ConnectionError):
        await nobody.get(bucket, key)
    await nobody.close()


async def test_signed_listing_agrees_with_botocore(scratch):
    """Pages, start-after and continuation tokens of the signed client's ListObjectsV2
    give exactly botocore's keys, in the same order."""
    import uuid

    signed, bucket = scratch.event_store.signed, scratch.settings.event_store_bucket
    prefix = f"tests/listing/{uuid.uuid4()}/"
    names = [f"{prefix}{n:03d}-a&b.jsonl" for n in range(7)]  # '&' arrives XML-escaped
    await asyncio.gather(*[signed.put_if_absent(bucket, k, b"{}\n") for k in names])

    listed, token = [], None
    while True:
        keys, token = await signed.list_keys(bucket, prefix, token=token, max_keys=3)
        listed += keys
        if token is None:
            break
    assert listed == names
    after, _ = await signed.list_keys(bucket, prefix, start_after=names[2])
    theirs = await scratch.s3.list_objects_v2(Bucket=bucket, Prefix=prefix, StartAfter=names[2])
    assert after == [item["Key"] for item in theirs["Contents"]] == names[3:]
    assert await signed.list_keys(bucket, prefix + "none/") == ([], None)


async def test_index_listing_leaves_out_other_buckets_batches(scratch, runtime):
    """Two stores share the PostgreSQL index (tests, benchmarks): the index-driven
    listings (sweeper, publisher lookback) of one must not name the other's batches."""
    import time

    from tests.contracts.event_store import aggregate, envelope

    before = scratch.event_store.position_before(time.time() - 1)
    ours = await scratch.event_store.append(envelope(aggregate()), allocate=True)
    theirs = await runtime.event_store.append(envelope(aggregate()), allocate=True)
    assert scratch.settings.event_store_bucket != runtime.settings.event_store_bucket

    async def batch_of(event_id):
        async with scratch.pool.acquire() as conn:
            return await conn.fetchval("SELECT batch_key FROM event_index WHERE event_id = $1", event_id)

    ours_key, theirs_key = await batch_of(ours.event_id), await batch_of(theirs.event_id)
    for _ in range(50):  # marked stored (and tagged) just after the append returns
        async with scratch.pool.acquire() as conn:
            tagged = await conn.fetchval("SELECT count(*) FROM batch_buckets WHERE batch_key = ANY($1)",
                                         [ours_key, theirs_key])
        if tagged == 2:
            break
        await asyncio.sleep(0.05)
    listed = await scratch.event_store.indexed_batches(before, "~")
    assert ours_key in listed and theirs_key not in listed
    assert theirs_key in await runtime.event_store.indexed_batches(before, "~")


class _S3Away:
    """The store's S3 clients while S3 is away (`down`), the real ones after."""

    def __init__(self, s3, signed, error: OSError) -> None:
        self.s3, self.signed, self.error, self.down = s3, signed, error, True

    async def head_object(self, **kwargs):
        if self.down:
            raise ConnectionError("S3 away")
        return await self.s3.head_object(**kwargs)

    async def put_if_absent(self, *args, **kwargs):
        if self.down:
            raise self.error
        return await self.signed.put_if_absent(*args, **kwargs)

    async def get(self, *args, **kwargs):
        return await self.signed.get(*args, **kwargs)


@pytest.mark.parametrize("reached", [False, True])
async def test_an_append_s3_did_not_answer_is_settled_once_it_does(scratch, monkeypatch, reached):
    """A PUT S3 did not answer leaves its ids pending (neither stored nor free). The
    command's retry of the same envelope must not wait the one-minute grace for
    crashed writers: its own batch is settled as soon as S3 answers (at once if the PUT
    never reached S3, after IN_FLIGHT_SECONDS if it may still land), then stored."""
    import time

    from spice.stores import s3_event_store
    from spice.stores.errors import StoreUnavailable
    from spice.stores.s3_event_store import STORED, S3EventStore
    from spice.stores.s3_signed import Unreached
    from tests.contracts.event_store import aggregate, envelope

    monkeypatch.setattr(s3_event_store, "IN_FLIGHT_SECONDS", 1.5)
    error = ConnectionError("read timed out") if reached else Unreached("refused")
    away = _S3Away(scratch.event_store.s3, scratch.event_store.signed, error)
    store = S3EventStore(away, away, scratch.pool, scratch.settings.event_store_bucket)
    first = envelope(aggregate())
    with pytest.raises(StoreUnavailable):
        await store.append(first, allocate=True)
    async with scratch.pool.acquire() as conn:
        assert await conn.fetchval(f"SELECT {STORED} FROM event_index e WHERE event_id = $1",
                                   first.event_id) is False
    away.down = False
    started = time.monotonic()
    stored = await store.append(first, allocate=True)
    took = time.monotonic() - started
    assert stored.sequence_number == 1  # the undone batch gave its number back
    assert (await scratch.event_store.get(first.event_id)) == stored
    assert took < 5, f"{took:.1f}s: waited for the grace of crashed writers"
    assert (took >= 1.0) == reached, f"{took:.1f}s"
    await store.close()


async def test_a_put_that_never_connected_is_unreached():
    from spice.stores.s3_signed import SignedS3, Unreached

    nowhere = SignedS3("http://127.0.0.1:9", "k", "s", "us-east-1")  # nothing listens on 9
    try:
        with pytest.raises(Unreached):
            await nowhere.put_if_absent("bucket", "key", b"x")
    finally:
        await nowhere.close()


class _HeldPut:
    """The store's S3 clients with the batch PUT held back until `release` is set: a
    writer that died (or stalled) between reserving its batch and storing it."""

    def __init__(self, s3, signed) -> None:
        self.s3, self.signed, self.release = s3, signed, asyncio.Event()

    async def head_object(self, **kwargs):
        return await self.s3.head_object(**kwargs)

    async def put_if_absent(self, *args, **kwargs):
        await self.release.wait()
        return await self.signed.put_if_absent(*args, **kwargs)

    async def get(self, *args, **kwargs):
        return await self.signed.get(*args, **kwargs)


async def test_a_batch_left_pending_by_another_writer_is_settled_by_the_redelivery(
        scratch, monkeypatch):
    """Writer A reserves a batch and never stores it (SIGKILLed mid-append, or a PUT that
    hangs). The redelivered command's append in writer B waits only a few seconds, not
    the housekeeping timer's minute: B fences A's key and undoes the batch, then stores
    the envelope itself. A's PUT arriving late meets the fence: A hears "not stored",
    and the event is in the store once."""
    import time

    from spice.stores import s3_event_store
    from spice.stores.errors import StoreUnavailable
    from spice.stores.s3_event_store import S3EventStore
    from tests.contracts.event_store import aggregate, envelope

    monkeypatch.setattr(s3_event_store, "SETTLE_OTHERS_AFTER_SECONDS", 1.0)
    bucket = scratch.settings.event_store_bucket
    held = _HeldPut(scratch.event_store.s3, scratch.event_store.signed)
    writer_a = S3EventStore(held, held, scratch.pool, bucket)
    writer_b = S3EventStore(scratch.event_store.s3, scratch.event_store.signed, scratch.pool, bucket)
    first = envelope(aggregate())
    in_a = asyncio.create_task(writer_a.append(first, allocate=True))
    async with asyncio.timeout(10):
        while True:  # A has reserved: the id is taken, pending
            async with scratch.pool.acquire() as conn:
                key_a = await conn.fetchval("SELECT batch_key FROM event_index WHERE event_id = $1",
                                            first.event_id)
            if key_a:
                break
            await asyncio.sleep(0.05)
    started = time.monotonic()
    stored = await writer_b.append(first, allocate=True)
    took = time.monotonic() - started
    assert 1.0 <= took < 6, f"{took:.1f}s"
    assert await writer_b.signed.get(bucket, key_a) == b""  # fenced
    held.release.set()
    with pytest.raises(StoreUnavailable):
        await in_a
    async with scratch.pool.acquire() as conn:
        rows = await conn.fetch("SELECT batch_key FROM event_index WHERE event_id = $1", first.event_id)
    assert [r["batch_key"] for r in rows] != [key_a] and len(rows) == 1
    assert await scratch.event_store.get(first.event_id) == stored
    await writer_a.close()
    await writer_b.close()


async def test_a_batch_marked_stored_twice_is_recorded_in_the_audit_index_once(scratch):
    """Two processes may settle one batch (its writer and a redelivery's
    resolve_pending): the second finds the pending row gone and records nothing, so
    every event has one audit entry and each database's chain one link per event."""
    from tests.contracts.event_store import aggregate, envelope

    store = scratch.event_store
    stored = await store.append(envelope(aggregate()), allocate=True)
    async with scratch.pool.acquire() as conn:
        key = await conn.fetchval("SELECT batch_key FROM event_index WHERE event_id = $1",
                                  stored.event_id)
        for _ in range(50):
            if not await conn.fetchval("SELECT 1 FROM pending_batches WHERE batch_key = $1", key):
                break
            await asyncio.sleep(0.05)
        head_before = await conn.fetchrow("SELECT * FROM audit_chain_heads WHERE db = "
                                          "(SELECT db FROM audit_events WHERE batch_key = $1)", key)
    assert await store._mark_stored(key, await store.read_raw(key))  # settled again
    async with scratch.pool.acquire() as conn:
        entries = await conn.fetchval("SELECT count(*) FROM audit_events WHERE batch_key = $1", key)
        head_after = await conn.fetchrow("SELECT * FROM audit_chain_heads WHERE db = $1",
                                         head_before["db"])
    assert entries == len((await store.read_raw(key)).splitlines()) == 1
    assert head_after["chain_position"] == head_before["chain_position"]
    assert head_after["chain_hash"] == head_before["chain_hash"]
