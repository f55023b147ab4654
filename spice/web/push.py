"""Live status over WebSocket, served by workers and API processes alike.

    /api/v1/ws/commands/{command_id}   the command's status, then every change until it
                                       is terminal; then the socket closes (1000)
    /api/v1/ws/commands?db=NAME        every status change of the database's commands
    /api/v1/ws/commands                every status change ('*' grants: the dashboard)

Authentication is the API's: X-API-Key or Authorization on the upgrade request, or (for
browsers, which cannot set headers on a WebSocket) a first message
`{"auth": "<API key or JWT>"}` within 10 s. A caller who may not read the command's
database gets the same answer as for a command that does not exist: close code 4404.

One Redis subscription per process (`command_updates:*`, the channel every status
change is published on, spice/stores/status.py) feeds every socket of the process
through a bounded queue each; a socket too slow to keep up is closed (4408) rather
than let the process buffer without bound.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from typing import Any

import orjson
from aiohttp import WSMsgType, web

from spice.domain import ids
from spice.stores.status import TERMINAL
from spice.web.auth import Access, Principal, authenticate
from spice.web.http import ApiView, HttpError
from spice.web.status import check_command_id

log = logging.getLogger(__name__)
QUEUE = 256  # changes a socket may fall behind by before it is closed
AUTH_SECONDS = 10.0
NOT_FOUND, TOO_SLOW, UNAUTHENTICATED = 4404, 4408, 4401
# How long a command nobody knows yet may take to show up before the socket says 4404.
UNKNOWN_GRACE_SECONDS = 3.0


class StatusFeed:
    """Fans the process's one Redis subscription out to the sockets' queues."""

    def __init__(self, redis: Any) -> None:
        self.redis = redis
        self.by_command: dict[str, set[asyncio.Queue[dict[str, Any]]]] = defaultdict(set)
        self.by_db: dict[str, set[asyncio.Queue[dict[str, Any]]]] = defaultdict(set)
        self.everything: set[asyncio.Queue[dict[str, Any]]] = set()
        self.overflowed: set[asyncio.Queue[dict[str, Any]]] = set()
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def start(self) -> None:
        if self._task is None or self._task.done():
            self._ready.clear()
            self._task = asyncio.create_task(self._listen(), name="status-feed")
        await asyncio.wait_for(self._ready.wait(), 10)

    async def _listen(self) -> None:
        while True:
            pubsub = self.redis.pubsub()
            try:
                await pubsub.psubscribe("command_updates:*")
                self._ready.set()
                async for message in pubsub.listen():
                    if message.get("type") == "pmessage":
                        self._dispatch(message["data"])
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - Redis went away: subscribe again
                log.warning("status feed lost its subscription: %s", error)
                await asyncio.sleep(1.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    def _dispatch(self, raw: bytes | str) -> None:
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return
        targets = self.by_command.get(doc.get("command_id"), set()) | \
            self.by_db.get(doc.get("db"), set()) | self.everything
        for queue in targets:
            if queue.full():
                self.overflowed.add(queue)  # its reader closes the socket
                continue
            queue.put_nowait(doc)

    def follow(self, *, command_id: str | None = None, db: str | None = None,
               everything: bool = False) -> asyncio.Queue[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE)
        if everything:
            self.everything.add(queue)
        else:
            (self.by_command[command_id] if command_id else self.by_db[db or ""]).add(queue)
        return queue

    def leave(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        self.overflowed.discard(queue)
        self.everything.discard(queue)
        for table in (self.by_command, self.by_db):
            for key in [k for k, queues in table.items() if queue in queues]:
                table[key].discard(queue)
                if not table[key]:
                    del table[key]


def upgrading(request: Any) -> bool:
    return str(request.headers.get("Upgrade", "")).lower() == "websocket"


def feed_of(runtime: Any) -> StatusFeed:
    feed = getattr(runtime, "_status_feed", None)
    if feed is None:
        feed = StatusFeed(runtime.redis)
        runtime._status_feed = feed
    return feed


class PushView(ApiView):
    """Authentication may come after the upgrade, in the first message."""

    access = {"get": Access.AUTHENTICATED}

    async def guard(self, request: Any, method: str) -> None:
        if not upgrading(request) or "X-API-Key" in request.headers \
                or "Authorization" in request.headers \
                or not self.app.settings.auth_enabled:  # type: ignore[attr-defined]
            await super().guard(request, method)

    async def open(self, request: Any
                   ) -> tuple[web.WebSocketResponse, Principal, StatusFeed] | None:
        """The feed started, the socket upgraded and its caller authenticated; None when
        authentication failed (the socket is closed then)."""
        if not upgrading(request):
            raise HttpError(426, "this is a WebSocket: connect with an Upgrade: websocket request",
                            field="Upgrade", headers={"Upgrade": "websocket"})
        feed = feed_of(self.runtime)
        await feed.start()
        socket = web.WebSocketResponse(heartbeat=30)
        await socket.prepare(request)
        principal = request.get("principal")
        if principal is None:
            principal = await self._first_message_auth(socket)
            if principal is None:
                await socket.close(code=UNAUTHENTICATED, message=b"authentication required")
                return None
        return socket, principal, feed

    async def _first_message_auth(self, socket: web.WebSocketResponse) -> Principal | None:
        try:
            message = await socket.receive(timeout=AUTH_SECONDS)
            credential = orjson.loads(message.data).get("auth") if message.type == WSMsgType.TEXT else None
        except (TimeoutError, orjson.JSONDecodeError, AttributeError):
            return None
        if not isinstance(credential, str):
            return None
        header = {"X-API-Key": credential} if credential.startswith("spk_") else \
            {"Authorization": f"Bearer {credential}"}
        try:
            return await authenticate(header, self.runtime.keys, self.app.settings)  # type: ignore[attr-defined]
        except HttpError:
            return None

    async def relay(self, socket: web.WebSocketResponse, queue: asyncio.Queue[dict[str, Any]],
                    feed: StatusFeed, until_terminal: bool) -> None:
        closed = asyncio.ensure_future(socket.receive())  # the client closing, or anything it sends
        try:
            while True:
                change = asyncio.ensure_future(queue.get())
                done, _ = await asyncio.wait({change, closed}, return_when=asyncio.FIRST_COMPLETED)
                if closed in done:
                    change.cancel()
                    return
                if queue in feed.overflowed:
                    await socket.close(code=TOO_SLOW, message=b"too far behind; reconnect")
                    return
                doc = change.result()
                await socket.send_str(orjson.dumps(doc).decode())
                if until_terminal and doc.get("status") in TERMINAL:
                    await socket.close()
                    return
        finally:
            closed.cancel()


class CommandPushView(PushView):
    async def get(self, request: Any, command_id: str) -> web.StreamResponse:
        command_id = check_command_id(command_id)
        opened = await self.open(request)
        if opened is None:
            return web.Response()
        socket, principal, feed = opened
        queue = feed.follow(command_id=command_id)  # before the read: no change falls between
        try:
            doc = await self.runtime.status.get(command_id)
            if doc is None:
                # Just accepted, its status may not be readable yet (a 202 races the
                # status write's arrival at this process): its first change decides.
                try:
                    doc = await asyncio.wait_for(queue.get(), UNKNOWN_GRACE_SECONDS)
                except TimeoutError:
                    doc = None
            if doc is None or not principal.can_see(doc.get("db")):
                await socket.close(code=NOT_FOUND, message=b"no such command")
                return socket
            await socket.send_str(orjson.dumps(doc).decode())
            if doc.get("status") not in TERMINAL:
                await self.relay(socket, queue, feed, until_terminal=True)
            else:
                await socket.close()
        finally:
            feed.leave(queue)
        return socket


class DatabasePushView(PushView):
    async def get(self, request: Any) -> web.StreamResponse:
        db = request.query.get("db")  # None: every database, for '*' grants (the dashboard)
        if db is not None:
            ids.check_database_name(db)
        opened = await self.open(request)
        if opened is None:
            return web.Response()
        socket, principal, feed = opened
        if not principal.may(Access.READ if db else Access.OPS, db):
            await socket.close(code=NOT_FOUND, message=b"no such database")
            return socket
        queue = feed.follow(db=db) if db else feed.follow(everything=True)
        try:
            await self.relay(socket, queue, feed, until_terminal=False)
        finally:
            feed.leave(queue)
        return socket
