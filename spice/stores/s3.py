"""An S3 client for the event store, opened once per process."""
from __future__ import annotations

from contextlib import AsyncExitStack
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session

from spice.settings import Settings


async def open_s3_client(settings: Settings, stack: AsyncExitStack) -> Any:
    config = AioConfig(
        max_pool_connections=64,
        connect_timeout=5,
        # A PUT must finish well inside the publisher's lookback window (see
        # docs/event-store.md), so a slow request is abandoned, never left hanging.
        read_timeout=10,
        retries={"max_attempts": 2, "mode": "standard"},
    )
    session = get_session()
    return await stack.enter_async_context(session.create_client(
        "s3",
        endpoint_url=settings.s3_endpoint_url,
        aws_access_key_id=settings.s3_access_key_id,
        aws_secret_access_key=settings.s3_secret_access_key.get_secret_value(),
        region_name=settings.s3_region,
        config=config,
    ))


def error_code(error: Exception) -> str:
    response = getattr(error, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


async def ensure_bucket(s3: Any, bucket: str) -> None:
    """Create the bucket (versioned) if it is missing; safe to call from every worker."""
    from botocore.exceptions import ClientError

    try:
        await s3.head_bucket(Bucket=bucket)
        return
    except ClientError as error:
        if error_code(error) not in ("404", "NoSuchBucket", "NotFound"):
            raise
    try:
        await s3.create_bucket(Bucket=bucket)
    except ClientError as error:
        if error_code(error) not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise
    await s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
