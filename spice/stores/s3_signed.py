"""A small SigV4 client for the event store's hot S3 calls: create-only PUT, GET and
the listing of batch keys (the publisher's catch-up and a rebuild's replay).

Why not aiobotocore for these: botocore spends about 4 ms of CPU on every request
(event hooks, endpoint rules, user-agent assembly, response parsing) on this
2-core machine, more than SeaweedFS takes to store the object. Every append and
every publisher read pays it on the event loop that also serves the API and the
agents. This client signs with AWS Signature Version 4 (path-style URLs, signed
payload hash) over one shared aiohttp session, about 0.2 ms a request.

Everything else (HEAD, buckets, checkpoints) stays on aiobotocore. Errors
look like botocore's, so callers keep one set of except clauses:
- an S3 error answer raises botocore's ClientError with the S3 error code;
- a connection failure or timeout raises ConnectionError (an OSError), and
  `Unreached` (a ConnectionError) when no attempt got as far as a connection: the
  request cannot have reached S3, so it cannot land later either.
"""
from __future__ import annotations

import hashlib
import hmac
import re
from datetime import UTC, datetime
from urllib.parse import quote, urlparse
from xml.sax.saxutils import unescape

import aiohttp
from botocore.exceptions import ClientError
from yarl import URL

from spice.settings import Settings

ALGORITHM = "AWS4-HMAC-SHA256"
SIGNED_HEADERS = "host;x-amz-content-sha256;x-amz-date"
_CODE = re.compile(rb"<Code>([^<]+)</Code>")
_MESSAGE = re.compile(rb"<Message>([^<]*)</Message>")
_KEY = re.compile(rb"<Key>([^<]*)</Key>")
_NEXT_TOKEN = re.compile(rb"<NextContinuationToken>([^<]*)</NextContinuationToken>")
_TRUNCATED = re.compile(rb"<IsTruncated>true</IsTruncated>")


class Unreached(ConnectionError):
    """No attempt connected: S3 never saw the request."""


def canonical_query(query: dict[str, str]) -> str:
    """SigV4's canonical query string; the request URL carries exactly this string."""
    return "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}"
                    for k, v in sorted(query.items()))


class SignedS3:
    def __init__(self, endpoint_url: str, access_key: str, secret_key: str, region: str, *,
                 connect_timeout: float = 5, read_timeout: float = 10, limit: int = 64) -> None:
        parsed = urlparse(endpoint_url)
        self.base = f"{parsed.scheme}://{parsed.netloc}"
        self.host = parsed.netloc
        self.access_key, self.secret_key, self.region = access_key, secret_key, region
        self.timeout = aiohttp.ClientTimeout(total=None, connect=connect_timeout,
                                             sock_read=read_timeout)
        self.limit = limit
        self._session: aiohttp.ClientSession | None = None
        self._keys: dict[str, bytes] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> SignedS3:
        return cls(settings.s3_endpoint_url, settings.s3_access_key_id,
                   settings.s3_secret_access_key.get_secret_value(), settings.s3_region)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _session_now(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=self.timeout, connector=aiohttp.TCPConnector(limit=self.limit),
                skip_auto_headers=("User-Agent", "Content-Type"), auto_decompress=False)
        return self._session

    # ---- the two calls -------------------------------------------------------

    async def put_if_absent(self, bucket: str, key: str, body: bytes,
                            content_type: str = "application/octet-stream") -> None:
        """PUT with If-None-Match: *. An existing key raises ClientError PreconditionFailed."""
        await self._request("PUT", bucket, key, body,
                            {"If-None-Match": "*", "Content-Type": content_type}, "PutObject")

    async def get(self, bucket: str, key: str) -> bytes:
        """The object's bytes; a missing key raises ClientError NoSuchKey."""
        return await self._request("GET", bucket, key, b"", {}, "GetObject")

    async def list_keys(self, bucket: str, prefix: str, *, start_after: str | None = None,
                        token: str | None = None, max_keys: int = 1000
                        ) -> tuple[list[str], str | None]:
        """One ListObjectsV2 page: (keys in order, the continuation token if there are more).
        botocore's XML parsing cost ~0.3 ms a key; a regex over the answer a few µs."""
        query = {"list-type": "2", "prefix": prefix, "max-keys": str(max_keys)}
        if start_after:
            query["start-after"] = start_after
        if token:
            query["continuation-token"] = token
        content = await self._request("GET", bucket, "", b"", {}, "ListObjectsV2", query)
        keys = [unescape(k.decode()) for k in _KEY.findall(content)]
        following = _NEXT_TOKEN.search(content) if _TRUNCATED.search(content) else None
        return keys, unescape(following.group(1).decode()) if following else None

    # ---- signing ---------------------------------------------------------------

    def _signing_key(self, day: str) -> bytes:
        key = self._keys.get(day)
        if key is None:
            key = f"AWS4{self.secret_key}".encode()
            for part in (day, self.region, "s3", "aws4_request"):
                key = hmac.new(key, part.encode(), hashlib.sha256).digest()
            self._keys = {day: key}  # one day's key is all that is ever needed
        return key

    def sign(self, method: str, path: str, payload_hash: str, at: datetime,
             query: str = "") -> dict[str, str]:
        """The headers that authenticate one request (exposed for the unit test)."""
        stamp = at.strftime("%Y%m%dT%H%M%SZ")
        day = stamp[:8]
        canonical = "\n".join([
            method, path, query,
            f"host:{self.host}", f"x-amz-content-sha256:{payload_hash}", f"x-amz-date:{stamp}", "",
            SIGNED_HEADERS, payload_hash])
        scope = f"{day}/{self.region}/s3/aws4_request"
        to_sign = "\n".join([ALGORITHM, stamp, scope,
                             hashlib.sha256(canonical.encode()).hexdigest()])
        signature = hmac.new(self._signing_key(day), to_sign.encode(), hashlib.sha256).hexdigest()
        return {
            "x-amz-date": stamp,
            "x-amz-content-sha256": payload_hash,
            "Authorization": (f"{ALGORITHM} Credential={self.access_key}/{scope}, "
                              f"SignedHeaders={SIGNED_HEADERS}, Signature={signature}"),
        }

    async def _request(self, method: str, bucket: str, key: str, body: bytes,
                       headers: dict[str, str], operation: str,
                       query: dict[str, str] | None = None) -> bytes:
        path = "/" + quote(f"{bucket}/{key}" if key else bucket, safe="/-_.~")
        payload_hash = hashlib.sha256(body).hexdigest()
        encoded_query = canonical_query(query) if query else ""
        url = URL(self.base + path + (f"?{encoded_query}" if encoded_query else ""), encoded=True)
        reached = False
        for attempt in (1, 2):
            all_headers = {**headers, **self.sign(method, path, payload_hash, datetime.now(UTC),
                                                  encoded_query)}
            try:
                async with self._session_now().request(
                        method, url, data=body if method == "PUT" else None,
                        headers=all_headers) as response:
                    content = await response.read()
                    status = response.status
                    request_id = response.headers.get("x-amz-request-id", "")
                break
            except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as error:
                # A pooled connection the server had just closed: one more try on a
                # fresh one, as botocore's retry did. A create-only PUT that had in fact
                # landed answers 412 then, which the event store checks with a HEAD.
                reached = reached or not isinstance(error, aiohttp.ClientConnectorError)
                if attempt == 2:
                    raise _connection_failure(reached, operation, key, error) from error
            except (TimeoutError, aiohttp.ClientError) as error:
                reached = reached or not isinstance(error, aiohttp.ClientConnectorError)
                raise _connection_failure(reached, operation, key, error) from error
        if status < 300:
            return content
        raise _client_error(status, content, operation, request_id)


def _connection_failure(reached: bool, operation: str, key: str, error: BaseException
                        ) -> ConnectionError:
    kind = ConnectionError if reached else Unreached
    return kind(f"S3 {operation} {key}: {type(error).__name__} {error}")


def _client_error(status: int, content: bytes, operation: str, request_id: str) -> ClientError:
    code = _CODE.search(content)
    message = _MESSAGE.search(content)
    fallback = {404: "NoSuchKey", 412: "PreconditionFailed"}.get(status, str(status))
    return ClientError({
        "Error": {"Code": code.group(1).decode() if code else fallback,
                  "Message": message.group(1).decode() if message else ""},
        "ResponseMetadata": {"HTTPStatusCode": status, "RequestId": request_id},
    }, operation)
