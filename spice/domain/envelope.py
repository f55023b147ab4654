"""The envelope: the one format stored in the event store and sent on Kafka."""
from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# Fixed namespace: domain event ids must be the same in every process, forever.
EVENT_NAMESPACE = uuid.UUID("6f1c7e1e-5b1a-4c55-9a53-3c1f0e6a8d21")
SCHEMA_VERSION = 1
# Metadata that may differ between two deliveries of one logical event.
VOLATILE_METADATA = frozenset({"traceparent", "attempt", "worker", "received_at"})


def now() -> datetime:
    return datetime.now(UTC)


def domain_event_id(command_id: str, event_type: str, aggregate_id: str) -> str:
    return str(uuid.uuid5(EVENT_NAMESPACE, f"{command_id}|{event_type}|{aggregate_id}"))


class Envelope(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: str = Field(min_length=1, max_length=100)
    event_type: str = Field(min_length=1, max_length=100)
    aggregate_type: str = Field(min_length=1, max_length=100)
    aggregate_id: str = Field(min_length=1, max_length=600)
    occurred_at: datetime
    actor: str = "system"
    data: dict[str, Any]
    metadata: dict[str, Any]
    schema_version: int = SCHEMA_VERSION
    sequence_number: int | None = Field(default=None, ge=0)

    @property
    def kind(self) -> Literal["command", "domain"]:
        return self.metadata.get("kind", "domain")  # type: ignore[no-any-return]

    @property
    def command_id(self) -> str:
        return str(self.metadata.get("command_id") or self.event_id)

    @property
    def topic(self) -> str:
        return str(self.metadata["kafka_topic"])

    def to_json(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def from_json(cls, raw: bytes | str) -> Envelope:
        return cls.model_validate_json(raw)

    def content(self) -> dict[str, Any]:
        """What makes two envelopes with one event_id 'the same event'."""
        # mode="json": the same values a JSON round trip gives, without the round trip.
        body = self.model_dump(mode="json", exclude={"occurred_at"})
        body["metadata"] = {k: v for k, v in body["metadata"].items()
                            if k not in VOLATILE_METADATA}
        return body  # type: ignore[no-any-return]

    def same_event(self, other: Envelope) -> bool:
        return self.event_id == other.event_id and self.content() == other.content()
