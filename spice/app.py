"""The one Faust App: `faust -A spice.app worker`.

Importing this module creates the app and nothing else. When a worker starts, Faust
calls `worker_init` (the process set-up, spice/bootstrap.py), then imports the
modules of the process's role (spice/roles.py), which register the agents, tables,
timers and views; then it starts: create the topics, open the stores
(spice.runtime), start the agents, the tables, the publisher task and the web views.
"""
from __future__ import annotations

import asyncio
import cProfile
import gc
import logging
import sys
from typing import Any

import faust

from spice import memory_report, tracing
from spice.bootstrap import configure_process
from spice.kafka_client import faust_credentials
from spice.roles import modules_for
from spice.runtime import Runtime
from spice.settings import Settings, SettingsError, get_settings
from spice.topics import ensure_topics
from spice.web.tables_access import tables_access

log = logging.getLogger(__name__)


class SpiceApp(faust.App):
    settings: Settings
    _runtime: Runtime | None = None
    _profiler: cProfile.Profile | None = None

    def _new_web(self) -> Any:
        from spice.web.server import ApiWeb

        return ApiWeb(self)

    def worker_init(self) -> None:
        """Faust calls this when a worker starts, before the role's modules are imported
        and before any loop or thread exists: the process set-up goes here."""
        configure_process(self.settings)
        super().worker_init()

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
        if self.settings.tracing_enabled:  # before any client connects: they get instrumented
            tracing.configure(f"spice-{self.settings.spice_role}", self.settings.instrumentations)
        self._runtime = await Runtime.open(self.settings)
        self._runtime.tables = tables_access(self.settings)
        log.info("event loop: %s", type(asyncio.get_running_loop()).__module__)

    async def on_started(self) -> None:
        await super().on_started()  # returns once the tables are recovered
        gc.collect()
        gc.freeze()
        log.info("worker started: %d objects frozen out of the cyclic collector",
                 gc.get_freeze_count())
        memory_report.install(asyncio.get_running_loop())
        if self.settings.worker_profile:
            self._profiler = cProfile.Profile()
            self._profiler.enable()
            log.info("profiling the worker into %s", self.settings.worker_profile)

    async def _drain(self) -> None:
        """Finish the work in flight, commit its offsets, end this worker's leases: the
        partitions' next owner starts at once (spice/agents/drain.py)."""
        from spice.agents.drain import drain

        if self._runtime is None:
            return
        finished, seconds = await drain.stop(self.settings.shutdown_drain_seconds)
        try:
            await self.consumer.commit()
        except Exception:  # noqa: BLE001 - uncommitted offsets are read again: at least once
            log.warning("shutdown: committing offsets failed", exc_info=True)
        try:
            released = await self._runtime.registry.release_owned()
        except Exception:  # noqa: BLE001 - the leases then run out on their own
            log.warning("shutdown: ending leases failed", exc_info=True)
            released = -1
        log.info("shutdown: in-flight work %s in %.2f s; offsets committed; %d leases ended",
                 "finished" if finished else "cut off", seconds, released)

    async def on_stop(self) -> None:
        from spice.web import metrics, workers

        if self._profiler is not None:
            self._profiler.disable()
            self._profiler.dump_stats(self.settings.worker_profile)
            self._profiler = None
        if self.settings.is_worker:
            from spice.agents import publisher_task

            await self._drain()
            await publisher_task.stop()
        await workers.close()
        await metrics.probe.close()
        await super().on_stop()

    async def on_shutdown(self) -> None:
        # After the agents have stopped (mode stops a service's children between on_stop
        # and on_shutdown): an agent finishing its last batch still writes through the
        # runtime. Closed in on_stop, the status agent's last flush raised, its
        # supervisor restarted it mid-stop, and the worker hung until it was killed.
        await super().on_shutdown()
        if self._runtime is not None:
            await self._runtime.close()
            self._runtime = None


JSON_LOGGING = {
    "version": 1, "merge": True, "disable_existing_loggers": False,
    "formatters": {"json": {"()": "spice.observability.JsonFormatter"}},
    "handlers": {"default": {"class": "logging.StreamHandler", "formatter": "json",
                             "stream": "ext://sys.stdout"}},
}


def create_app(settings: Settings | None = None) -> SpiceApp:
    settings = settings or get_settings()
    app = SpiceApp(
        settings.faust_app_id,
        broker=f"kafka://{settings.kafka_bootstrap_servers}",
        broker_credentials=faust_credentials(settings),
        store="memory://",
        # Called when the worker starts, after on_worker_init: the role's modules.
        autodiscover=lambda: modules_for(settings.spice_role),
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication_factor,
        canonical_url=settings.canonical_url,
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
        broker_session_timeout=settings.kafka_session_timeout_seconds,
        broker_heartbeat_interval=settings.kafka_session_timeout_seconds / 4,
        # LOG_FORMAT=json: Faust sets up logging with our formatter, so every line is
        # JSON from the first one (its level still comes from `-l`).
        logging_config=JSON_LOGGING if settings.log_format == "json" else None,
    )
    app.settings = settings
    return app



def _app_or_exit() -> SpiceApp:
    """The worker's app; bad settings end the process with one line per variable, not a
    traceback from inside Faust's loader."""
    try:
        return create_app()
    except SettingsError as error:
        print(f"spice: {error}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None


app = _app_or_exit()
