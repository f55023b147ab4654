"""The event-loop lag meter (spice/agents/loop_lag.py)."""
from __future__ import annotations

import asyncio
import logging
import time

import pytest

from spice.agents.loop_lag import LagMeter
from spice.observability import LOOP_LAG

pytestmark = pytest.mark.unit


def test_a_loop_held_by_blocking_work_is_measured_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    meter = LagMeter(tick=0.01, warn_after=0.05)
    before = LOOP_LAG.count()

    async def scenario() -> None:
        task = asyncio.create_task(meter.run())
        await asyncio.sleep(0.05)  # a few undisturbed ticks
        time.sleep(0.2)  # noqa: ASYNC251 - the stall being measured
        await asyncio.sleep(0.05)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    with caplog.at_level(logging.WARNING, logger="spice.agents.loop_lag"):
        asyncio.run(scenario())
    assert meter.worst_recent >= 0.15
    assert LOOP_LAG.count() > before
    assert any("event loop stalled" in r.message for r in caplog.records)


def test_the_worst_lag_is_of_the_last_minute_only() -> None:
    now = [1000.0]
    meter = LagMeter(clock=lambda: now[0])
    meter.record(0.4)
    now[0] += 30
    meter.record(0.01)
    assert meter.worst_recent == 0.4
    now[0] += 45  # the 0.4 s one is 75 s old now
    meter.record(0.02)
    assert meter.worst_recent == 0.02
