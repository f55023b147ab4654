"""What every view shares: error mapping, body parsing, query parameters."""
from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any

from aiohttp import web as aioweb
from faust.web import Request, Response, View

from spice import tracing
from spice.domain.errors import DomainError, FieldError, ValidationFailed
from spice.domain.json_values import INT_MAX, parse_json
from spice.observability import AUTH_FAILURES, HTTP_LATENCY, HTTP_REQUESTS, RATE_LIMITED
from spice.stores.errors import (
    TRANSIENT_ERRORS,
    EventIdConflict,
    InvalidEnvelope,
    SequenceConflict,
)
from spice.web.auth import ANONYMOUS, DEFAULT_ACCESS, Access, Principal, authenticate, authorize
from spice.web.errors import HttpError

log = logging.getLogger(__name__)
BODY_TIMEOUT_SECONDS = 30.0
KNOWN_METHODS = frozenset({"get", "head", "post", "put", "patch", "delete", "options"})


def _route_template(request: Any) -> str:
    """The route's pattern (/api/v1/ontology/{db}/...): bounded label values."""
    try:
        return str(request.match_info.route.resource.canonical)
    except AttributeError:
        return "unmatched"


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
    if isinstance(error, InvalidEnvelope):
        return 422, {"detail": {"code": "invalid", "message": error.reason, "field": "body"}}, {}
    if isinstance(error, aioweb.HTTPRequestEntityTooLarge):
        return 413, {"detail": {"message": "request body is too large", "field": "body"}}, {}
    if isinstance(error, TRANSIENT_ERRORS):
        # Never a 202 for something not stored: say so, and when to come back.
        return 503, {"detail": {"code": "unavailable", "message": str(error)}}, {"Retry-After": "5"}
    # The log has the traceback; the answer has only an id to find it by.
    error_id = uuid.uuid4().hex[:16]
    log.error("unhandled error %s", error_id, exc_info=error)
    return 500, {"detail": {"code": "internal", "message": "internal error",
                            "error_id": error_id}}, {}


class ApiView(View):
    """Every view: authentication, authorisation and rate limit first (spice.web.auth),
    then the handler; any error becomes a JSON answer; every request is counted."""

    access: dict[str, Access] = DEFAULT_ACCESS

    async def dispatch(self, request: Any) -> Any:
        started = time.perf_counter()
        route = _route_template(request)
        # The method is the client's string: one not served here counts as "other",
        # so a scanner cannot mint a series (or a span name) per made-up verb.
        method = request.method.lower()
        label = method if method in KNOWN_METHODS else "other"
        with tracing.request_span(label, route, request.headers) as server:
            response = await self._answer(request, method)
            if server is not None:
                server.set_attribute("http.response.status_code", response.status)
        HTTP_REQUESTS.inc(route, label, response.status)
        HTTP_LATENCY.observe(time.perf_counter() - started, route, label)
        if response.status in (401, 403):
            AUTH_FAILURES.inc(response.status)
        return response

    async def _answer(self, request: Any, method: str) -> Any:
        try:
            allowed = self.allowed_methods()
            if request.method.upper() not in allowed:
                listed = ", ".join(sorted(allowed))
                raise HttpError(405, f"{request.method} is not allowed here; use {listed}",
                                headers={"Allow": listed})
            await self.guard(request, method)
            response = await super().dispatch(request)
            response.headers.setdefault("X-Content-Type-Options", "nosniff")
            return response
        except Exception as error:  # noqa: BLE001 - every error becomes a JSON answer
            status, body, headers = error_response(error)
            return self.json(body, status=status,
                             headers={**headers, "X-Content-Type-Options": "nosniff"})

    def allowed_methods(self) -> set[str]:
        return set(self.get_methods())

    async def guard(self, request: Any, method: str) -> None:
        access = self.access.get(method, Access.WRITE)
        settings = self.app.settings  # type: ignore[attr-defined]
        if access is Access.PUBLIC:
            return
        if not settings.auth_enabled:
            request["principal"] = ANONYMOUS
            return
        address = request.remote or "unknown"
        wait = self.runtime.failed_auth.retry_after(address)
        if wait:
            raise HttpError(429, "too many failed authentication attempts from this address",
                            code="rate_limited", headers={"Retry-After": str(wait)})
        try:
            principal = await authenticate(request.headers, self.runtime.keys, settings)
        except HttpError as error:
            # Only a credential that was checked and refused cost anything to refuse.
            if error.status == 401 and ("X-API-Key" in request.headers
                                        or "Authorization" in request.headers):
                self.runtime.failed_auth.failed(address)
            raise
        authorize(principal, access, request.match_info.get("db"))
        request["principal"] = principal
        await self.rate_limit(principal, settings)

    async def rate_limit(self, principal: Principal, settings: Any) -> None:
        rate = principal.rate_per_second or settings.rate_limit_per_second
        burst = max(1, int(settings.rate_limit_burst * rate / settings.rate_limit_per_second))
        try:
            decision = await self.runtime.rate_limiter.take(principal.bucket, rate, burst)
        except TRANSIENT_ERRORS:
            return  # Redis down: serve rather than refuse everyone (docs/security.md)
        if not decision.allowed:
            RATE_LIMITED.inc(principal.via)
            raise HttpError(429, f"rate limit of {rate:g} requests/s exceeded for {principal.name}",
                            code="rate_limited", headers={"Retry-After": str(decision.retry_after)})

    @property
    def runtime(self) -> Any:
        return self.app.runtime  # type: ignore[attr-defined]

    def principal(self, request: Any) -> Principal:
        return request.get("principal") or ANONYMOUS

    def ok(self, body: Any, status: int = 200) -> Response:
        return self.json(body, status=status)


async def json_body(request: Request, *, allowed: set[str] | None = None) -> dict[str, Any]:
    try:
        # A body trickled in byte by byte holds a connection and a task: bounded.
        async with asyncio.timeout(BODY_TIMEOUT_SECONDS):
            raw = await request.read()
    except TimeoutError:
        raise HttpError(408, f"the request body did not arrive within {BODY_TIMEOUT_SECONDS:g} s",
                        field="body") from None
    if not raw:
        raise HttpError(400, "request body is empty; send a JSON object", field="body")
    try:
        body = parse_json(raw)
    except ValidationFailed as error:
        if error.errors[0].message.startswith("malformed JSON"):
            raise HttpError(400, error.errors[0].message, field="body") from None
        raise
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


def optional_int(value: Any, name: str, maximum: int = INT_MAX) -> int | None:
    """A non-negative integer no larger than `maximum` (by default what a bigint holds)."""
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
    if number > maximum:
        raise HttpError(400, f"'{name}' must be at most {maximum}", field=name)
    return number
