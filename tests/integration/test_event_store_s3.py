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
