"""The publisher and the event store's housekeeping, as Faust tasks in every worker
(one publishes at a time: see spice/agents/publisher.py)."""
from __future__ import annotations

import asyncio
import logging

from spice.agents.forever import survived
from spice.agents.publisher import Publisher
from spice.app import app

log = logging.getLogger(__name__)
# How long a stopping worker waits for its publisher to let go. What the publisher had
# in flight is safe to abandon: its checkpoint only ever holds acknowledged batches, so
# the next leader publishes the rest again (duplicates, absorbed by the registry).
STOP_SECONDS = 5.0
publisher: Publisher | None = None
_task: asyncio.Task[None] | None = None


@app.task
async def run_publisher() -> None:
    global publisher, _task
    _task = asyncio.current_task()
    runtime = app.runtime
    publisher = Publisher(runtime.event_store, app.settings)
    # In-process appends wake it at once; other processes wake it through NOTIFY.
    runtime.event_store.on_stored = publisher.wake
    await publisher.run()


@app.timer(interval=30.0)
async def resolve_pending_batches() -> None:
    try:
        settled = await app.runtime.event_store.resolve_pending()
        if settled:
            log.info("settled %d pending event-store batches", settled)
    except Exception as error:  # noqa: BLE001 - housekeeping retries on the next tick
        survived("pending batches", error)
    await asyncio.sleep(0)


async def stop() -> None:
    """Stop publishing before the stores close: a publisher left running on a stopping
    worker keeps taking the leadership with closed clients and publishes nothing."""
    task = _task
    if task is None or task.done():
        return
    task.cancel()
    # Bounded: a producer flushing a backlog, or a sweep pass sending what it found,
    # once held a SIGTERMed worker until it was killed 30 s later, and with it the
    # restart of a rolling deploy.
    done, _ = await asyncio.wait({task}, timeout=STOP_SECONDS)
    if not done:
        log.warning("shutdown: the publisher did not stop within %.0f s; left behind", STOP_SECONDS)
    elif not task.cancelled() and task.exception() is not None:
        log.warning("shutdown: the publisher ended with %r", task.exception())
