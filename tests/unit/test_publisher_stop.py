"""A stopping worker waits for its publisher a bounded time, even when the publisher's
task does not end on cancellation (a flush or a sweep in progress)."""
import asyncio
import time

import pytest

from spice.agents import publisher_task

pytestmark = pytest.mark.unit


async def test_a_publisher_that_ignores_cancellation_is_left_behind(monkeypatch):
    release = asyncio.Event()

    async def stubborn() -> None:
        while not release.is_set():
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                continue  # as a flush that goes on would

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    monkeypatch.setattr(publisher_task, "_task", task)
    monkeypatch.setattr(publisher_task, "STOP_SECONDS", 0.2)
    began = time.monotonic()
    await publisher_task.stop()
    assert time.monotonic() - began < 1.0
    assert not task.done()
    release.set()
    task.cancel()
    await asyncio.wait({task}, timeout=1)


async def test_a_publisher_that_stops_is_awaited(monkeypatch):
    task = asyncio.create_task(asyncio.sleep(10))
    await asyncio.sleep(0)
    monkeypatch.setattr(publisher_task, "_task", task)
    await publisher_task.stop()
    assert task.cancelled()
