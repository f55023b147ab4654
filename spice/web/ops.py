"""Operations: liveness, readiness and health of every dependency, DLQ depth."""
from __future__ import annotations

import asyncio
from typing import Any

from faust.web import Request, Response

from spice.app import app
from spice.web.auth import Access
from spice.web.http import ApiView


async def _check(name: str, probe: Any) -> tuple[str, dict[str, Any]]:
    try:
        await asyncio.wait_for(probe, timeout=3.0)
        return name, {"status": "ok"}
    except Exception as error:  # noqa: BLE001 - the reason is the answer
        return name, {"status": "failing", "reason": f"{type(error).__name__}: {error}"[:300]}


async def _kafka() -> None:
    producer = app.runtime.producer
    await producer.client.fetch_all_metadata()


async def _postgres() -> None:
    async with app.runtime.pool.acquire() as conn:
        await conn.fetchval("SELECT 1")


async def _s3() -> None:
    await app.runtime.s3.head_bucket(Bucket=app.settings.event_store_bucket)


# What accepting and applying a command needs. Redis (status cache, rate limits, push)
# and the search read model are not on that path: the service keeps accepting and
# applying without them (docs/operations.md), so they make it degraded, not unready.
ESSENTIAL = ("kafka", "s3", "postgres", "graph", "tables")


async def health() -> tuple[bool, dict[str, Any]]:
    runtime = app.runtime
    checks = dict(await asyncio.gather(
        _check("kafka", _kafka()), _check("s3", _s3()), _check("postgres", _postgres()),
        _check("redis", runtime.redis.ping()), _check("graph", runtime.graph.ping()),
        _check("search", runtime.search.ping())))
    # Agents start only once the tables are restored from their changelogs: until
    # then a write would be accepted but nothing would process it yet.
    # An API process (SPICE_ROLE=api) has no tables and processes nothing: it is ready
    # once its own dependencies are.
    if app.settings.is_worker:
        checks["tables"] = tables_check()
    for name, breaker in runtime.breakers.items():
        checks.setdefault("circuit_breakers", {})[name] = breaker.state
    ready = all(checks[k]["status"] == "ok" for k in ESSENTIAL if k in checks)
    return ready, checks


class Readiness:
    """The last readiness answer, kept READY_CACHE_SECONDS: probes from every kubelet and
    load balancer cost one set of round trips per interval, not one per probe."""

    READY_CACHE_SECONDS = 1.0

    def __init__(self) -> None:
        self.at = float("-inf")
        self.answer: tuple[bool, dict[str, Any]] | None = None
        self.lock = asyncio.Lock()

    async def get(self) -> tuple[bool, dict[str, Any]]:
        async with self.lock:
            now = asyncio.get_running_loop().time()
            if self.answer is None or now - self.at > self.READY_CACHE_SECONDS:
                self.answer, self.at = await health(), now
            return self.answer


readiness = Readiness()


def summary(ready: bool, checks: dict[str, Any]) -> str:
    healthy = all(v.get("status") == "ok" for k, v in checks.items() if k != "circuit_breakers")
    return "ok" if healthy else "degraded" if ready else "unready"


def tables_check() -> dict[str, str]:
    recovery = app.tables.recovery  # type: ignore[attr-defined]
    if app.in_recovery or not recovery.completed.is_set():
        return {"status": "failing", "reason": "restoring tables from their changelogs"}
    return {"status": "ok"}


class HealthView(ApiView):
    """The detailed view: every dependency with its reason. 503 only when unready."""

    access = {"get": Access.PUBLIC}  # probes carry no credentials

    async def get(self, request: Request) -> Response:
        ready, checks = await health()
        return self.json({"status": summary(ready, checks), "ready": ready,
                          "role": app.settings.spice_role, "dependencies": checks},
                         status=200 if ready else 503)


class LiveView(ApiView):
    """Liveness: the process serves HTTP. No I/O, so a slow dependency never gets a
    healthy process restarted."""

    access = {"get": Access.PUBLIC}

    async def get(self, request: Request) -> Response:
        return self.json({"status": "ok", "role": app.settings.spice_role})


class ReadyView(ApiView):
    """Readiness: this process can accept and apply commands (ESSENTIAL); 503 names what
    fails. Redis or search down answers 200 with status `degraded`."""

    access = {"get": Access.PUBLIC}

    async def get(self, request: Request) -> Response:
        ready, checks = await readiness.get()
        failing = {k: v for k, v in checks.items()
                   if k != "circuit_breakers" and v.get("status") != "ok"}
        return self.json({"status": summary(ready, checks), "ready": ready,
                          "role": app.settings.spice_role, "failing": failing},
                         status=200 if ready else 503)
