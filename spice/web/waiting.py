"""The sync wrapper: wait for a command's outcome, subscribed to its Redis channel."""
from __future__ import annotations

import asyncio
import time
from typing import Any

from faust.web import Response
from redis.exceptions import RedisError

from spice.stores.status import TERMINAL

# A sync write's `timeout` counts from the request's arrival, storing the command
# included: the answer comes within it, or (when storing alone took longer, a slow
# store) as soon as the command is stored, after one look at its status.
LAST_LOOK_SECONDS = 0.05

FAILURE_STATUS = {"not_found": 404, "already_exists": 409, "referenced": 409,
                  "sequence_mismatch": 409, "invalid": 422, "exhausted": 503}


def projected_or_failed(doc: dict[str, Any]) -> bool:
    # Both steps, in either order: the projection can record PROJECTED before the
    # worker records COMPLETED (the domain event is published as soon as it is stored).
    status = doc.get("status")
    return status == "FAILED" or (status == "COMPLETED" and bool(doc.get("projected")))


async def wait_status(view: Any, command_id: str, timeout: float, wait: str) -> dict[str, Any] | None:
    done = projected_or_failed if wait == "projected" else (lambda d: d.get("status") in TERMINAL)
    deadline = time.monotonic() + timeout
    try:
        # Bounded even if a Redis call hangs: the deadline is the client's, not Redis's.
        return await asyncio.wait_for(view.runtime.status.wait(command_id, timeout, done=done),
                                      timeout + 1.0)
    except (TimeoutError, RedisError, OSError):
        # Redis is down: poll the status table (a worker), or the event store (an API
        # process, which has no table; the store knows COMPLETED and FAILED, not
        # PROJECTED).
        tables = view.runtime.tables
        while True:
            doc = tables.status(command_id)
            if doc is None and not tables.here:
                from spice.web.status import stored_command

                doc = await stored_command(view, command_id)
            if doc is not None and done(doc):
                return doc
            if time.monotonic() >= deadline:
                return None
            await asyncio.sleep(0.5)


def remaining(timeout: float, started: float) -> float:
    """What is left of a request's `timeout` (seconds) that arrived at `started`."""
    return max(LAST_LOOK_SECONDS, timeout - (time.monotonic() - started))


async def wait_for_outcome(view: Any, command_id: str, timeout: float, started: float,
                           wait: str = "applied") -> Response:
    if wait not in ("applied", "projected"):
        from spice.web.http import HttpError

        raise HttpError(400, "'wait' must be 'applied' or 'projected'", field="wait")
    doc = await wait_status(view, command_id, remaining(timeout, started), wait)
    return outcome_response(view, command_id, doc, timeout, started)


def outcome_response(view: Any, command_id: str, doc: dict[str, Any] | None, timeout: float,
                     started: float) -> Response:
    if doc is None:
        return view.json({"detail": {
            "message": f"Operation timed out after {timeout:g} seconds", "command_id": command_id,
            "hint": "Check status using the async API"}}, status=408)
    if doc.get("status") == "COMPLETED":
        return view.json({"status": "success", "message": "command completed",
                          "data": {"command_id": command_id,
                                   "execution_time": round(time.monotonic() - started, 4),
                                   "result": doc.get("result")}})
    error = doc.get("error") or {}
    return view.json({"detail": {**error, "command_id": command_id}},
                     status=FAILURE_STATUS.get(error.get("code", ""), 500))
