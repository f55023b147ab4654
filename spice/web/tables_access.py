"""What only the workers' Faust tables know, as each role reaches it (docs/roles.md).

A worker has the status table, the counts and rate windows, and the publisher task; a
keyed status read goes on to the worker that owns the key. An API process has none
of them and asks SPICE_WORKER_URLS (spice/web/workers.py). The process's role picks
one of the two classes once, at start (`SpiceApp.on_first_start` puts it on the
runtime as `runtime.tables`); views and the metrics ask it, never a module global.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from faust.exceptions import SameNode

from spice.settings import Settings

Local = Callable[[], Awaitable[Any]]


class WorkerTables:
    here = True

    def status(self, command_id: str) -> dict[str, Any] | None:
        from spice.tables.status import read_status

        return read_status(command_id)

    def module(self) -> Any:
        """spice.tables.status: counts(), rates(), recent(), WINDOW_SECONDS."""
        from spice.tables import status

        return status

    def publisher(self) -> Any:
        """The publisher task's Publisher (None until it starts)."""
        from spice.agents import publisher_task

        return publisher_task.publisher

    async def routed(self, view: Any, request: Any, key: str, local: Local) -> Any:
        """The answer of the worker that owns `key` in the status table, or `local()`
        when that is this worker."""
        from spice.tables.status import command_status

        try:
            return await view.app.router.route_req(command_status.name, key, view.web, request)
        except SameNode:
            return await local()

    async def or_forward(self, view: Any, request: Any, local: Local) -> Any:
        return await local()


class ApiTables:
    here = False

    def status(self, command_id: str) -> dict[str, Any] | None:
        return None

    def module(self) -> Any:
        raise RuntimeError("an API process has no tables; forward to a worker")

    def publisher(self) -> Any:
        return None

    async def routed(self, view: Any, request: Any, key: str, local: Local) -> Any:
        return await local()

    async def or_forward(self, view: Any, request: Any, local: Local) -> Any:
        """Views only workers can answer (counts, the dashboard's views): a worker's
        answer, or 503 naming SPICE_WORKER_URLS."""
        from spice.web import workers

        return await workers.forward_or_503(view, request)


def tables_access(settings: Settings) -> WorkerTables | ApiTables:
    return WorkerTables() if settings.is_worker else ApiTables()
