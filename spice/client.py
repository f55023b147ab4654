"""A Python client for the HTTP API (async, with a thin sync wrapper).

    async with SpiceClient("http://127.0.0.1:16066", api_key=KEY) as spice:
        await spice.create_database("shop")
        await spice.create_class("shop", {"id": "Person", "properties": [...]})
        command = await spice.create_instance("shop", "Person", "p1", {"name": "Ann"})
        await spice.wait(command)                       # or create_instance(..., wait=True)
        async for hit in spice.query_all("shop", {"class_id": "Person", "sort": ["name"]}):
            ...

    with SyncSpiceClient(URL, api_key=KEY) as spice:    # the same calls, blocking
        spice.create_database("shop", wait=True)

Writes send an Idempotency-Key (one per call, or yours), so a retry after a lost answer
is the same command. 429 and 503 are retried, waiting what Retry-After says (at most
`retries` times). Errors are typed: ValidationError (with the field), NotFound,
Conflict (with the actual sequence number), Forbidden, Unauthenticated, RateLimited,
Unavailable, CommandTimeout (with the command id); a command that fails raises the
error its failure maps to, its `detail` naming the command.
"""
from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp

V1 = "/api/v1"


class SpiceError(Exception):
    """An error answer: `status`, `code`, `field` and the whole `detail`."""

    def __init__(self, status: int, detail: dict[str, Any]) -> None:
        self.status = status
        self.detail = detail
        self.code = detail.get("code")
        self.field = detail.get("field")
        super().__init__(f"{status} {detail.get('message', detail)}"
                         + (f" (field {self.field})" if self.field else ""))


class ValidationError(SpiceError):
    """400 or 422: the request is malformed; `field` names what."""


class Unauthenticated(SpiceError):
    pass


class Forbidden(SpiceError):
    pass


class NotFound(SpiceError):
    pass


class Conflict(SpiceError):
    """409: exists already, still referenced, or another sequence number (`actual_seq`)."""

    @property
    def actual_seq(self) -> int | None:
        return self.detail.get("actual_seq")


class RateLimited(SpiceError):
    pass


class Unavailable(SpiceError):
    pass


class CommandTimeout(SpiceError):
    """408: no outcome within the timeout; the command goes on (follow `command_id`)."""

    @property
    def command_id(self) -> str | None:
        return self.detail.get("command_id")


class CommandFailed(SpiceError):
    """A bulk create ended FAILED as a whole: its error in `detail`."""


ERRORS: dict[int, type[SpiceError]] = {400: ValidationError, 401: Unauthenticated,
                                       403: Forbidden, 404: NotFound, 408: CommandTimeout,
                                       409: Conflict, 413: ValidationError, 422: ValidationError,
                                       429: RateLimited, 503: Unavailable}


class SpiceClient:
    def __init__(self, base_url: str, *, api_key: str | None = None, token: str | None = None,
                 retries: int = 5, timeout: float = 60.0,
                 session: aiohttp.ClientSession | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.headers = {"X-API-Key": api_key} if api_key else \
            ({"Authorization": f"Bearer {token}"} if token else {})
        self.retries = retries
        self.timeout = timeout
        self._session = session
        self._owned = session is None

    async def __aenter__(self) -> SpiceClient:
        return self

    async def __aexit__(self, *_: Any) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None and self._owned:
            await self._session.close()
        self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout))
        return self._session

    # ---- the one request path ------------------------------------------------------

    async def request(self, method: str, path: str, *, json: Any = None,
                      params: dict[str, Any] | None = None,
                      headers: dict[str, str] | None = None) -> Any:
        """Send, retrying 429/503 after their Retry-After; the JSON answer, or a typed error."""
        query = {k: _param(v) for k, v in (params or {}).items() if v is not None}
        for attempt in range(self.retries + 1):
            async with self.session.request(method, self.base_url + path, json=json, params=query,
                                            headers={**self.headers, **(headers or {})}) as r:
                if r.status in (429, 503) and attempt < self.retries:
                    await asyncio.sleep(_retry_after(r.headers.get("Retry-After"), attempt))
                    continue
                body = await r.json(content_type=None) if r.content_length != 0 else None
                if r.status >= 400:
                    detail = body.get("detail", body) if isinstance(body, dict) else {"message": body}
                    raise ERRORS.get(r.status, SpiceError)(r.status, detail)
                return body
        raise AssertionError("unreachable")

    async def _write(self, method: str, path: str, body: Any = None, *, wait: bool = False,
                     timeout: float = 30.0, expected_seq: int | None = None,
                     idempotency_key: str | None = None, projected: bool = False) -> dict[str, Any]:
        """A write: 202 with the command id, or (wait=True) the outcome; `projected`: wait
        until it is searchable too."""
        if wait:
            path = path.replace("/async/", "/sync/", 1) if "/async/" in path else path
        params: dict[str, Any] = {"expected_seq": expected_seq}
        if wait:
            params.update(timeout=timeout, wait="projected" if projected else "applied")
        answer = await self.request(method, path, json=body, params=params,
                                    headers={"Idempotency-Key": idempotency_key or str(uuid.uuid4())})
        if wait and "/sync/" not in path and "command_id" in answer:
            return await self.wait(answer["command_id"], timeout=timeout, projected=projected)
        return answer  # type: ignore[no-any-return]

    # ---- commands ------------------------------------------------------------------

    async def status(self, command_id: str) -> dict[str, Any]:
        return await self.request("GET", f"{V1}/commands/{command_id}/status")  # type: ignore[no-any-return]

    async def wait(self, command: str | dict[str, Any], *, timeout: float = 30.0,
                   projected: bool = False) -> dict[str, Any]:
        """The outcome of a command (its id, or the answer of an async write)."""
        command_id = command if isinstance(command, str) else command["command_id"]
        # A command that failed raises the error its failure maps to (Conflict, NotFound,
        # ValidationError, ...), its `detail` naming the command id.
        return await self.request(  # type: ignore[no-any-return]
            "GET", f"{V1}/commands/{command_id}/wait",
            params={"timeout": timeout, "wait": "projected" if projected else "applied"})

    # ---- databases and classes -----------------------------------------------------

    async def create_database(self, name: str, *, wait: bool = False, **fields: Any) -> dict[str, Any]:
        answer = await self._write("POST", f"{V1}/database/create", {"name": name, **fields})
        return await self.wait(answer) if wait else answer

    async def delete_database(self, name: str, *, wait: bool = False) -> dict[str, Any]:
        answer = await self._write("DELETE", f"{V1}/database/{name}")
        return await self.wait(answer) if wait else answer

    async def list_databases(self) -> list[dict[str, Any]]:
        return (await self.request("GET", f"{V1}/database/list"))["databases"]  # type: ignore[no-any-return]

    async def create_class(self, db: str, cls: dict[str, Any], *, wait: bool = True,
                           **options: Any) -> dict[str, Any]:
        return await self._write("POST", f"{V1}/ontology/{db}/async/create", cls, wait=wait, **options)

    async def replace_class(self, db: str, class_id: str, cls: dict[str, Any], *, wait: bool = True,
                            **options: Any) -> dict[str, Any]:
        return await self._write("PUT", f"{V1}/ontology/{db}/async/{class_id}", cls, wait=wait, **options)

    async def delete_class(self, db: str, class_id: str, *, wait: bool = True,
                           **options: Any) -> dict[str, Any]:
        return await self._write("DELETE", f"{V1}/ontology/{db}/async/{class_id}", wait=wait, **options)

    async def get_class(self, db: str, class_id: str, *, as_of: int | str | None = None) -> dict[str, Any]:
        return await self.request("GET", f"{V1}/ontology/{db}/{class_id}",  # type: ignore[no-any-return]
                                  params={"as_of": as_of})

    async def list_classes(self, db: str) -> list[dict[str, Any]]:
        return (await self.request("GET", f"{V1}/ontology/{db}"))["classes"]  # type: ignore[no-any-return]

    # ---- instances -------------------------------------------------------------------

    async def create_instance(self, db: str, class_id: str, instance_id: str, data: dict[str, Any],
                              *, wait: bool = False, **options: Any) -> dict[str, Any]:
        body = {"instance_id": instance_id, "data": data}
        return await self._write("POST", f"{V1}/instances/{db}/async/{class_id}/create", body,
                                 wait=wait, **options)

    async def update_instance(self, db: str, class_id: str, instance_id: str, data: dict[str, Any],
                              *, wait: bool = False, **options: Any) -> dict[str, Any]:
        answer = await self._write("POST", f"{V1}/instances/{db}/async/{class_id}/{instance_id}/update",
                                   {"data": data}, **_write_options(options))
        return await self.wait(answer, **_wait_options(options)) if wait else answer

    async def delete_instance(self, db: str, class_id: str, instance_id: str, *, wait: bool = False,
                              **options: Any) -> dict[str, Any]:
        answer = await self._write("POST", f"{V1}/instances/{db}/async/{class_id}/{instance_id}/delete",
                                   **_write_options(options))
        return await self.wait(answer, **_wait_options(options)) if wait else answer

    async def bulk_create(self, db: str, class_id: str, items: list[dict[str, Any]], *,
                          progress: Callable[[dict[str, Any]], Any] | None = None,
                          poll_interval: float = 0.5, timeout: float = 600.0) -> dict[str, Any]:
        """Create many instances; `progress` is called with each status read until the
        command ends. Returns the final status (its result lists per-item failures)."""
        answer = await self._write("POST", f"{V1}/instances/{db}/async/{class_id}/bulk-create",
                                   {"items": items})
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            doc = await self.status(answer["command_id"])
            if progress is not None:
                progress(doc)
            if doc.get("status") in ("COMPLETED", "FAILED", "CANCELLED"):
                if doc["status"] != "COMPLETED":
                    raise CommandFailed(200, {**(doc.get("error") or {}), "command_id": doc["command_id"]})
                return doc
            if asyncio.get_running_loop().time() > deadline:
                raise CommandTimeout(408, {"message": "bulk create still running",
                                           "command_id": answer["command_id"]})
            await asyncio.sleep(poll_interval)

    async def get_instance(self, db: str, class_id: str, instance_id: str, *,
                           as_of: int | str | None = None) -> dict[str, Any]:
        return await self.request(  # type: ignore[no-any-return]
            "GET", f"{V1}/instances/{db}/{class_id}/{instance_id}", params={"as_of": as_of})

    async def revert_instance(self, db: str, class_id: str, instance_id: str, to_version: int, *,
                              wait: bool = True, **options: Any) -> dict[str, Any]:
        return await self._write("POST", f"{V1}/instances/{db}/async/{class_id}/{instance_id}/revert",
                                 {"to_version": to_version}, wait=wait, **options)

    # ---- reading -------------------------------------------------------------------

    async def search(self, db: str, q: str = "", **params: Any) -> dict[str, Any]:
        return await self.request("GET", f"{V1}/search/{db}",  # type: ignore[no-any-return]
                                  params={"q": q, **params})

    async def search_classes(self, db: str, q: str = "", **params: Any) -> dict[str, Any]:
        return await self.request("GET", f"{V1}/search/{db}/classes",  # type: ignore[no-any-return]
                                  params={"q": q, **params})

    async def query(self, db: str, query: dict[str, Any]) -> dict[str, Any]:
        return await self.request("POST", f"{V1}/query/{db}", json=query)  # type: ignore[no-any-return]

    async def query_all(self, db: str, query: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """Every hit of a structured query, page after page."""
        cursor = None
        while True:
            page = await self.query(db, {**query, **({"cursor": cursor} if cursor else {})})
            for hit in page["hits"]:
                yield hit
            cursor = page.get("cursor")
            if not cursor:
                return

    async def graph_query(self, db: str, query: dict[str, Any]) -> dict[str, Any]:
        return await self.request("POST", f"{V1}/graph-query/{db}", json=query)  # type: ignore[no-any-return]

    async def history(self, db: str, class_id: str, instance_id: str | None = None,
                      **params: Any) -> AsyncIterator[dict[str, Any]]:
        """A class's or an instance's history, every entry, newest first by default."""
        path = f"{V1}/history/{db}/classes/{class_id}" if instance_id is None else \
            f"{V1}/history/{db}/instances/{class_id}/{instance_id}"
        cursor = None
        while True:
            page = await self.request("GET", path, params={**params, "cursor": cursor})
            for entry in page["entries"]:
                yield entry
            cursor = page.get("cursor")
            if not cursor:
                return

    # ---- in labels (docs/bff.md) -----------------------------------------------------

    async def bff(self, method: str, db: str, path: str, body: Any = None, *,
                  lang: str | None = None, **params: Any) -> Any:
        headers = {"Accept-Language": lang} if lang else {}
        if method != "GET":
            headers["Idempotency-Key"] = str(uuid.uuid4())
        return await self.request(method, f"{V1}/bff/{db}/{path.lstrip('/')}", json=body,
                                  params=params, headers=headers)


class SyncSpiceClient:
    """SpiceClient's calls, blocking: each runs on a loop of the wrapper's own."""

    def __init__(self, base_url: str, **options: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._client = SpiceClient(base_url, **options)

    def __enter__(self) -> SyncSpiceClient:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()

    def close(self) -> None:
        self._loop.run_until_complete(self._client.close())
        self._loop.close()

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if not callable(attribute):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            result = attribute(*args, **kwargs)
            if hasattr(result, "__anext__"):
                return self._loop.run_until_complete(_collect(result))
            return self._loop.run_until_complete(result)
        return call


async def _collect(iterator: AsyncIterator[Any]) -> list[Any]:
    return [item async for item in iterator]


def _write_options(options: dict[str, Any]) -> dict[str, Any]:
    """What a write without a synchronous route sends; the rest is for its wait."""
    return {k: v for k, v in options.items() if k not in ("timeout", "projected")}


def _wait_options(options: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in options.items() if k in ("timeout", "projected")}


def _param(value: Any) -> Any:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def _retry_after(header: str | None, attempt: int) -> float:
    try:
        return min(max(float(header), 0.05), 30.0) if header else min(0.2 * 2 ** attempt, 5.0)
    except ValueError:
        return 1.0
