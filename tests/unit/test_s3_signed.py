"""The small SigV4 signer agrees with botocore's on the same request."""
from datetime import UTC, datetime
from unittest import mock

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from spice.stores.s3_signed import SignedS3, _client_error

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("method,body", [("PUT", b'{"a": 1}\n'), ("GET", b"")])
def test_signature_matches_botocore(method: str, body: bytes) -> None:
    import hashlib

    at = datetime(2026, 11, 26, 17, 30, 5, tzinfo=UTC)
    client = SignedS3("http://127.0.0.1:18333", "AKID", "secret/key", "us-east-1")
    path = "/spice-events/events/2026/11/26/17/0001764178205000000-abc-00000001.jsonl"
    payload_hash = hashlib.sha256(body).hexdigest()
    ours = client.sign(method, path, payload_hash, at)

    request = AWSRequest(method=method, url=f"http://127.0.0.1:18333{path}", data=body,
                         headers={"x-amz-content-sha256": payload_hash})
    signer = S3SigV4Auth(Credentials("AKID", "secret/key"), "s3", "us-east-1")
    with mock.patch("botocore.auth.get_current_datetime", return_value=at.replace(tzinfo=None)):
        signer.add_auth(request)
    assert request.headers["X-Amz-Date"] == ours["x-amz-date"]
    theirs = request.headers["Authorization"]
    assert theirs.split("Signature=")[1] == ours["Authorization"].split("Signature=")[1], theirs


def test_error_answer_becomes_client_error_with_s3_code() -> None:
    body = b"<Error><Code>PreconditionFailed</Code><Message>nope</Message></Error>"
    error = _client_error(412, body, "PutObject", "r1")
    assert error.response["Error"] == {"Code": "PreconditionFailed", "Message": "nope"}
    assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    # A HEAD-like answer without a body still names a code.
    assert _client_error(404, b"", "GetObject", "").response["Error"]["Code"] == "NoSuchKey"


def test_listing_signature_matches_botocore() -> None:
    """A query string is part of what is signed: sorted, RFC 3986-encoded ('/' too)."""
    import hashlib

    from spice.stores.s3_signed import canonical_query

    at = datetime(2026, 11, 26, 17, 30, 5, tzinfo=UTC)
    client = SignedS3("http://127.0.0.1:18333", "AKID", "secret/key", "us-east-1")
    query = {"list-type": "2", "prefix": "events/", "max-keys": "1000",
             "start-after": "events/2026/11/26/17/0001764178205000000-a b+c-00000001.jsonl"}
    encoded = canonical_query(query)
    assert encoded.startswith("list-type=2&max-keys=1000&prefix=events%2F&start-after=events%2F")
    payload_hash = hashlib.sha256(b"").hexdigest()
    ours = client.sign("GET", "/spice-events", payload_hash, at, encoded)
    request = AWSRequest(method="GET", url=f"http://127.0.0.1:18333/spice-events?{encoded}",
                         headers={"x-amz-content-sha256": payload_hash})
    signer = S3SigV4Auth(Credentials("AKID", "secret/key"), "s3", "us-east-1")
    with mock.patch("botocore.auth.get_current_datetime", return_value=at.replace(tzinfo=None)):
        signer.add_auth(request)
    theirs = request.headers["Authorization"]
    assert theirs.split("Signature=")[1] == ours["Authorization"].split("Signature=")[1], theirs
