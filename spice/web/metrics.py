"""`GET /metrics` in Prometheus text format (hand-written: a handful of gauges does
not need a client library)."""
from __future__ import annotations

import time
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from faust.web import Request, Response

from spice.agents import loop_lag
from spice.agents.publisher import publisher_lag
from spice.app import app
from spice.kafka_client import kafka_options
from spice.observability import render_all
from spice.topics import COMMAND_TOPICS, EVENT_TOPICS
from spice.web.auth import Access
from spice.web.http import ApiView
from spice.web.ops import dlq_depth


def line(name: str, value: float, **labels: Any) -> str:
    if labels:
        rendered = ",".join(f'{k}="{v}"' for k, v in labels.items())
        return f"{name}{{{rendered}}} {value}"
    return f"{name} {value}"


async def consumer_lag(oldest_of: tuple[str, ...] = ()) -> dict[tuple[str, int], int]:
    """End offset minus the group's committed offset, per topic and partition. For the
    topics in `oldest_of`, `oldest_waiting` is also filled: per topic, the age in seconds
    of the oldest message not yet consumed (its Kafka timestamp)."""
    options = kafka_options(app.settings)
    admin = AIOKafkaAdminClient(**options)
    consumer = AIOKafkaConsumer(**options, group_id=None, enable_auto_commit=False)
    await admin.start()
    await consumer.start()
    try:
        # The workers' group, also when an API process asks (its own group consumes nothing).
        committed = await admin.list_consumer_group_offsets(app.settings.spice_app_id)
        wanted = [tp for tp in committed if tp.topic in COMMAND_TOPICS + EVENT_TOPICS]
        ends = await consumer.end_offsets(wanted) if wanted else {}
        lag = {(tp.topic, tp.partition): max(0, ends[tp] - committed[tp].offset) for tp in wanted}
        behind = [tp for tp in wanted if tp.topic in oldest_of and lag[(tp.topic, tp.partition)]]
        oldest_waiting.clear()
        if behind:
            consumer.assign(behind)
            for tp in behind:
                consumer.seek(tp, committed[tp].offset)
            fetched = await consumer.getmany(*behind, timeout_ms=1000, max_records=1)
            for tp, records in fetched.items():
                if records:
                    age = max(0.0, time.time() - records[0].timestamp / 1000)
                    oldest_waiting[tp.topic] = max(oldest_waiting.get(tp.topic, 0.0), round(age, 3))
        return lag
    finally:
        await consumer.stop()
        await admin.close()


oldest_waiting: dict[str, float] = {}


def running_publisher() -> Any:
    """The publisher task's Publisher on a worker (None until it starts); never on an API
    process, which does not import the task (importing it would register it)."""
    return app.runtime.tables.publisher()


def worker_lines() -> list[str]:
    """The worker's own: its partitions of the status counts. An API process has none."""
    if not app.runtime.tables.here:
        return []
    tables = app.runtime.tables.module()

    out = ["# TYPE spice_commands gauge"]
    for kind, states in tables.counts()["by_command_type"].items():
        for state, value in states.items():
            out.append(line("spice_commands", value, command_type=kind, status=state))
    return out


async def render() -> str:
    out = [f"# spice role: {app.settings.spice_role}", *worker_lines()]
    publisher = running_publisher()
    if publisher is not None:
        out.append("# TYPE spice_publisher_is_leader gauge")
        out.append(line("spice_publisher_is_leader", int(publisher.stats.is_leader)))
        out.append("# TYPE spice_publisher_events_total counter")
        out.append(line("spice_publisher_events_total", publisher.stats.events))
        if publisher.stats.is_leader:
            lag = await publisher_lag(app.runtime.pool, publisher.checkpoint)
            out.append("# TYPE spice_publisher_lag_events gauge")
            out.append(line("spice_publisher_lag_events", lag["events"]))
            out.append("# TYPE spice_publisher_oldest_unpublished_seconds gauge")
            out.append(line("spice_publisher_oldest_unpublished_seconds", lag["oldest_age_seconds"]))
    out.append("# TYPE spice_consumer_lag gauge")
    for (topic, partition), behind in sorted((await consumer_lag(EVENT_TOPICS)).items()):
        kind = "projection" if topic in EVENT_TOPICS else "command"
        out.append(line("spice_consumer_lag", behind, topic=topic, partition=partition, consumer=kind))
    out.append("# HELP spice_projection_oldest_unprojected_seconds Age of the oldest event not yet "
               "consumed by the projection agents (0 when caught up)")
    out.append("# TYPE spice_projection_oldest_unprojected_seconds gauge")
    for topic in EVENT_TOPICS:
        out.append(line("spice_projection_oldest_unprojected_seconds", oldest_waiting.get(topic, 0.0),
                        topic=topic))
    out.append("# TYPE spice_dlq_depth gauge")
    for topic, depth in (await dlq_depth(app.settings)).items():
        out.append(line("spice_dlq_depth", depth, topic=topic))
    out.append("# TYPE spice_circuit_open gauge")
    for name, breaker in app.runtime.breakers.items():
        out.append(line("spice_circuit_open", int(breaker.state != "closed"), store=name))
    out.append("# HELP spice_status_redis_down 1 while status writes skip Redis (known down)")
    out.append("# TYPE spice_status_redis_down gauge")
    out.append(line("spice_status_redis_down", int(app.runtime.status.redis_down)))
    out.append("# TYPE spice_status_redis_missed gauge")
    out.append(line("spice_status_redis_missed", app.runtime.status.missed))
    out.append("# HELP spice_event_loop_lag_max_seconds The latest a 0.25 s timer woke in the "
               "last minute: the longest the worker's loop was held")
    out.append("# TYPE spice_event_loop_lag_max_seconds gauge")
    out.append(line("spice_event_loop_lag_max_seconds", round(loop_lag.meter.worst_recent, 4)))
    out.extend(render_all())
    return "\n".join(out) + "\n"


class MetricsView(ApiView):
    access = {"get": Access.OPS}

    async def get(self, request: Request) -> Response:
        return self.text(await render(), content_type="text/plain; version=0.0.4")
