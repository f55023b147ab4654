"""The clean stop: agents stop taking messages, work in flight finishes, or is
cancelled once the drain time is up."""
from __future__ import annotations

import asyncio

import pytest

from spice.agents.drain import Drain
from spice.agents.lanes import KeyedLanes

pytestmark = pytest.mark.unit


async def test_in_flight_work_finishes_and_no_new_message_is_taken():
    drain, lanes, done, taken = Drain(), KeyedLanes(), [], []

    async def work(n: int) -> None:
        await asyncio.sleep(0.05)
        done.append(n)

    async def agent(messages: list[int]) -> None:
        for n in messages:
            await drain.hold()
            taken.append(n)
            await lanes.submit(f"k{n}", lambda n=n: work(n))
            await asyncio.sleep(0.01)

    drain.register("t", lanes.drain, lanes.cancel)
    reader = asyncio.create_task(agent(list(range(100))))
    await asyncio.sleep(0.03)
    finished, seconds = await drain.stop(timeout=5)
    await asyncio.sleep(0.05)
    assert finished and seconds < 1
    assert sorted(done) == taken and len(taken) < 100  # all it took, nothing more
    assert not reader.done()  # parked in hold() until its agent is cancelled
    reader.cancel()


async def test_work_still_running_at_the_deadline_is_cancelled():
    drain, lanes, cancelled = Drain(), KeyedLanes(), []

    async def stuck() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    drain.register("t", lanes.drain, lanes.cancel)
    await lanes.submit("k", stuck)
    await asyncio.sleep(0)
    finished, seconds = await drain.stop(timeout=0.1)
    await asyncio.sleep(0.01)
    assert not finished and 0.1 <= seconds < 1 and cancelled == [True]
