"""The operators' dashboard: a static page (`/dashboard`) and the JSON it polls.

`/api/v1/dashboard/local` is what this worker knows: its partitions of the
status tables (counts, rates, recent commands) and what it runs (publisher if
leader, circuit breakers, processed commands). `/api/v1/dashboard/data` merges
the local views of every worker in the group (found in Faust's table metadata,
asked with the caller's own credentials) and adds the cluster-wide figures:
consumer and projection lag, DLQ depth and the latest dead letters. Each part
names the worker that answered.
"""
from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import time
from pathlib import Path
from typing import Any

import aiohttp
from faust.web import Request, Response

from spice import dlq
from spice.agents.publisher import publisher_lag
from spice.app import app
from spice.observability import COMMANDS
from spice.topics import EVENT_TOPICS
from spice.web.auth import Access
from spice.web.http import ApiView
from spice.web.metrics import probe, running_publisher

PAGE = Path(__file__).parent / "static" / "dashboard.html"
CLUSTER_CACHE_SECONDS = 2.0  # Kafka admin round trips; every open page polls
_cluster_cache: tuple[float, dict[str, Any]] | None = None


def worker_url() -> str:
    return str(app.conf.canonical_url).rstrip("/")


async def local_view() -> dict[str, Any]:
    tables = app.runtime.tables.module()
    publisher: dict[str, Any] = {"is_leader": False}
    running = running_publisher()
    if running is not None:
        publisher = {"is_leader": running.stats.is_leader, "events_published": running.stats.events}
        if running.stats.is_leader:
            lag = await publisher_lag(app.runtime.pool, running.checkpoint)
            publisher.update(lag_events=lag["events"], oldest_unpublished_seconds=lag["oldest_age_seconds"])
    processed: dict[str, dict[str, float]] = {}
    for (kind, outcome), value in COMMANDS.items():
        processed.setdefault(kind, {})[outcome] = value
    return {"worker": worker_url(), "at": time.time(), **tables.counts(), "rates": tables.rates(),
            "recent": tables.recent(), "publisher": publisher, "processed": processed,
            "breakers": {name: b.state for name, b in app.runtime.breakers.items()}}


async def cluster_view() -> dict[str, Any]:
    global _cluster_cache
    if _cluster_cache and _cluster_cache[0] > time.monotonic():
        return _cluster_cache[1]
    lag, depth, letters = await asyncio.gather(
        probe.consumer_lag(EVENT_TOPICS), probe.dlq_depth(), dlq.read(app.settings, limit=5))
    consumers: dict[str, dict[str, int]] = {"command": {}, "projection": {}}
    for (topic, _partition), behind in lag.items():
        kind = "projection" if topic in EVENT_TOPICS else "command"
        consumers[kind][topic] = consumers[kind].get(topic, 0) + behind
    latest = [{**letter.summary(), "failed_at": letter.body.get("failed_at")} for letter in letters]
    latest.sort(key=lambda s: s.get("failed_at") or 0, reverse=True)
    view = {"consumer_lag": consumers["command"], "projection_lag": consumers["projection"],
            "projection_oldest_seconds": dict(probe.oldest_waiting),
            "dlq_depth": depth, "dlq_latest": latest[:10]}
    _cluster_cache = (time.monotonic() + CLUSTER_CACHE_SECONDS, view)
    return view


def other_workers() -> list[str]:
    urls = {str(url).rstrip("/") for url in app.router.tables_metadata()}
    return sorted(urls - {worker_url()})


async def ask(session: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> dict[str, Any]:
    try:
        async with session.get(f"{url}/api/v1/dashboard/local", headers=headers,
                               timeout=aiohttp.ClientTimeout(total=3)) as response:
            if response.status != 200:
                return {"worker": url, "error": f"HTTP {response.status}"}
            return dict(await response.json())
    except (TimeoutError, aiohttp.ClientError) as error:
        return {"worker": url, "error": f"{type(error).__name__}: {error}"}


def merge(views: list[dict[str, Any]], window_seconds: float) -> dict[str, Any]:
    """Sum what is partitioned (counts, rates), keep what one worker owns (publisher)."""
    by_state: dict[str, int] = {}
    by_type: dict[str, dict[str, int]] = {}
    windows: dict[int, dict[str, Any]] = {}
    recent: list[dict[str, Any]] = []
    publisher: dict[str, Any] = {"is_leader": False}
    for view in views:
        if "error" in view:
            continue
        for state, n in view.get("by_state", {}).items():
            by_state[state] = by_state.get(state, 0) + n
        for kind, states in view.get("by_command_type", {}).items():
            for state, n in states.items():
                by_type.setdefault(kind, {})[state] = by_type.get(kind, {}).get(state, 0) + n
        for window in view.get("rates", []):
            entry = windows.setdefault(window["window_start"], {
                "window_start": window["window_start"], "finished": 0, "by_type": {}})
            entry["finished"] += window["finished"]
            for kind, outcomes in window["by_type"].items():
                for outcome, n in outcomes.items():
                    target = entry["by_type"].setdefault(kind, {})
                    target[outcome] = target.get(outcome, 0) + n
        recent += [{**r, "worker": view["worker"]} for r in view.get("recent", [])]
        if view.get("publisher", {}).get("is_leader"):
            publisher = {**view["publisher"], "worker": view["worker"]}
    for entry in windows.values():
        entry["per_second"] = round(entry["finished"] / window_seconds, 2)
    return {"by_state": by_state, "by_command_type": by_type,
            "rates": sorted(windows.values(), key=lambda e: -e["window_start"]),
            "recent": sorted(recent, key=lambda r: -(r.get("updated_at") or 0))[:20],
            "publisher": publisher}


class DashboardPage(ApiView):
    # The page is static and holds no data; the JSON it polls needs a '*' grant.
    access = {"get": Access.PUBLIC}

    async def get(self, request: Request) -> Response:
        page, headers = dashboard_page()
        return self.html(page, headers=dict(headers))


@functools.lru_cache(maxsize=1)
def dashboard_page() -> tuple[str, tuple[tuple[str, str], ...]]:
    """The page, and headers that let only its own script run (by hash), talk only to
    this server, and never be framed: a command type or error message an attacker
    managed to store cannot run as script in an operator's browser."""
    page = PAGE.read_text(encoding="utf-8")
    script = page.split("<script>", 1)[1].split("</script>", 1)[0]
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    policy = (f"default-src 'none'; script-src 'sha256-{digest}'; style-src 'unsafe-inline'; "
              "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; "
              "frame-ancestors 'none'")
    return page, (("Content-Security-Policy", policy), ("X-Frame-Options", "DENY"),
                  ("Referrer-Policy", "no-referrer"), ("Cache-Control", "no-store"))


class DashboardLocal(ApiView):
    access = {"get": Access.OPS}

    async def get(self, request: Request) -> Response:
        async def local() -> Response:
            return self.json(await local_view())

        return await self.runtime.tables.or_forward(self, request, local)  # type: ignore[no-any-return]


class DashboardData(ApiView):
    access = {"get": Access.OPS}

    async def get(self, request: Request) -> Response:
        # A worker knows the group; it merges every worker's view (an API process asks one).
        return await self.runtime.tables.or_forward(  # type: ignore[no-any-return]
            self, request, lambda: self.merged(request))

    async def merged(self, request: Request) -> Response:
        tables = self.runtime.tables.module()
        credentials = {k: v for k, v in request.headers.items()
                       if k.lower() in ("x-api-key", "authorization")}
        async with aiohttp.ClientSession() as session:
            others = await asyncio.gather(*[ask(session, url, credentials) for url in other_workers()])
        views = [await local_view(), *others]
        return self.json({"answered_by": worker_url(), "window_seconds": tables.WINDOW_SECONDS,
                          "workers": [{"worker": v["worker"], "error": v.get("error"),
                                       "processed": v.get("processed", {}),
                                       "breakers": v.get("breakers", {}),
                                       "partitions": v.get("by_state") is not None}
                                      for v in views],
                          **merge(views, tables.WINDOW_SECONDS), **await cluster_view()})
