"""Projections on the real stack: the search read model follows the domain events.
Requests go through the Python client (spice.client), as an application's would."""
import asyncio
import io
import time
import uuid

from spice.client import SpiceClient
from spice.domain.envelope import Envelope, now
from spice.handlers import rebuild
from spice.stores.s3_event_store import position_at
from spice.stores.search import PostgresSearchIndex
from tests.integration.kafka_helpers import wait_for
from tests.integration.test_api_end_to_end import create_db, unique_db

PROJECTED = {"projected": True, "timeout": 30}


async def test_create_update_delete_are_searchable_changed_and_gone(worker, http):
    client = SpiceClient(worker.url, session=http)
    db = unique_db()
    await create_db(http, worker, db)
    await client.create_class(db, {
        "id": "Person", "label": {"en": "Person", "ko": "사람"},
        "properties": [{"name": "name", "type": "string"}, {"name": "city", "type": "string"}]},
        **PROJECTED)
    await client.create_instance(db, "Person", "p1", {"name": "Ann Lovelace", "city": "London"},
                                 wait=True, **PROJECTED)
    found = await client.search(db, "lovelace")
    assert found["total"] == 1 and found["hits"][0]["id"] == "Person/p1"
    assert (await client.search(db, "lovel"))["total"] == 1  # prefix
    assert (await client.search(db, city="London"))["total"] == 1  # property filter
    assert (await client.search(db, city="Paris"))["total"] == 0
    await client.update_instance(db, "Person", "p1", {"name": "Ada", "city": "Paris"},
                                 wait=True, **PROJECTED)
    assert (await client.search(db, "lovelace"))["total"] == 0
    assert (await client.search(db, "ada"))["hits"][0]["document"]["city"] == "Paris"
    await client.delete_instance(db, "Person", "p1", wait=True, **PROJECTED)
    assert (await client.search(db, "ada"))["total"] == 0


async def test_multilingual_class_labels_are_found(worker, http):
    client = SpiceClient(worker.url, session=http)
    db = unique_db()
    await create_db(http, worker, db)
    for class_id, label in (("Person", {"en": "Person", "ko": "사람"}),
                            ("Company", {"en": "Company", "ko": "회사"})):
        await client.create_class(db, {"id": class_id, "label": label}, **PROJECTED)
    assert [h["id"] for h in (await client.search_classes(db, "회사"))["hits"]] == ["Company"]
    # a typo still finds it
    assert [h["id"] for h in (await client.search_classes(db, "persn"))["hits"]] == ["Person"]


async def test_paging_with_cursor_and_total(worker, http):
    client = SpiceClient(worker.url, session=http)
    db = unique_db()
    await create_db(http, worker, db)
    await client.create_class(db, {"id": "Item", "properties": [{"name": "name", "type": "string"}]},
                              **PROJECTED)
    items = [{"instance_id": f"i{i:02d}", "data": {"name": f"widget {i}"}} for i in range(25)]
    await client.bulk_create(db, "Item", items, timeout=60)

    async def all_searchable():
        return (await client.search(db, "widget"))["total"] == 25

    await wait_for(all_searchable, timeout=30)
    seen, cursor = [], None
    while True:
        page = await client.search(db, "widget", limit=10, cursor=cursor)
        assert page["total"] == 25
        seen += [h["id"] for h in page["hits"]]
        cursor = page["cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(f"Item/i{i:02d}" for i in range(25))


def event(kind, data, seq):
    return Envelope(event_id=str(uuid.uuid4()), event_type=kind, aggregate_type="Instance",
                    aggregate_id="a", occurred_at=now(), data=data,
                    metadata={"kind": "domain", "command_id": str(uuid.uuid4()), "kafka_topic": "x"},
                    sequence_number=seq)


async def test_duplicate_and_out_of_order_events_never_regress(runtime):
    index = PostgresSearchIndex(runtime.pool)
    db = unique_db()
    key = {"db": db, "class_id": "P", "instance_id": "x"}
    v1 = event("INSTANCE_CREATED", {**key, "data": {"name": "one"}}, 1)
    v2 = event("INSTANCE_UPDATED", {**key, "data": {"name": "two"}}, 2)
    gone = event("INSTANCE_DELETED", key, 3)
    for e in (v2, v1, v2, v1):
        await index.apply(e)
    assert (await index.search(db, "two"))["total"] == 1
    assert (await index.search(db, "one"))["total"] == 0
    for e in (gone, v2, v1):
        await index.apply(e)
    assert (await index.search(db, ""))["total"] == 0


async def test_rebuild_gives_the_same_results_as_the_live_index(worker, runtime, http):
    client = SpiceClient(worker.url, session=http)
    db = unique_db()
    await create_db(http, worker, db)
    await client.create_class(db, {"id": "Book", "label": {"en": "Book", "ko": "책"},
                                   "properties": [{"name": "title", "type": "string"}]}, **PROJECTED)
    for i in range(20):
        await client.create_instance(db, "Book", f"b{i}", {"title": f"volume {i}"}, wait=True,
                                     **PROJECTED)
    await client.delete_instance(db, "Book", "b3", wait=True, **PROJECTED)
    before = await client.search(db, "volume", limit=50)
    out = io.StringIO()
    report = await rebuild.rebuild(runtime, db, out=out)
    assert report["envelopes_replayed"] > 0 and "ETA" in out.getvalue()
    after = await client.search(db, "volume", limit=50)
    assert after["total"] == before["total"] == 19
    assert sorted(h["id"] for h in after["hits"]) == sorted(h["id"] for h in before["hits"])
    assert (await rebuild.verify(runtime, db))["drift_count"] == 0


async def test_rebuild_of_one_database_repairs_drift_and_leaves_others_alone(worker, runtime, http):
    """The --db swap writes only rows that differ: a stray document goes, a changed one
    is restored, a missing one comes back, and another database is untouched."""
    client = SpiceClient(worker.url, session=http)
    db, other = unique_db(), unique_db()
    for name in (db, other):
        await create_db(http, worker, name)
        await client.create_class(name, {"id": "Book", "properties": [{"name": "title", "type": "string"}]},
                                  **PROJECTED)
        for i in range(3):
            await client.create_instance(name, "Book", f"b{i}", {"title": f"volume {i}"}, wait=True,
                                         **PROJECTED)
    await drift(runtime, db)
    others_before = await runtime.search.indexed_documents(other)
    assert (await rebuild.verify(runtime, db))["drift_count"] == 3
    await rebuild.rebuild(runtime, db, out=io.StringIO())
    assert (await rebuild.verify(runtime, db))["drift_count"] == 0
    found = await client.search(db, "volume", limit=50)
    assert sorted(h["id"] for h in found["hits"]) == ["Book/b0", "Book/b1", "Book/b2"]
    assert await runtime.search.indexed_documents(other) == others_before


async def test_rebuild_of_one_database_reads_only_its_own_batches(worker, runtime, http,
                                                                 monkeypatch):
    """Before the lookback window, a --db rebuild reads the batches the audit index names
    for the database, not every batch of the store: its cost follows the database, not
    the store's history. Every envelope of the database is replayed, and only those."""
    client = SpiceClient(worker.url, session=http)
    db = unique_db()
    await create_db(http, worker, db)
    await client.create_class(db, {"id": "Book", "properties": [{"name": "title", "type": "string"}]},
                              **PROJECTED)
    for i in range(3):
        await client.create_instance(db, "Book", f"b{i}", {"title": f"volume {i}"}, wait=True,
                                     **PROJECTED)
    store = runtime.event_store
    read: list[str] = []
    original = store.read_raw

    async def recording(key):
        read.append(key)
        return await original(key)

    monkeypatch.setattr(store, "read_raw", recording)
    horizon = position_at(time.time() - runtime.settings.event_publisher_lookback_seconds)
    report = await rebuild.rebuild(runtime, db, out=io.StringIO())
    async with runtime.pool.acquire() as conn:
        own = {r["batch_key"] for r in await conn.fetch(
            "SELECT DISTINCT batch_key FROM audit_events WHERE db = $1", db)}
        recorded = await conn.fetchval("SELECT count(*) FROM audit_events WHERE db = $1", db)
    assert [key for key in read if key < horizon and key not in own] == []
    assert own <= set(read)
    # Its own envelopes, each counted once (or twice, when the lookback pass replays one
    # the rebuild applied before the swap): none of another database's.
    assert recorded <= report["envelopes_replayed"] <= 2 * recorded
    assert (await rebuild.verify(runtime, db))["drift_count"] == 0


async def drift(runtime, db):
    """Change, remove and add a document behind the projection's back, in whichever
    read model this run uses."""
    if runtime.settings.search_backend == "elasticsearch":
        from spice.stores.search_elasticsearch import alias_name

        es, alias = runtime.search.es, alias_name(db, "instance")
        await es.index(index=alias, id="Book/b0", refresh=True, document={
            "doc_id": "Book/b0", "class_id": "Book", "version": 1, "deleted": False,
            "labels": "wrong", "body": {"title": "wrong"}, "document": {"title": "wrong"}},
            version=10**9, version_type="external")
        await es.delete(index=alias, id="Book/b1", refresh=True)
        await es.index(index=alias, id="Book/stray", refresh=True, document={
            "doc_id": "Book/stray", "class_id": "Book", "version": 1, "deleted": False,
            "labels": "stray", "body": {}, "document": {}})
        return
    async with runtime.pool.acquire() as conn:
        await conn.execute("UPDATE search_docs SET body = '{\"title\": \"wrong\"}', labels = 'wrong' "
                           "WHERE db = $1 AND doc_id = 'Book/b0'", db)
        await conn.execute("DELETE FROM search_docs WHERE db = $1 AND doc_id = 'Book/b1'", db)
        await conn.execute("INSERT INTO search_docs (db, kind, doc_id, class_id, version, labels, body) "
                           "VALUES ($1, 'instance', 'Book/stray', 'Book', 1, 'stray', '{}')", db)


async def test_a_second_concurrent_rebuild_is_refused(runtime):
    async with runtime.pool.acquire() as conn:
        await conn.fetchval("SELECT pg_advisory_lock($1)", rebuild.REBUILD_LOCK)
        try:
            try:
                await rebuild.rebuild(runtime, "nodb", out=io.StringIO())
                raise AssertionError("a concurrent rebuild was not refused")
            except RuntimeError as error:
                assert "another rebuild" in str(error)
        finally:
            await conn.fetchval("SELECT pg_advisory_unlock($1)", rebuild.REBUILD_LOCK)
    await asyncio.sleep(0)
