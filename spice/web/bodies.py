"""The HTTP API's request bodies and answers as pydantic models: the write handlers parse
bodies with them (spice.domain.parsing: every error names its field), and the OpenAPI
document (spice/web/openapi.py) takes its schemas from them."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

SEQ_MAX = 2**63 - 1


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InstanceCreate(Body):
    """An instance to create: its id and its property values (by property name)."""

    instance_id: str = Field(min_length=1, max_length=200, examples=["p1"])
    data: dict[str, Any] = Field(examples=[{"name": "Ann", "age": 31}])
    expected_seq: int | None = Field(None, ge=0, le=SEQ_MAX,
                                     description="write only if the aggregate is at this sequence")


class InstanceUpdate(Body):
    """An instance's new property values (they replace the old ones)."""

    data: dict[str, Any] = Field(examples=[{"name": "Ann", "age": 32}])
    expected_seq: int | None = Field(None, ge=0, le=SEQ_MAX)


class BulkItem(Body):
    """One item: its id and values are checked item by item when applied."""

    instance_id: str = Field(max_length=200)
    data: dict[str, Any]


class BulkCreate(Body):
    """Many instances of one class; each succeeds or fails on its own (see the status)."""

    items: list[BulkItem] = Field(min_length=1, examples=[[{"instance_id": "p1", "data": {"name": "Ann"}}]])


class Revert(Body):
    """Bring a class or an instance back to the state of an earlier version."""

    to_version: int = Field(ge=0, le=SEQ_MAX, examples=[1])
    expected_seq: int | None = Field(None, ge=0, le=SEQ_MAX)


# ---- answers ----------------------------------------------------------------------


class ErrorDetail(BaseModel):
    code: str | None = Field(None, examples=["invalid"])
    message: str = Field(examples=["'limit' must be between 1 and 500"])
    field: str | None = Field(None, description="the request field at fault", examples=["limit"])
    errors: list[dict[str, Any]] | None = Field(None, description="every field error, when several")
    command_id: str | None = None


class Error(BaseModel):
    """Every error answer: what went wrong, naming the field at fault where there is one."""

    detail: ErrorDetail


class Accepted(BaseModel):
    """The command is stored: follow it with its id (status, wait)."""

    command_id: str = Field(examples=["3f1c5a8e-2b7d-4c1e-9a0f-6d2e8b4c7a11"])
    status: Literal["PENDING"] = "PENDING"
    sequence_number: int | None = Field(None, description="the aggregate's sequence number it took")


class SyncResult(BaseModel):
    command_id: str
    execution_time: float = Field(description="seconds from the request to the outcome")
    result: dict[str, Any] | None = None


class Completed(BaseModel):
    """A sync write's answer once the command completed."""

    status: Literal["success"] = "success"
    message: str = "command completed"
    data: SyncResult


class CommandStatus(BaseModel):
    """A command's status, progress and history of status changes."""

    model_config = ConfigDict(extra="allow")
    command_id: str
    status: Literal["PENDING", "PROCESSING", "RETRYING", "COMPLETED", "FAILED", "CANCELLED"]
    command_type: str | None = None
    db: str | None = None
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    history: list[dict[str, Any]] = []


class HistoryEntry(BaseModel):
    """One command or event of a history or the audit log (docs/history.md)."""

    db: str | None = Field(None, description="only in the audit log of every database")
    chain_position: int
    recorded_at: str
    occurred_at: str
    kind: Literal["command", "event"]
    type: str = Field(examples=["INSTANCE_UPDATED"])
    command_type: str | None
    command_id: str
    actor: str = Field(examples=["key:ci"])
    aggregate_type: str
    aggregate_id: str
    sequence_number: int | None
    outcome: Literal["requested", "succeeded", "failed"]
    changes: dict[str, Any] | None = Field(None, description="what a success event changed")
    error: dict[str, Any] | None = None
    revert_to: int | None = None


class HistoryPage(BaseModel):
    model_config = ConfigDict(extra="allow")
    order: Literal["asc", "desc"]
    entries: list[HistoryEntry]
    cursor: str | None = Field(description="send back as `cursor` for the next page")


class JsonPatch(BaseModel):
    """A diff between two versions: RFC 6902 operations from `from` to `to`."""

    model_config = ConfigDict(extra="allow")
    format: str
    patch: list[dict[str, Any]]
