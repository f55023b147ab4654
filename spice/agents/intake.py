"""What the agents accept from a topic: the HTTP edge's rules, for other producers.

A command produced straight to a topic meets the same definition of a JSON value as
one sent over HTTP (spice.domain.json_values): what passes can be stored, read back
and applied; what does not goes to the DLQ before any store sees it.
"""
from __future__ import annotations

import json
from typing import Any

from spice.domain.contract import check_command
from spice.domain.envelope import Envelope
from spice.domain.errors import ValidationFailed
from spice.domain.json_values import json_value_problem


def decode(raw: Any, kind: str) -> Envelope:
    """The envelope, or ValueError (pydantic's ValidationError is one) saying why not."""
    envelope = Envelope.from_json(raw)
    if envelope.kind != kind or (kind == "command" and "command_type" not in envelope.metadata):
        what = "metadata.kind/command_type" if kind == "command" else "metadata.kind"
        raise ValueError(f"not a {kind} envelope ({what})")
    problem = json_value_problem(envelope.data, "data") or \
        json_value_problem(envelope.metadata, "metadata")
    if problem is not None:
        raise ValueError(str(problem))
    if kind == "command":
        try:
            check_command(envelope)
        except ValidationFailed as error:
            raise Refused(str(error), error.field) from None
    return envelope


class Refused(ValueError):
    """A command whose data is not what its type takes (docs/topics.md), naming the field."""

    def __init__(self, message: str, field: str | None) -> None:
        super().__init__(message)
        self.field = field


def named_command(raw: bytes) -> tuple[str, str | None, str | None] | None:
    """(command id, database, command type) of a refused message that still says which
    command it is."""
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("metadata"), dict):
        return None
    metadata, data = doc["metadata"], doc.get("data")
    command_id = metadata.get("command_id") or doc.get("event_id")
    if not isinstance(command_id, str) or not 0 < len(command_id) <= 100:
        return None
    db = metadata.get("db") or (data.get("db") if isinstance(data, dict) else None)
    command_type = metadata.get("command_type")
    return (command_id, db if isinstance(db, str) and len(db) <= 100 else None,
            command_type if isinstance(command_type, str) and len(command_type) <= 100 else None)
