"""The Faust app `bench.recovery` starts as a worker: the status table alone (same
options as spice/tables/status.py, its own app id and changelog), a worker that recovers
it, prints how long that took, and exits.

    BENCH_RECOVERY_STAND_IN=0|1  without or with spice.faust_fixes' stand-in for asyncio
                                 in Faust's changelog reader (everything else applied)
"""
from __future__ import annotations

import asyncio
import os
import signal
import time
from typing import Any

import faust
from faust.tables.recovery import Recovery

from spice import faust_fixes
from spice.bootstrap import use_event_loop
from spice.kafka_client import faust_credentials
from spice.settings import Settings

APP_ID = "bench-recovery"
TABLE = "status"  # changelog: bench-recovery-status-changelog

settings = Settings()
use_event_loop(settings.event_loop)  # as a worker's: uvloop unless EVENT_LOOP=aio
faust_fixes.apply()
if os.environ.get("BENCH_RECOVERY_STAND_IN") == "0":
    from faust.tables import recovery as recovery_module

    recovery_module.asyncio = asyncio  # type: ignore[assignment]

app = faust.App(APP_ID, broker=f"kafka://{settings.kafka_bootstrap_servers}",
                broker_credentials=faust_credentials(settings), store="memory://",
                topic_partitions=settings.topic_partitions, consumer_auto_offset_reset="earliest",
                producer_acks=-1, stream_wait_empty=False,
                web_port=int(os.environ.get("BENCH_RECOVERY_WEB_PORT", "16190")),
                datadir=os.environ.get("BENCH_RECOVERY_DATA_DIR", ".run/bench-recovery"))
table = app.Table(TABLE, default=None, key_type=bytes, partitions=settings.topic_partitions)
source = app.topic("bench_recovery_source", partitions=settings.topic_partitions,
                   value_serializer="raw")


@app.agent(source)
async def idle(stream: faust.StreamT) -> None:  # a table needs an agent's partitions
    async for _ in stream:
        pass


CPU_AT: dict[str, float] = {}  # process CPU seconds when the last reading started, ended


def _clocked(method: Any, mark: str) -> Any:
    def clocked(self: Any) -> None:
        CPU_AT[mark] = time.process_time()
        method(self)
    return clocked


Recovery._set_recovery_started = _clocked(Recovery._set_recovery_started, "started")  # type: ignore[method-assign]
Recovery._set_recovery_ended = _clocked(Recovery._set_recovery_ended, "ended")  # type: ignore[method-assign]


@app.task
async def report() -> None:
    """Runs once the worker has started, i.e. after its recovery."""
    recovery = app.tables.recovery  # type: ignore[attr-defined]
    await recovery.completed.wait()
    seconds = recovery._recovery_ended_at - recovery._recovery_started_at
    print(f"RECOVERED {len(table.data)} {seconds:.3f} {CPU_AT['ended'] - CPU_AT['started']:.3f}",
          flush=True)
    os.kill(os.getpid(), signal.SIGTERM)
