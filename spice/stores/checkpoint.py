"""The publisher's durable checkpoint, kept in S3 (the one object that is overwritten)."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from spice.stores.s3 import error_code


@dataclass
class Checkpoint:
    # Every batch at or before `position` is published, except that batches landing
    # late behind it are caught by the lookback scan; `recent` remembers what was
    # published inside the lookback window so the scan does not publish them again.
    position: str | None = None
    recent: set[str] = field(default_factory=set)
    # Where this checkpoint began: nothing before it was ever promised, so the
    # lookback never reaches behind it.
    floor: str | None = None

    def to_json(self) -> bytes:
        return json.dumps({"position": self.position, "recent": sorted(self.recent),
                           "floor": self.floor, "saved_at": time.time()}).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Checkpoint:
        body = json.loads(raw)
        return cls(body.get("position"), set(body.get("recent", [])), body.get("floor"))

    def prune(self, horizon: str) -> None:
        self.recent = {key for key in self.recent if key >= horizon}


class CheckpointStore:
    def __init__(self, s3: Any, bucket: str, key: str) -> None:
        self.s3, self.bucket, self.key = s3, bucket, key

    async def load(self) -> Checkpoint | None:
        try:
            response = await self.s3.get_object(Bucket=self.bucket, Key=self.key)
            async with response["Body"] as stream:
                return Checkpoint.from_json(await stream.read())
        except ClientError as error:
            if error_code(error) in ("NoSuchKey", "404", "NotFound"):
                return None
            raise

    async def save(self, checkpoint: Checkpoint) -> None:
        await self.s3.put_object(Bucket=self.bucket, Key=self.key, Body=checkpoint.to_json(),
                                 ContentType="application/json")
