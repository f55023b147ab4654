"""The PostgreSQL pool and the schema, migrated at start-up under an advisory lock."""
from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from spice.settings import Settings

MIGRATION_LOCK = 0x5E1CE  # any constant: serialises concurrent start-ups


def _reserve_distinct_query(lock_rows: str) -> str:
    """The set-based body of spice_reserve_distinct, shared by migrations 4 and 8: they
    differ only in how `locked` finds the sequence rows to lock. Its text is part of
    deployed migrations: never edit it; a changed body is a new migration."""
    return f"""        WITH input AS (
            SELECT t.*, (t.ord - 1)::int AS i
              FROM unnest(p_ids, p_types, p_aggs, p_seqs, p_hashes, p_alloc, p_expected)
                   WITH ORDINALITY AS t(id, typ, agg, sq, hash, alloc, expected, ord)),
        locked AS (
            SELECT s.aggregate_id, s.last_seq FROM aggregate_sequences s
             WHERE {lock_rows}
             ORDER BY s.aggregate_id FOR UPDATE),
        decided AS (
            SELECT input.*, l.last_seq,
                   CASE WHEN input.alloc THEN l.last_seq + 1 ELSE input.sq END AS new_seq,
                   coalesce(input.alloc AND input.expected IS NOT NULL
                            AND input.expected <> l.last_seq, false) AS mismatch
              FROM input LEFT JOIN locked l ON l.aggregate_id = input.agg),
        inserted AS (
            INSERT INTO event_index
            SELECT id, typ, agg, new_seq, hash, p_batch FROM decided WHERE NOT mismatch
            ON CONFLICT (event_id) DO NOTHING RETURNING event_id),
        bumped AS (
            UPDATE aggregate_sequences s SET last_seq = d.new_seq FROM decided d
             WHERE d.alloc AND s.aggregate_id = d.agg AND d.id IN (SELECT event_id FROM inserted)
            RETURNING 1)
        SELECT d.i,
               CASE WHEN d.id IN (SELECT event_id FROM inserted) THEN 'reserved'
                    WHEN e.event_id IS NULL THEN 'sequence_conflict'
                    WHEN e.content_hash = d.hash THEN 'duplicate'
                    ELSE 'conflict' END,
               CASE WHEN d.mismatch AND e.event_id IS NULL THEN d.last_seq ELSE d.new_seq END
          FROM decided d LEFT JOIN event_index e ON e.event_id = d.id
         WHERE (SELECT count(*) FROM bumped) >= 0;
"""

# spice_record_batch (migration 12, replaced by 15). 12 looked each event id up in
# audit_events to skip envelopes recorded before (a batch settled twice): a probe of a
# unique index on random ids per envelope plus that index's insert, so the index's
# whole size became the append path's working set as history grew (bench.scale). A
# batch is recorded in the transaction that deletes its pending_batches row, and an
# event id is in one batch only (event_index's key): a batch whose row is already gone
# was recorded before, or undone, and 15 records nothing for it.
_RECORD_BATCH = """    {create} FUNCTION spice_record_batch(p_batch text, p_dbs text[], p_ids text[],
                                       p_lines text[], p_hashes text[])
    RETURNS int LANGUAGE plpgsql AS $$
    DECLARE
        dbs text[] := ARRAY(SELECT DISTINCT d FROM unnest(p_dbs) AS t(d) ORDER BY 1);
{declare}        positions bigint[] := '{{}}';
        links text[] := '{{}}';
        current_db text;
        pos bigint;
        link text;
        recorded int := 0;
        stamp timestamptz;
    BEGIN
        DELETE FROM pending_batches WHERE batch_key = p_batch;
{once}        INSERT INTO audit_chain_heads SELECT d, 0, '', now() FROM unnest(dbs) AS t(d)
            ON CONFLICT DO NOTHING;
        PERFORM 1 FROM audit_chain_heads WHERE db = ANY(dbs) ORDER BY db FOR UPDATE;
        stamp := clock_timestamp();
        FOR i IN 1 .. coalesce(array_length(p_ids, 1), 0) LOOP
            IF current_db IS DISTINCT FROM p_dbs[i] THEN
                IF current_db IS NOT NULL THEN
                    UPDATE audit_chain_heads SET chain_position = pos, chain_hash = link,
                        recorded_at = stamp WHERE db = current_db;
                END IF;
                current_db := p_dbs[i];
                SELECT h.chain_position, h.chain_hash INTO pos, link
                    FROM audit_chain_heads h WHERE h.db = current_db;
            END IF;
{skip}            pos := pos + 1;
            link := encode(sha256(convert_to(link || p_hashes[i], 'UTF8')), 'hex');
            positions[i] := pos;
            links[i] := link;
            recorded := recorded + 1;
        END LOOP;
        IF current_db IS NOT NULL THEN
            UPDATE audit_chain_heads SET chain_position = pos, chain_hash = link,
                recorded_at = stamp WHERE db = current_db;
        END IF;
        INSERT INTO audit_events
        SELECT t.db, t.pos, e->>'event_id', coalesce(e->'metadata'->>'kind', 'domain'),
               e->>'event_type', e->'metadata'->>'command_type',
               coalesce(e->'metadata'->>'command_id', e->>'event_id'),
               e->>'aggregate_type', e->>'aggregate_id', (e->>'sequence_number')::bigint,
               coalesce(e->>'actor', 'system'), (e->>'occurred_at')::timestamptz, stamp,
               CASE WHEN coalesce(e->'metadata'->>'kind', 'domain') = 'command' THEN 'requested'
                    WHEN e->>'event_type' = 'COMMAND_FAILED' THEN 'failed'
                    ELSE 'succeeded' END,
               coalesce(e->'data', '{{}}'), coalesce(e->'metadata', '{{}}'), p_batch, t.hash, t.link
        FROM unnest(p_dbs, p_lines, p_hashes, positions, links) AS t(db, line, hash, pos, link),
             LATERAL (SELECT t.line::jsonb AS e) AS parsed
        WHERE t.pos IS NOT NULL;
        RETURN recorded;
    END $$;
"""
_RECORD_ONCE_12 = {
    "declare": "        known text[] := ARRAY(SELECT event_id FROM audit_events"
               " WHERE event_id = ANY(p_ids));\n",
    "once": "",
    "skip": ("            IF p_ids[i] = ANY(known) THEN  -- recorded before (a batch settled twice)\n"
             "                positions[i] := NULL;\n"
             "                CONTINUE;\n"
             "            END IF;\n")}
_RECORD_ONCE_15 = {
    "declare": "        deleted int;\n",
    "once": ("        GET DIAGNOSTICS deleted = ROW_COUNT;\n"
             "        IF deleted = 0 THEN  -- recorded before (a batch settled twice), or undone\n"
             "            RETURN 0;\n"
             "        END IF;\n"),
    "skip": ""}

# Append only: a deployed migration is never edited, a new one is added.

MIGRATIONS: list[str] = [
    # 1: write side. The sequence allocator, and the event store's index of event ids
    # (dedup, per-aggregate reads). A batch is pending from phase 1 of its commit
    # until its PUT is known to have landed; every other indexed event is stored.
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
        batch_key text NOT NULL
    );
    CREATE INDEX event_index_by_aggregate ON event_index (aggregate_id, sequence_number);
    CREATE INDEX event_index_by_batch ON event_index (batch_key);
    CREATE TABLE pending_batches (
        batch_key text PRIMARY KEY,
        created_at timestamptz NOT NULL DEFAULT now()
    );
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
    # 3: the default graph store (TerminusDB in production)
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
    # 4: phase 1 of a group commit in one round trip (see spice/stores/s3_event_store.py).
    # Outcome per input row: reserved (with its sequence), duplicate, conflict (same id,
    # other payload) or sequence_conflict (with the aggregate's actual last sequence).
    """
    CREATE FUNCTION spice_reserve(p_ids text[], p_types text[], p_aggs text[], p_seqs bigint[],
                                  p_hashes text[], p_alloc boolean[], p_expected bigint[],
                                  p_batch text)
    RETURNS TABLE (idx int, outcome text, seq bigint)
    LANGUAGE plpgsql AS $$
    DECLARE
        i int;
        stored_hash text;
        last bigint;
        allocating text[];
    BEGIN
        INSERT INTO pending_batches (batch_key) VALUES (p_batch);
        allocating := ARRAY(SELECT DISTINCT a FROM unnest(p_aggs, p_alloc) AS t(a, al)
                            WHERE al ORDER BY a);
        INSERT INTO aggregate_sequences SELECT unnest(allocating), 0 ON CONFLICT DO NOTHING;
        -- Lock in one fixed order, so two concurrent commits cannot deadlock.
        PERFORM 1 FROM aggregate_sequences WHERE aggregate_id = ANY(allocating)
            ORDER BY aggregate_id FOR UPDATE;
        FOR i IN 1 .. coalesce(array_length(p_ids, 1), 0) LOOP
            idx := i - 1;
            seq := p_seqs[i];
            IF p_alloc[i] THEN
                SELECT last_seq INTO last FROM aggregate_sequences WHERE aggregate_id = p_aggs[i];
                IF p_expected[i] IS NOT NULL AND p_expected[i] <> last THEN
                    SELECT content_hash INTO stored_hash FROM event_index WHERE event_id = p_ids[i];
                    IF NOT FOUND THEN
                        outcome := 'sequence_conflict'; seq := last; RETURN NEXT; CONTINUE;
                    END IF;
                    outcome := CASE WHEN stored_hash = p_hashes[i] THEN 'duplicate' ELSE 'conflict' END;
                    RETURN NEXT; CONTINUE;
                END IF;
                seq := last + 1;
            END IF;
            INSERT INTO event_index VALUES (p_ids[i], p_types[i], p_aggs[i], seq, p_hashes[i], p_batch)
                ON CONFLICT (event_id) DO NOTHING;
            IF NOT FOUND THEN
                SELECT content_hash INTO stored_hash FROM event_index WHERE event_id = p_ids[i];
                outcome := CASE WHEN stored_hash = p_hashes[i] THEN 'duplicate' ELSE 'conflict' END;
                RETURN NEXT; CONTINUE;
            END IF;
            IF p_alloc[i] THEN
                UPDATE aggregate_sequences SET last_seq = seq WHERE aggregate_id = p_aggs[i];
            END IF;
            outcome := 'reserved';
            RETURN NEXT;
        END LOOP;
    END $$;

    -- The same, set-based, for the common batch where no aggregate is allocated twice:
    -- about five times faster than the row-by-row loop above.
    CREATE FUNCTION spice_reserve_distinct(p_ids text[], p_types text[], p_aggs text[],
                                           p_seqs bigint[], p_hashes text[], p_alloc boolean[],
                                           p_expected bigint[], p_batch text)
    RETURNS TABLE (idx int, outcome text, seq bigint)
    LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO pending_batches (batch_key) VALUES (p_batch);
        INSERT INTO aggregate_sequences
            SELECT DISTINCT a, 0 FROM unnest(p_aggs, p_alloc) AS t(a, al) WHERE al ORDER BY 1
            ON CONFLICT DO NOTHING;
        RETURN QUERY
""" + _reserve_distinct_query("s.aggregate_id IN (SELECT agg FROM input WHERE alloc)") + """    END $$;
    """,
    # 5: the default search read model (Elasticsearch in production)
    """
    CREATE EXTENSION IF NOT EXISTS pg_trgm;
    CREATE TABLE search_docs (
        db text NOT NULL,
        kind text NOT NULL CHECK (kind IN ('class', 'instance')),
        doc_id text NOT NULL,
        class_id text,
        version bigint NOT NULL,
        deleted boolean NOT NULL DEFAULT false,
        labels text NOT NULL DEFAULT '',
        body jsonb NOT NULL DEFAULT '{}',
        tsv tsvector GENERATED ALWAYS AS (to_tsvector('simple', labels)) STORED,
        PRIMARY KEY (db, kind, doc_id)
    );
    CREATE INDEX search_docs_tsv ON search_docs USING gin (tsv);
    CREATE INDEX search_docs_trgm ON search_docs USING gin (labels gin_trgm_ops);
    """,
    # 6: API keys. Only a hash of each key is kept; grants map a database (or '*')
    # to a role.
    """
    CREATE TABLE api_keys (
        key_id text PRIMARY KEY,
        name text NOT NULL,
        key_hash text NOT NULL,
        grants jsonb NOT NULL,
        rate_per_second double precision,
        created_at timestamptz NOT NULL DEFAULT now(),
        revoked_at timestamptz
    );
    """,
    # 7: where the sweeper (spice/agents/sweeper.py) has checked the event store up to
    """
    CREATE TABLE sweep_positions (name text PRIMARY KEY, position text NOT NULL);
    """,
    # 8: spice_reserve_distinct locked its aggregates through a semi-join that the
    # planner ran as a sequential scan of aggregate_sequences: a cost that grew with
    # every aggregate ever written (1.3 ms of an 8 ms commit at 7,000 aggregates).
    # `= ANY(array)` is an index lookup per aggregate, whatever the table's size.
    """
    CREATE OR REPLACE FUNCTION spice_reserve_distinct(
        p_ids text[], p_types text[], p_aggs text[], p_seqs bigint[], p_hashes text[],
        p_alloc boolean[], p_expected bigint[], p_batch text)
    RETURNS TABLE (idx int, outcome text, seq bigint)
    LANGUAGE plpgsql AS $$
    DECLARE
        allocating text[];
    BEGIN
        INSERT INTO pending_batches (batch_key) VALUES (p_batch);
        allocating := ARRAY(SELECT DISTINCT a FROM unnest(p_aggs, p_alloc) AS t(a, al)
                            WHERE al ORDER BY a);
        INSERT INTO aggregate_sequences SELECT unnest(allocating), 0 ON CONFLICT DO NOTHING;
        RETURN QUERY
""" + _reserve_distinct_query("s.aggregate_id = ANY(allocating)") + """    END $$;
    """,
    # 9: which bucket a stored batch is in. Several event stores (a test's, a benchmark's)
    # may share one database, and the index-driven sweeper and publisher lookback were
    # fetching every other bucket's batches only to get 404s (a seventh of a worker's
    # CPU after a benchmark). Written when the batch is marked stored; a batch without
    # a row (older, or not yet marked) is still listed, as before.
    """
    CREATE TABLE batch_buckets (batch_key text PRIMARY KEY, bucket text NOT NULL);
    """,
    # 10: key names are unique (the actor `key:<name>` must mean one key); older
    # duplicates keep their name with the key id appended.
    """
    UPDATE api_keys k SET name = k.name || '#' || k.key_id
    WHERE EXISTS (SELECT 1 FROM api_keys o WHERE o.name = k.name AND o.key_id < k.key_id);
    CREATE UNIQUE INDEX api_keys_name ON api_keys (name);
    """,
    # 11: graph queries (spice/stores/graph_query.py) follow relationships backwards:
    # "which instances hold this id under this predicate" is `data @> {"p": id}`, an
    # index lookup here instead of a scan of the class.
    """
    CREATE INDEX graph_instances_data ON graph_instances USING gin (data jsonb_path_ops);
    """,
    # 12: the audit index (spice/stores/audit.py): every stored envelope with who, when
    # and what, in a hash chain per database, recorded when its batch is marked stored.
    """
    CREATE TABLE audit_events (
        db text NOT NULL,
        chain_position bigint NOT NULL,
        event_id text NOT NULL,
        kind text NOT NULL,
        event_type text NOT NULL,
        command_type text,
        command_id text NOT NULL,
        aggregate_type text NOT NULL,
        aggregate_id text NOT NULL,
        sequence_number bigint,
        actor text NOT NULL,
        occurred_at timestamptz NOT NULL,
        recorded_at timestamptz NOT NULL,
        outcome text NOT NULL CHECK (outcome IN ('requested', 'succeeded', 'failed')),
        data jsonb NOT NULL,
        metadata jsonb NOT NULL,
        batch_key text NOT NULL,
        line_hash text NOT NULL,
        chain_hash text NOT NULL,
        PRIMARY KEY (db, chain_position)
    );
    CREATE UNIQUE INDEX audit_events_event ON audit_events (event_id);
    CREATE INDEX audit_events_aggregate ON audit_events (aggregate_id, chain_position);
    CREATE INDEX audit_events_versions ON audit_events (aggregate_id, sequence_number)
        WHERE outcome = 'succeeded';
    CREATE INDEX audit_events_db_time ON audit_events (db, recorded_at, chain_position);
    CREATE INDEX audit_events_db_actor ON audit_events (db, actor, recorded_at, chain_position);
    CREATE INDEX audit_events_actor ON audit_events (actor, recorded_at);
    CREATE INDEX audit_events_time ON audit_events (recorded_at);
    CREATE INDEX audit_events_schema ON audit_events (db, chain_position)
        WHERE outcome = 'succeeded' AND aggregate_type IN ('OntologyClass', 'Database');
    CREATE TABLE audit_chain_heads (
        db text PRIMARY KEY,
        chain_position bigint NOT NULL,
        chain_hash text NOT NULL,
        recorded_at timestamptz NOT NULL
    );

    -- Mark a batch stored and record its envelopes in the audit index, one round trip.
    -- p_dbs is sorted so that the envelopes of one database are together (in their
    -- batch order); heads are locked in database order, so two recorders cannot
    -- deadlock. Link n of a database's chain: sha256(link n-1 || sha256(stored line)).
""" + _RECORD_BATCH.format(create="CREATE", **_RECORD_ONCE_12) + """    """,
    # 13: a stopping worker ends the leases it holds (PostgresRegistry.release_owned):
    # the claims in progress, by owner, without reading the whole registry.
    """
    CREATE INDEX processed_events_in_progress ON processed_events (owner)
        WHERE status = 'processing';
    """,
    # 14: the registry's retention (registry.prune_finished) deletes the oldest finished
    # rows a chunk at a time, without reading the whole registry.
    """
    CREATE INDEX processed_events_finished ON processed_events (updated_at)
        WHERE status IN ('done', 'skipped_stale');
    """,
    # 15: the audit index is kept unique per event by the pending_batches row its batch
    # deletes (_RECORD_BATCH); the unique index on random event ids goes.
    """
    DROP INDEX IF EXISTS audit_events_event;
""" + _RECORD_BATCH.format(create="CREATE OR REPLACE", **_RECORD_ONCE_15),
    # 16: the registry's key leads with the event id. The sweeper does not know which
    # handler an envelope is for and asked for both: under (handler, event_id) that is
    # two descents of a key of random ids per envelope, each a cache miss in a large
    # registry (a pass over 10,000 envelopes took 1.9x as long at 10^7 registry rows as
    # at 10^4); under (event_id, handler) it is one. Every other lookup names both.
    """
    CREATE UNIQUE INDEX processed_events_event ON processed_events (event_id, handler);
    ALTER TABLE processed_events DROP CONSTRAINT processed_events_pkey,
        ADD CONSTRAINT processed_events_pkey PRIMARY KEY USING INDEX processed_events_event;
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


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Pooled connections carry no session state (no SET, LISTEN or session locks), so
    the default reset query, one more round trip on every release, is skipped."""


async def create_pool(settings: Settings, *, migrate_schema: bool = True) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        settings.postgres_dsn, min_size=2, max_size=settings.postgres_pool_max,
        command_timeout=30, reset=_keep_session,
        # No JIT compilation: the service's statements are short, and a plan whose
        # estimated cost crosses jit_above_cost (a registry probe per envelope of a
        # sweeper pass, estimated at 20,000 rows) spent 150-450 ms compiling what runs
        # in 100 ms. Fixed at connection start, so pooled connections stay alike.
        server_settings={"jit": "off"})
    if migrate_schema:
        async with pool.acquire() as conn:
            await migrate(conn)
    return pool


class Busy(RuntimeError):
    """Someone else holds the lock."""


@asynccontextmanager
async def exclusive(pool: asyncpg.Pool, key: int, what: str) -> AsyncIterator[None]:
    """A cluster-wide lock (a PostgreSQL advisory lock, held by one connection for as long
    as the block runs); Busy, naming `what`, when another process holds it."""
    async with pool.acquire() as conn:
        if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", key):
            raise Busy(f"another {what} is running; try again when it has finished")
        try:
            yield
        finally:
            await conn.fetchval("SELECT pg_advisory_unlock($1)", key)
