"""Create the event-store bucket (with versioning) through the real S3 API."""
from __future__ import annotations

import asyncio

from spice.settings import Settings


async def _ensure(settings: Settings) -> None:
    from aiobotocore.session import get_session
    from botocore.exceptions import ClientError

    session = get_session()
    async with session.create_client(
        "s3",
        endpoint_url=settings.s3_endpoint_url,
        aws_access_key_id=settings.s3_access_key_id,
        aws_secret_access_key=settings.s3_secret_access_key,
        region_name=settings.s3_region,
    ) as s3:
        for attempt in range(40):
            try:
                await s3.head_bucket(Bucket=settings.event_store_bucket)
                return
            except ClientError as error:
                code = error.response.get("Error", {}).get("Code")
                if code not in ("404", "NoSuchBucket", "NotFound"):
                    if attempt == 39:
                        raise
                    await asyncio.sleep(0.25)
                    continue
            try:
                await s3.create_bucket(Bucket=settings.event_store_bucket)
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") != "BucketAlreadyOwnedByYou":
                    raise
            await s3.put_bucket_versioning(
                Bucket=settings.event_store_bucket,
                VersioningConfiguration={"Status": "Enabled"},
            )
            return


def ensure_bucket(settings: Settings) -> None:
    asyncio.run(_ensure(settings))
