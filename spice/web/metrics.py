"""`GET /metrics`: the Prometheus exposition of this process's registry
(spice.observability.REGISTRY).

A scrape reads memory only. What this process counts is in the registry already; what it
knows now (status counts, breakers, loop lag) is read by `ProcessCollector`; what is one
value for the whole cluster (publisher lag, consumer lag, oldest unprojected event, DLQ
depth) is exported by the publisher leader alone, from a snapshot a background task
refreshes every CLUSTER_REFRESH_SECONDS over long-lived Kafka clients, so `sum()` over
the processes counts it once and no scrape opens a connection. The snapshot's age is a
series of its own (`spice_cluster_metrics_age_seconds`).
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from faust.web import Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from spice import __version__
from spice.agents import loop_lag
from spice.agents.publisher import publisher_lag
from spice.app import app
from spice.kafka_client import kafka_options
from spice.observability import LOOP_ERRORS, REGISTRY
from spice.topics import COMMAND_TOPICS, DLQ_TOPICS, EVENT_TOPICS
from spice.web.auth import Access
from spice.web.http import ApiView

log = logging.getLogger(__name__)
CLUSTER_REFRESH_SECONDS = 10.0


class KafkaProbe:
    """Consumer lag and DLQ depth over one admin client and one unassigned consumer,
    started on first use and kept; a failure closes them and the next call starts
    fresh ones. One caller at a time: the consumer is re-assigned per call."""

    def __init__(self) -> None:
        self.admin: AIOKafkaAdminClient | None = None
        self.consumer: AIOKafkaConsumer | None = None
        self.lock = asyncio.Lock()
        self.oldest_waiting: dict[str, float] = {}

    async def _clients(self) -> tuple[AIOKafkaAdminClient, AIOKafkaConsumer]:
        if self.admin is None or self.consumer is None:
            options = kafka_options(app.settings)
            admin = AIOKafkaAdminClient(**options)
            consumer = AIOKafkaConsumer(**options, group_id=None, enable_auto_commit=False)
            await admin.start()
            try:
                await consumer.start()
            except BaseException:
                await admin.close()
                raise
            self.admin, self.consumer = admin, consumer
        return self.admin, self.consumer

    async def close(self) -> None:
        admin, consumer, self.admin, self.consumer = self.admin, self.consumer, None, None
        if consumer is not None:
            await consumer.stop()
        if admin is not None:
            await admin.close()

    async def consumer_lag(self, oldest_of: tuple[str, ...] = ()) -> dict[tuple[str, int], int]:
        """End offset minus the workers' committed offset, per topic and partition. For
        the topics in `oldest_of`, `oldest_waiting` is also filled: per topic, the age in
        seconds of the oldest message not yet consumed (its Kafka timestamp)."""
        async with self.lock:
            try:
                return await self._consumer_lag(oldest_of)
            except BaseException:
                await self.close()
                raise

    async def _consumer_lag(self, oldest_of: tuple[str, ...]) -> dict[tuple[str, int], int]:
        admin, consumer = await self._clients()
        # The workers' group, also when an API process asks (its own group consumes nothing).
        committed = await admin.list_consumer_group_offsets(app.settings.spice_app_id)
        wanted = [tp for tp in committed if tp.topic in COMMAND_TOPICS + EVENT_TOPICS]
        ends = await consumer.end_offsets(wanted) if wanted else {}
        lag = {(tp.topic, tp.partition): max(0, ends[tp] - committed[tp].offset) for tp in wanted}
        behind = [tp for tp in wanted if tp.topic in oldest_of and lag[(tp.topic, tp.partition)]]
        oldest: dict[str, float] = {}
        if behind:
            consumer.assign(behind)
            for tp in behind:
                consumer.seek(tp, committed[tp].offset)
            fetched = await consumer.getmany(*behind, timeout_ms=1000, max_records=1)
            for tp, records in fetched.items():
                if records:
                    age = max(0.0, time.time() - records[0].timestamp / 1000)
                    oldest[tp.topic] = max(oldest.get(tp.topic, 0.0), round(age, 3))
            consumer.assign([])
        self.oldest_waiting = oldest
        return lag

    async def dlq_depth(self) -> dict[str, int]:
        async with self.lock:
            try:
                _, consumer = await self._clients()
                partitions = [TopicPartition(t, 0) for t in DLQ_TOPICS]
                ends = await consumer.end_offsets(partitions)
                starts = await consumer.beginning_offsets(partitions)
                return {tp.topic: ends[tp] - starts[tp] for tp in partitions}
            except BaseException:
                await self.close()
                raise


probe = KafkaProbe()


def running_publisher() -> Any:
    """The publisher task's Publisher on a worker (None until it starts); never on an API
    process, which does not import the task (importing it would register it)."""
    return app.runtime.tables.publisher()


class ClusterSnapshot:
    """The cluster-wide figures, as the publisher leader last read them."""

    def __init__(self) -> None:
        self.values: dict[str, Any] | None = None
        self.at = 0.0
        self.task: asyncio.Task[None] | None = None

    def refresh_soon(self) -> None:
        """Start a refresh in the background if the snapshot is due and none runs."""
        due = time.monotonic() - self.at >= CLUSTER_REFRESH_SECONDS
        if due and (self.task is None or self.task.done()):
            self.task = asyncio.ensure_future(self.refresh())

    async def refresh(self) -> None:
        publisher = running_publisher()
        if publisher is None or not publisher.stats.is_leader:
            self.values = None
            return
        try:
            publishing, lag, depth = await asyncio.gather(
                publisher_lag(app.runtime.pool, publisher.checkpoint),
                probe.consumer_lag(EVENT_TOPICS), probe.dlq_depth())
        except Exception:  # noqa: BLE001 - the age series shows a stale snapshot
            LOOP_ERRORS.inc("metrics")
            log.warning("cluster metrics not refreshed", exc_info=True)
            return
        self.values = {"publisher": publishing, "lag": lag, "oldest": dict(probe.oldest_waiting),
                       "dlq": depth}
        self.at = time.monotonic()


snapshot = ClusterSnapshot()


def gauge(name: str, documentation: str, labels: tuple[str, ...],
          samples: list[Any]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation, labels=list(labels))
    for values, value in samples:
        family.add_metric(list(values), value)
    return family


class ProcessCollector:
    """Values this process holds in memory, read at scrape time."""

    def describe(self) -> list[Metric]:
        return []  # read at scrape time; registering must not touch the app

    def collect(self) -> Iterator[Metric]:
        settings = app.settings
        yield gauge("spice_info", "This process: version and role (always 1)", ("version", "role"),
                    [((__version__, settings.spice_role), 1)])
        if app.runtime.tables.here:
            counts = app.runtime.tables.module().counts()["by_command_type"]
            yield gauge("spice_commands", "Commands in this worker's status-table partitions, by "
                        "type and status (sums across workers)", ("command_type", "status"),
                        [((kind, state), value) for kind, states in sorted(counts.items())
                         for state, value in sorted(states.items())])
        publisher = running_publisher()
        if publisher is not None:
            leader = publisher.stats.is_leader
            yield gauge("spice_publisher_is_leader", "1 on the worker whose publisher is the "
                        "leader (the one exporting the cluster-wide series)", (), [((), int(leader))])
            events = CounterMetricFamily("spice_publisher_events", "Events this process's "
                                         "publisher sent to Kafka", labels=[])
            events.add_metric([], publisher.stats.events)
            yield events
            if leader:
                snapshot.refresh_soon()
                yield from cluster_families()
        yield gauge("spice_circuit_open", "1 while this process's breaker for a store is open or "
                    "half-open", ("store",),
                    [((name, ), int(b.state != "closed")) for name, b in app.runtime.breakers.items()])
        status = app.runtime.status
        yield gauge("spice_status_redis_down", "1 while this process's status writes skip Redis "
                    "(known down)", (), [((), int(status.redis_down))])
        yield gauge("spice_status_redis_missed", "Status transitions waiting to be replayed into "
                    "Redis when it is back", (), [((), status.missed)])
        yield gauge("spice_event_loop_lag_max_seconds", "The latest a 0.25 s timer woke in the "
                    "last minute, in seconds: the longest this process's loop was held", (),
                    [((), round(loop_lag.meter.worst_recent, 4))])


def cluster_families() -> Iterator[Metric]:
    values = snapshot.values
    if values is None:
        return
    yield gauge("spice_cluster_metrics_age_seconds", "Seconds since the cluster-wide series "
                "below were read (refreshed every 10 s by the publisher leader)", (),
                [((), round(time.monotonic() - snapshot.at, 3))])
    publishing = values["publisher"]
    yield gauge("spice_publisher_lag_events", "Stored events the publisher has not sent yet", (),
                [((), publishing["events"])])
    yield gauge("spice_publisher_oldest_unpublished_seconds", "Age of the oldest stored event not "
                "yet sent, in seconds (0 when caught up)", (), [((), publishing["oldest_age_seconds"])])
    yield gauge("spice_consumer_lag_messages", "Messages the workers' group has not consumed, per "
                "topic and partition", ("topic", "partition", "consumer"),
                [((topic, str(partition), "projection" if topic in EVENT_TOPICS else "command"), behind)
                 for (topic, partition), behind in sorted(values["lag"].items())])
    yield gauge("spice_projection_oldest_unprojected_seconds", "Age of the oldest event not yet "
                "consumed by the projection agents, in seconds (0 when caught up)", ("topic",),
                [((topic,), values["oldest"].get(topic, 0.0)) for topic in EVENT_TOPICS])
    yield gauge("spice_dlq_messages", "Dead letters held in each DLQ topic", ("topic",),
                [((topic,), depth) for topic, depth in sorted(values["dlq"].items())])


REGISTRY.register(ProcessCollector())


def render() -> bytes:
    return generate_latest(REGISTRY)


class MetricsView(ApiView):
    access = {"get": Access.OPS}

    async def get(self, request: Request) -> Response:
        return self.bytes(render(), content_type=CONTENT_TYPE_LATEST.split(";")[0])
