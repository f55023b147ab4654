"""Every topic the service uses, with its partition count, created at start-up.

Faust creates only the topics it owns (changelogs, repartitions); an agent's
source topic must exist before the agent subscribes, or the broker (with
auto-creation off, as it should be) leaves the agent waiting.
"""
from __future__ import annotations

import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import TopicAlreadyExistsError

from spice.kafka_client import kafka_options
from spice.settings import Settings

log = logging.getLogger(__name__)

COMMAND_TOPICS = ("ontology_commands", "instance_commands", "database_commands")
EVENT_TOPICS = ("ontology_events", "instance_events", "database_events")
STATUS_TOPIC = "command_status"
PUBLISHER_DLQ = "publisher_unroutable_dlq"
DLQ_TOPICS = tuple(f"{t}_dlq" for t in COMMAND_TOPICS) + ("projection_failures_dlq", PUBLISHER_DLQ)


# The tables' changelogs (Faust creates them compacted). Kafka compacts only closed
# segments, and its default segment lives 7 days: a table's changelog then kept every
# write of the week, and a worker's start-up (table recovery reads the changelog)
# grew with it, past 90 s on a dev stack after a day of benchmarks. Short segments,
# an eager cleaner and a short tombstone retention keep it near the table's size: the
# uncompacted tail (the open segment) is what every recovery reads beyond the live
# keys, so a segment closes after 30 s (2 minutes kept ~30,000 offsets a partition at
# 250 commands/s, and a restarted worker took 33-46 s against 20-35 s with 30 s).
CHANGELOG_CONFIGS = {
    "cleanup.policy": "compact",
    "segment.ms": str(30 * 1000),
    "min.cleanable.dirty.ratio": "0.1",
    # Longer than a table recovery takes, or a reader could miss a tombstone (and keep a
    # finished command the expiry then tombstones again: harmless). Short, because a
    # tombstone is a record every recovery reads until it goes.
    "delete.retention.ms": str(30 * 1000),
}


def all_topics(partitions: int) -> dict[str, int]:
    topics = {t: partitions for t in COMMAND_TOPICS + EVENT_TOPICS + (STATUS_TOPIC,)}
    # Dead letters are few and read in order by operators: one partition keeps them ordered.
    topics.update({t: 1 for t in DLQ_TOPICS})
    return topics


async def ensure_topics(settings: Settings, partitions: int, app_id: str) -> list[str]:
    """Create the missing topics; returns the names created."""
    admin = AIOKafkaAdminClient(**kafka_options(settings), request_timeout_ms=15000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        durable = {"min.insync.replicas": str(settings.topic_min_insync_replicas)}
        missing = [NewTopic(name, count, settings.topic_replication_factor, topic_configs=durable)
                   for name, count in all_topics(partitions).items() if name not in existing]
        if missing:
            try:
                await admin.create_topics(missing)
            except TopicAlreadyExistsError:
                pass  # another worker won the race
            log.info("created topics %s", [t.name for t in missing])
        await _configure_changelogs(admin, existing, app_id, durable)
        return [t.name for t in missing]
    finally:
        await admin.close()


async def _configure_changelogs(admin: AIOKafkaAdminClient, existing: set[str],
                                app_id: str, durable: dict[str, str]) -> None:
    """This app's changelogs created before CHANGELOG_CONFIGS existed get it too
    (AlterConfigs sets the whole topic config, hence cleanup.policy in it). Only ours:
    another Faust app on the same cluster keeps its own settings."""
    changelogs = sorted(t for t in existing
                        if t.startswith(f"{app_id}-") and t.endswith("-changelog"))
    if changelogs:
        await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, name,
                                                  {**CHANGELOG_CONFIGS, **durable})
                                   for name in changelogs])
