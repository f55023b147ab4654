"""The process's connections and adapters, opened once and shared by agents and views."""
from __future__ import annotations

import json
import os
import socket
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer

from spice.handlers.commands import CommandHandler
from spice.handlers.projections import ProjectionHandler
from spice.kafka_client import kafka_options
from spice.partitioner import KeyPartitioner
from spice.settings import Settings
from spice.stores.audit import AuditIndex
from spice.stores.breaker import CircuitBreaker, Guarded
from spice.stores.failures import FailureThrottle
from spice.stores.graph import GraphStore
from spice.stores.keys import KeyStore, bootstrap_name
from spice.stores.postgres import create_pool
from spice.stores.projection_postgres import FusedProjection
from spice.stores.ratelimit import RateLimiter
from spice.stores.registry import PostgresRegistry
from spice.stores.s3 import ensure_bucket, open_s3_client
from spice.stores.s3_event_store import S3EventStore
from spice.stores.s3_signed import SignedS3
from spice.stores.search import PostgresSearchIndex, SearchIndex
from spice.stores.status import StatusTracker
from spice.stores.status_topic import StatusTopicWriter
from spice.topics import STATUS_TOPIC


def make_graph_store(settings: Settings, pool: asyncpg.Pool) -> GraphStore:
    if settings.graph_backend == "terminusdb":
        from spice.stores.graph_terminus import TerminusGraphStore

        return TerminusGraphStore(settings.terminusdb_url, settings.terminusdb_user,
                                  settings.terminusdb_password.get_secret_value())
    from spice.stores.graph_postgres import PostgresGraphStore

    return PostgresGraphStore(pool)


def make_search_index(settings: Settings, pool: asyncpg.Pool) -> SearchIndex:
    if settings.search_backend == "elasticsearch":
        from spice.stores.search_elasticsearch import ElasticsearchSearchIndex

        return ElasticsearchSearchIndex.from_settings(settings)  # type: ignore[return-value]
    return PostgresSearchIndex(pool)


@dataclass
class Runtime:
    settings: Settings
    pool: asyncpg.Pool
    s3: Any
    redis: aioredis.Redis
    producer: AIOKafkaProducer
    event_store: S3EventStore
    graph: GraphStore
    registry: PostgresRegistry
    status: StatusTracker
    handler: CommandHandler
    search: SearchIndex
    projector: ProjectionHandler
    breakers: dict[str, CircuitBreaker]
    owner: str
    keys: KeyStore
    rate_limiter: RateLimiter
    failed_auth: FailureThrottle = field(default_factory=FailureThrottle)
    # What only the workers' tables know, as this process's role reaches it
    # (spice/web/tables_access.py); set by the app when it starts.
    tables: Any = None
    _stack: AsyncExitStack = field(repr=False, default_factory=AsyncExitStack)

    @classmethod
    async def open(cls, settings: Settings) -> Runtime:
        stack = AsyncExitStack()
        try:
            return await cls._open(settings, stack)
        except BaseException:
            await stack.aclose()
            raise

    @classmethod
    async def _open(cls, settings: Settings, stack: AsyncExitStack) -> Runtime:
        owner = f"{socket.gethostname()}:{os.getpid()}"
        pool = await create_pool(settings)
        stack.push_async_callback(pool.close)
        s3 = await open_s3_client(settings, stack)
        await ensure_bucket(s3, settings.event_store_bucket)
        # health_check_interval: a pooled connection idle for a while is pinged before
        # use, so one that a Redis restart broke is replaced instead of failing a call.
        tls = {"ssl_ca_certs": settings.redis_ssl_ca_certs} if settings.redis_ssl_ca_certs else {}
        password = settings.redis_password.get_secret_value() or None
        redis = aioredis.from_url(settings.redis_url, password=password,
                                  decode_responses=True, **tls,
                                  socket_timeout=5, socket_connect_timeout=2,
                                  health_check_interval=5)
        stack.push_async_callback(redis.aclose)
        producer = AIOKafkaProducer(**kafka_options(settings),
                                    acks="all", enable_idempotence=True, linger_ms=2,
                                    max_request_size=8 << 20,
                                    # batches of table changelog records (tables/changelog.py);
                                    # under the broker's 1 MiB message limit
                                    max_batch_size=512 << 10, partitioner=KeyPartitioner())
        await producer.start()
        stack.push_async_callback(producer.stop)
        breakers = {name: CircuitBreaker(name) for name in ("event_store", "graph")}
        signed = SignedS3.from_settings(settings)
        stack.push_async_callback(signed.close)
        event_store = S3EventStore(
            s3, signed, pool, settings.event_store_bucket,
            max_batch=settings.event_store_group_commit_max,
            linger_ms=settings.event_store_group_commit_wait_ms)
        stack.push_async_callback(event_store.close)
        graph = make_graph_store(settings, pool)
        if hasattr(graph, "close"):  # an HTTP adapter's session
            stack.push_async_callback(graph.close)

        status_topic = StatusTopicWriter(producer, STATUS_TOPIC, settings.topic_partitions)
        stack.push_async_callback(status_topic.close)

        async def dead_letter(topic: str, payload: dict[str, Any]) -> None:
            aggregate = str(payload.get("envelope", {}).get("aggregate_id", ""))
            await producer.send_and_wait(topic, json.dumps(payload, default=str).encode(),
                                         key=aggregate.encode())

        status = StatusTracker(redis, settings.command_status_ttl_seconds, emit=status_topic.emit)
        stack.push_async_callback(status.close)
        registry = PostgresRegistry(pool, owner, settings.registry_lease_seconds)
        handler = CommandHandler(
            Guarded(event_store, breakers["event_store"]), registry,  # type: ignore[arg-type]
            Guarded(graph, breakers["graph"]), status, dead_letter,  # type: ignore[arg-type]
            max_attempts=settings.command_max_attempts, retry_base=settings.command_retry_base_seconds)
        search = make_search_index(settings, pool)
        if hasattr(search, "close"):
            stack.push_async_callback(search.close)
        # The default read model shares the registry's pool: claims, writes and
        # mark-done of a batch go in one statement.
        fused = FusedProjection(pool, search.table) if isinstance(search, PostgresSearchIndex) else None
        projector = ProjectionHandler(registry, search, status, dead_letter,
                                      max_attempts=settings.command_max_attempts,
                                      retry_base=settings.command_retry_base_seconds, fused=fused)
        keys = KeyStore(pool)
        if settings.auth_bootstrap_admin_key:
            bootstrap = settings.auth_bootstrap_admin_key.get_secret_value()
            await keys.create(bootstrap_name(bootstrap), {"*": "admin"}, key=bootstrap)
        return cls(settings, pool, s3, redis, producer, event_store, graph, registry, status,
                   handler, search, projector, breakers, owner, keys, RateLimiter(redis), _stack=stack)

    @property
    def audit(self) -> AuditIndex:
        """History, time travel and the audit log (read from PostgreSQL, next to the
        event index)."""
        return AuditIndex(self.pool)

    async def close(self) -> None:
        await self._stack.aclose()
