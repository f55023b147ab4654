"""The one Faust App: `faust -A spice.app worker`.

Start-up order: create the topics, open the stores (spice.runtime), then Faust
starts the agents, the tables, the publisher task and the web views.
"""
from __future__ import annotations

import asyncio
import cProfile
import gc
import logging
import os
from typing import Any

import faust

from spice import faust_fixes, tracing
from spice.kafka_client import faust_credentials
from spice.observability import use_json_logs
from spice.runtime import Runtime
from spice.settings import Settings, get_settings
from spice.topics import ensure_topics

log = logging.getLogger(__name__)
faust_fixes.apply()


def _use_event_loop(name: str) -> None:
    """uvloop by default: the worker's agents, producer, consumer and the API share one
    loop, and most of its CPU is the loop's own bookkeeping (callbacks, futures,
    socket writes), which uvloop does in C. Set before Faust creates its loop, which
    `faust -A spice.app worker` does after importing this module. EVENT_LOOP=aio
    falls back to asyncio's own loop."""
    if name == "uvloop":
        import mode.loop

        mode.loop.use("uvloop")


_use_event_loop(get_settings().event_loop)


def _tune_collector(threshold: str) -> None:
    """The cyclic collector took a quarter to a third of a busy worker's time (measured
    with gc.callbacks during `bench.workers`: 1.2-1.8 s in every 5 s, most of it full
    collections walking ~300,000 long-lived objects: modules, Faust, the recovered
    tables). A worker allocates in bursts (a batch of 500 commands is thousands of
    objects), so Python's default threshold of 700 runs a collection every few
    hundred microseconds of work. With 10,000 young objects per collection, and the
    objects alive once the worker has started frozen out of every later collection
    (`SpiceApp.on_started`), it spends ~0.2 s in 5 s; reference counting still frees
    everything that is not a cycle at once."""
    gc.set_threshold(*(int(part) for part in threshold.split(",")))


_tune_collector(get_settings().worker_gc_threshold)


def _lower_priority(increment: int) -> None:
    """A worker's applying can wait; intake, on a host whose cores it shares with API
    processes, should not. Measured on 2 cores (docs/roles.md): an API process beside
    a worker at nice 10 accepted 2,436-3,269 commands a second in every run (lean load
    generator), against 1,640-2,770 at equal priority; the worker, running later, finds bigger batches.
    Set at import, before any thread is started, so every thread inherits it."""
    if increment:
        os.nice(increment)


if get_settings().is_worker:
    _lower_priority(get_settings().worker_nice)


class SpiceApp(faust.App):
    settings: Settings
    _runtime: Runtime | None = None
    _profiler: cProfile.Profile | None = None

    def _new_web(self) -> Any:
        from spice.web.server import ApiWeb

        return ApiWeb(self)

    @property
    def runtime(self) -> Runtime:
        if self._runtime is None:
            raise RuntimeError("the worker's stores are not open yet")
        return self._runtime

    async def on_first_start(self) -> None:
        await super().on_first_start()
        created = await ensure_topics(self.settings,
                                      self.settings.topic_partitions, self.settings.spice_app_id)
        if created:
            log.info("created topics: %s", ", ".join(created))
        self._runtime = await Runtime.open(self.settings)
        log.info("event loop: %s", type(asyncio.get_running_loop()).__module__)
        tracing.enable(self.settings.tracing_enabled)
        if self.settings.log_format == "json":
            use_json_logs()  # after Faust's own logging set-up, which this replaces

    async def on_started(self) -> None:
        await super().on_started()  # returns once the tables are recovered
        gc.collect()
        gc.freeze()
        log.info("worker started: %d objects frozen out of the cyclic collector",
                 gc.get_freeze_count())
        if self.settings.worker_profile:
            self._profiler = cProfile.Profile()
            self._profiler.enable()
            log.info("profiling the worker into %s", self.settings.worker_profile)

    async def on_stop(self) -> None:
        from spice.web import workers

        if self._profiler is not None:
            self._profiler.disable()
            self._profiler.dump_stats(self.settings.worker_profile)
            self._profiler = None
        if self.settings.is_worker:
            from spice.agents import publisher_task

            await publisher_task.stop()
        await workers.close()
        await super().on_stop()
        if self._runtime is not None:
            await self._runtime.close()
            self._runtime = None


def create_app(settings: Settings | None = None) -> SpiceApp:
    settings = settings or get_settings()
    settings.spice_data_dir.mkdir(parents=True, exist_ok=True)
    app = SpiceApp(
        settings.faust_app_id,
        broker=f"kafka://{settings.kafka_bootstrap_servers}",
        broker_credentials=faust_credentials(settings),
        store="memory://",
        autodiscover=False,
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=1,
        web_host=settings.spice_web_host,
        web_bind=settings.spice_web_host,
        web_port=settings.spice_web_port,
        web_application_options={"client_max_size": settings.max_body_bytes},
        datadir=str(settings.spice_data_dir),
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        stream_wait_empty=False,
        # Table changelogs: with no linger every write is its own batch and aiokafka
        # keeps one batch in flight per partition, so writes queue up behind acks and
        # Faust pauses every agent while its producer buffer is full.
        producer_linger=0.005,
        producer_max_batch_size=1 << 20,
        # A worker that dies is noticed in seconds, not the default minute.
        broker_session_timeout=10.0,
        broker_heartbeat_interval=2.0,
    )
    app.settings = settings
    return app


app = create_app()

# Registration happens on import: each module decorates agents, tables and views on
# `app`. An API process (SPICE_ROLE=api) registers only the views and the loop-lag
# meter: no agent, table, publisher or timer of the workers'.
if app.settings.is_worker:
    from spice.agents import commands as _commands  # noqa: E402,F401
    from spice.agents import publisher_task as _publisher  # noqa: E402,F401
    from spice.agents import watchdog as _watchdog  # noqa: E402,F401
    from spice.tables import status as _status_tables  # noqa: E402,F401
from spice.agents import loop_lag as _loop_lag  # noqa: E402,F401
from spice.web import routes as _routes  # noqa: E402,F401
