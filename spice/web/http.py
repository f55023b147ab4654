"""What every view shares: error mapping, body parsing, query parameters."""
from __future__ import annotations

import json
import logging
from typing import Any

from aiohttp import web as aioweb
from faust.web import Request, Response, View

from spice.domain.errors import DomainError, FieldError, ValidationFailed
from spice.stores.errors import TRANSIENT_ERRORS, EventIdConflict, SequenceConflict

log = logging.getLogger(__name__)


class HttpError(Exception):
    def __init__(self, status: int, message: str, *, field: str | None = None,
                 headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.message, self.field = status, message, field
        self.headers = headers or {}
        self.extra = extra

    def body(self) -> dict[str, Any]:
        detail: dict[str, Any] = {"message": self.message, **self.extra}
        if self.field:
            detail["field"] = self.field
        return {"detail": detail}


def error_response(error: BaseException) -> tuple[int, dict[str, Any], dict[str, str]]:
    if isinstance(error, HttpError):
        return error.status, error.body(), error.headers
    if isinstance(error, DomainError):
        return error.http_status, {"detail": error.to_dict()}, {}
    if isinstance(error, SequenceConflict):
        return 409, {"detail": {"code": "sequence_mismatch", "message": str(error),
                                "expected_seq": error.expected, "actual_seq": error.actual}}, {}
    if isinstance(error, EventIdConflict):
        return 409, {"detail": {"code": "idempotency_conflict", "message":
                                "this Idempotency-Key was used with a different request"}}, {}
    if isinstance(error, aioweb.HTTPRequestEntityTooLarge):
        return 413, {"detail": {"message": "request body is too large", "field": "body"}}, {}
    if isinstance(error, TRANSIENT_ERRORS):
        # Never a 202 for something not stored: say so, and when to come back.
        return 503, {"detail": {"code": "unavailable", "message": str(error)}}, {"Retry-After": "5"}
    log.exception("unhandled error", exc_info=error)
    return 500, {"detail": {"message": "internal error"}}, {}


class ApiView(View):
    async def dispatch(self, request: Any) -> Any:
        try:
            return await super().dispatch(request)
        except Exception as error:  # noqa: BLE001 - every error becomes a JSON answer
            status, body, headers = error_response(error)
            return self.json(body, status=status, headers=headers)

    @property
    def runtime(self) -> Any:
        return self.app.runtime  # type: ignore[attr-defined]

    def ok(self, body: Any, status: int = 200) -> Response:
        return self.json(body, status=status)


async def json_body(request: Request, *, allowed: set[str] | None = None) -> dict[str, Any]:
    raw = await request.read()
    if not raw:
        raise HttpError(400, "request body is empty; send a JSON object", field="body")
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise HttpError(400, f"malformed JSON: {error}", field="body") from None
    if not isinstance(body, dict):
        raise HttpError(422, "the body must be a JSON object", field="body")
    if allowed is not None:
        unknown = sorted(set(body) - allowed)
        if unknown:
            raise ValidationFailed([FieldError(k, "unknown field") for k in unknown])
    return body


def query_number(request: Request, name: str, default: float, low: float, high: float) -> float:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise HttpError(400, f"'{name}' must be a number", field=name) from None
    if not low <= value <= high:
        raise HttpError(400, f"'{name}' must be between {low:g} and {high:g}", field=name)
    return value


def optional_int(value: Any, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise HttpError(400, f"'{name}' must be a non-negative integer", field=name)
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise HttpError(400, f"'{name}' must be a non-negative integer", field=name) from None
    if number < 0 or str(number) != str(value).strip():
        raise HttpError(400, f"'{name}' must be a non-negative integer", field=name)
    return number
