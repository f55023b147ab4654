"""What an API process (SPICE_ROLE=api) asks of the workers.

An API process has no Faust tables and runs no publisher: the status table, the
counts and rate windows and the dashboard's local views live in the workers. A
request that needs them is forwarded, with the caller's own credentials, to the
first of SPICE_WORKER_URLS that answers; that worker routes it on to the owner of
the key as it would its own request. Status lookups that no worker answers fall
back to the event store, which every process can read.
"""
from __future__ import annotations

import logging

import aiohttp
from faust.web import Request, Response, View

from spice.app import app

log = logging.getLogger(__name__)

# What a forwarded request carries of the caller's: who they are, and their trace.
FORWARDED_HEADERS = ("x-api-key", "authorization", "x-actor", "traceparent")
# What of the worker's answer reaches the caller besides its status and body: when to
# try again (a 429 or 503 of the worker's own).
ANSWER_HEADERS = ("retry-after",)
TIMEOUT = aiohttp.ClientTimeout(total=5, connect=1)

_session: aiohttp.ClientSession | None = None


def session() -> aiohttp.ClientSession:
    """One pooled client for the process: forwarding is the fallback path, but a Redis
    outage turns every status read into one."""
    global _session
    if _session is None or _session.closed:
        _session = aiohttp.ClientSession(timeout=TIMEOUT)
    return _session


async def close() -> None:
    global _session
    if _session is not None and not _session.closed:
        await _session.close()
    _session = None


def no_worker_error() -> str:
    urls = ", ".join(app.settings.worker_urls) or "none"
    return (f"this is an API process (SPICE_ROLE=api) and no worker answered; "
            f"SPICE_WORKER_URLS: {urls}")


async def forward(view: View, request: Request) -> Response | None:
    """The first worker's answer to the same method, path and query, or None when none
    answers. Answers of every status pass through (a 404 is the worker's word too)."""
    headers = {k: v for k, v in request.headers.items() if k.lower() in FORWARDED_HEADERS}
    path = request.path_qs  # type: ignore[attr-defined]
    for url in app.settings.worker_urls:
        try:
            async with session().request(request.method, f"{url}{path}", headers=headers) as response:
                body = await response.read()
                kept = {k: v for k, v in response.headers.items() if k.lower() in ANSWER_HEADERS}
                return view.bytes(body, status=response.status, content_type=response.content_type,
                                  headers=kept)
        except (TimeoutError, aiohttp.ClientError, OSError) as error:
            log.warning("worker %s did not answer %s: %s", url, path, error)
    return None


async def forward_or_503(view: View, request: Request) -> Response:
    """For views only workers can answer (their tables' counts, the dashboard's views)."""
    answer = await forward(view, request)
    if answer is not None:
        return answer
    return view.json({"detail": {"message": no_worker_error(), "field": "SPICE_WORKER_URLS"}},
                     status=503)
