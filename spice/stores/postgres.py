"""The PostgreSQL pool and the schema, migrated at start-up under an advisory lock."""
from __future__ import annotations

import asyncpg

from spice.settings import Settings

MIGRATION_LOCK = 0x5E1CE  # any constant: serialises concurrent start-ups

# Append only: a deployed migration is never edited, a new one is added.
MIGRATIONS: list[str] = [
    # 1: write side — sequence allocator and the event store's index of stored events
    """
    CREATE TABLE aggregate_sequences (
        aggregate_id text PRIMARY KEY,
        last_seq bigint NOT NULL
    );
    CREATE TABLE event_index (
        event_id text PRIMARY KEY,
        aggregate_type text NOT NULL,
        aggregate_id text NOT NULL,
        sequence_number bigint,
        content_hash text NOT NULL,
        batch_key text NOT NULL,
        stored boolean NOT NULL DEFAULT false,
        created_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX event_index_by_aggregate ON event_index (aggregate_id, sequence_number);
    CREATE INDEX event_index_pending ON event_index (created_at) WHERE NOT stored;
    """,
    # 2: processed-events registry
    """
    CREATE TABLE processed_events (
        handler text NOT NULL,
        event_id text NOT NULL,
        aggregate_id text NOT NULL,
        sequence_number bigint,
        status text NOT NULL CHECK (status IN ('processing','done','failed','skipped_stale')),
        owner text,
        lease_until timestamptz,
        attempt_count int NOT NULL DEFAULT 0,
        last_error text,
        updated_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (handler, event_id)
    );
    CREATE TABLE aggregate_versions (
        handler text NOT NULL,
        aggregate_id text NOT NULL,
        last_sequence bigint NOT NULL,
        PRIMARY KEY (handler, aggregate_id)
    );
    """,
    # 3: publisher lag is "stored batches after the checkpoint"
    """
    CREATE INDEX event_index_by_batch ON event_index (batch_key) WHERE stored;
    """,
    # 4: the default graph store (TerminusDB in production)
    """
    CREATE TABLE graph_databases (
        name text PRIMARY KEY, doc jsonb NOT NULL, version bigint NOT NULL
    );
    CREATE TABLE graph_classes (
        db text NOT NULL, class_id text NOT NULL, doc jsonb NOT NULL, version bigint NOT NULL,
        PRIMARY KEY (db, class_id)
    );
    CREATE TABLE graph_instances (
        db text NOT NULL, class_id text NOT NULL, instance_id text NOT NULL,
        data jsonb NOT NULL, version bigint NOT NULL,
        PRIMARY KEY (db, class_id, instance_id)
    );
    """,
]


async def migrate(conn: asyncpg.Connection) -> int:
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_version (version int NOT NULL)")
        current = await conn.fetchval("SELECT max(version) FROM schema_version") or 0
        for number, sql in enumerate(MIGRATIONS[current:], start=current + 1):
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute("INSERT INTO schema_version VALUES ($1)", number)
        return len(MIGRATIONS)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK)


async def create_pool(settings: Settings, *, migrate_schema: bool = True) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        settings.postgres_dsn, min_size=2, max_size=settings.postgres_pool_max,
        command_timeout=30)
    if migrate_schema:
        async with pool.acquire() as conn:
            await migrate(conn)
    return pool
