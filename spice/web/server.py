"""The HTTP server under the views: Faust's aiohttp driver, minus what the API must not
expose, plus a deadline on request heads.

- Faust's own pages (`/`, `/router/`, `/table/`, statistics) answer without
  authentication and are not part of the API: none is served.
- aiohttp reads a request head for as long as the client trickles it in (only an idle
  connection times out): a head must be complete HEAD_TIMEOUT_SECONDS after its first
  byte, or the connection is closed. Bodies have their own deadline (spice.web.http).
- What the router answers itself (no route: 404, wrong method: 405) and what the HTTP
  parser refuses (a malformed request line or header: 400, a head too large: 431) are
  JSON in the API's error shape, like every view's error, not aiohttp's text/plain page:
  a client parses one shape for every error, and the OpenAPI document's error schema
  holds.
"""
from __future__ import annotations

import asyncio
from http import HTTPStatus
from typing import Any

from aiohttp import web
from aiohttp.web import BaseSite, TCPSite
from aiohttp.web_protocol import RequestHandler
from faust.web.drivers.aiohttp import Web

from spice.web.errors import HttpError

HEAD_TIMEOUT_SECONDS = 10.0


class HeadDeadline(asyncio.Protocol):
    """Wraps aiohttp's request handler (the connection's protocol) and closes the
    connection when bytes of a new request arrive and its head is not parsed in time."""

    def __init__(self, inner: Any, timeout: float) -> None:
        self.inner, self.timeout = inner, timeout
        self.transport: asyncio.BaseTransport | None = None
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        before = self.inner._request_count
        self.inner.data_received(data)
        if self.inner._request_count != before:
            self._disarm()
        elif self.timer is None and not self._busy():
            self.timer = asyncio.get_running_loop().call_later(self.timeout, self._expire)

    def _busy(self) -> bool:
        """A request is being handled (its body may still be arriving) or queued."""
        return self.inner._current_request is not None or bool(self.inner._messages)

    def _expire(self) -> None:
        self.timer = None
        if not self._busy() and self.transport is not None:
            self.transport.close()

    def _disarm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self.inner.connection_lost(exc)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()  # type: ignore[no-any-return]

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()


def error_json(status: int, message: str | None, headers: Any = ()) -> web.Response:
    """An HTTP error the API did not raise itself, in its error shape (HttpError.body),
    with a code from the status's phrase (not_found, method_not_allowed, bad_request)."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    error = HttpError(status, message or phrase, code=phrase.lower().replace(" ", "_"))
    return web.json_response(error.body(), status=status, headers=dict(headers))


class JsonErrorsHandler(RequestHandler):
    """aiohttp's connection handler, answering the parser's refusals in JSON."""

    def handle_error(self, request: Any, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        super().handle_error(request, status, exc, message)  # logs; raises if sent already
        response = error_json(status, "internal error" if status >= 500 else message)
        response.force_close()
        return response


class _Site(TCPSite):
    """TCPSite.start, with each connection's handler answering errors in JSON and wrapped
    in a HeadDeadline."""

    async def start(self) -> None:
        await BaseSite.start(self)
        server = self._runner.server
        assert server is not None
        def handler() -> HeadDeadline:
            inner = JsonErrorsHandler(server, loop=server._loop, **server._kwargs)
            return HeadDeadline(inner, HEAD_TIMEOUT_SECONDS)

        self._server = await asyncio.get_running_loop().create_server(
            handler, self._host, self._port,
            ssl=self._ssl_context, backlog=self._backlog, reuse_address=self._reuse_address,
            reuse_port=self._reuse_port)
        sockets = self._server.sockets
        self._bound_port = sockets[0].getsockname()[1] if sockets else self._port


@web.middleware
async def json_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    """The router's own HTTP errors as JSON ({"detail": {"message": ...}})."""
    try:
        return await handler(request)
    except web.HTTPException as error:
        if error.status < 400 or error.content_type == "application/json":
            raise
        return error_json(error.status, f"{request.method} {request.path}: {error.reason.lower()}",
                          [(k, v) for k, v in error.headers.items()
                           if k.lower() not in ("content-type", "content-length")])


class ApiWeb(Web):
    default_blueprints = []  # type: ignore[assignment]
    production_blueprints = []  # type: ignore[assignment]
    debug_blueprints = []  # type: ignore[assignment]
    optional_blueprints = []  # type: ignore[assignment]

    def __init__(self, app: Any, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.web_app.middlewares.append(json_errors)

    def _new_transport_tcp(self) -> Any:
        return _Site(self._runner, self.app.conf.web_bind, self.app.conf.web_port,
                     ssl_context=self.app.conf.web_ssl_context)
