"""One contract for the SearchIndex port, run against every adapter: the PostgreSQL
read model and the stack's Elasticsearch node."""
from contextlib import asynccontextmanager

import asyncpg
import pytest

from spice.stores.search import PostgresSearchIndex
from tests.contracts.structured_query import StructuredQueryContract
from tests.integration.test_api_end_to_end import unique_db
from tests.integration.test_projections import event


@pytest.fixture(params=["postgres", "elasticsearch"])
async def index(request, runtime, elasticsearch_stack):
    if request.param == "postgres":
        yield PostgresSearchIndex(runtime.pool)
        return
    from spice.stores.search_elasticsearch import ElasticsearchSearchIndex

    adapter = ElasticsearchSearchIndex.from_settings(elasticsearch_stack)
    yield adapter
    await adapter.close()


def instance(db, instance_id, data, seq, kind="INSTANCE_CREATED", class_id="Item"):
    return event(kind, {"db": db, "class_id": class_id, "instance_id": instance_id, "data": data}, seq)


def klass(db, cls, seq, kind="ONTOLOGY_CLASS_CREATED"):
    return event(kind, {"db": db, "class_id": cls["id"], "class": cls}, seq)


async def test_create_update_delete(index):
    db = unique_db()
    await index.apply(instance(db, "a", {"name": "red lantern"}, 1))
    found = await index.search(db, "lantern")
    assert found["total"] == 1 and found["hits"][0]["id"] == "Item/a"
    assert found["hits"][0]["document"] == {"name": "red lantern"}
    await index.apply(instance(db, "a", {"name": "blue kettle"}, 2, "INSTANCE_UPDATED"))
    assert (await index.search(db, "lantern"))["total"] == 0
    assert (await index.search(db, "kettle"))["total"] == 1
    await index.apply(event("INSTANCE_DELETED", {"db": db, "class_id": "Item", "instance_id": "a"}, 3))
    assert (await index.search(db, ""))["total"] == 0


async def test_older_and_repeated_events_never_regress_or_resurrect(index):
    db = unique_db()
    v1 = instance(db, "x", {"name": "one"}, 1)
    v2 = instance(db, "x", {"name": "two"}, 2, "INSTANCE_UPDATED")
    gone = event("INSTANCE_DELETED", {"db": db, "class_id": "Item", "instance_id": "x"}, 3)
    await index.apply_many([v2, v1])
    for e in (v2, v1):
        await index.apply(e)
    assert (await index.search(db, "two"))["total"] == 1
    assert (await index.search(db, "one"))["total"] == 0
    for e in (gone, v2, v1):
        await index.apply(e)
    assert (await index.search(db, ""))["total"] == 0


async def test_filters_paging_and_total(index):
    db = unique_db()
    cities = ["Seoul", "London", "Lima"]
    await index.apply_many([instance(db, f"i{n:02d}", {"name": f"widget {n}", "city": cities[n % 3]}, 1)
                            for n in range(25)])
    seoul = await index.search(db, "", filters={"city": "Seoul"}, limit=100)
    assert seoul["total"] == 9
    seen, cursor = [], None
    while True:
        page = await index.search(db, "widget", limit=7, cursor=cursor)
        assert page["total"] == 25
        seen += [h["id"] for h in page["hits"]]
        cursor = page["cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(f"Item/i{n:02d}" for n in range(25))
    assert (await index.search(db, "", class_id="Other"))["total"] == 0


async def test_multilingual_class_labels_prefixes_and_class_documents(index):
    db = unique_db()
    person = {"id": "Person", "label": {"en": "Person", "ko": "사람"},
              "description": {"en": "a human being"}, "properties": [], "relationships": []}
    place = {"id": "Place", "label": {"en": "Place", "ko": "장소"}, "properties": [],
             "relationships": []}
    await index.apply_many([klass(db, person, 1), klass(db, place, 1)])
    assert [h["id"] for h in (await index.search_classes(db, "사람"))["hits"]] == ["Person"]
    assert [h["id"] for h in (await index.search_classes(db, "human"))["hits"]] == ["Person"]
    assert "Place" in [h["id"] for h in (await index.search_classes(db, "Pla"))["hits"]]
    assert [d["id"] for d in await index.class_documents(db)] == ["Person", "Place"]
    await index.apply(event("ONTOLOGY_CLASS_DELETED", {"db": db, "class_id": "Place"}, 2))
    assert [d["id"] for d in await index.class_documents(db)] == ["Person"]


async def test_a_deleted_database_leaves_nothing(index):
    db = unique_db()
    await index.apply(instance(db, "a", {"name": "lamp"}, 1))
    await index.apply(event("DATABASE_DELETED", {"name": db}, 2))
    assert (await index.search(db, ""))["total"] == 0


async def test_indexed_documents_are_every_live_document(index):
    db = unique_db()
    await index.apply_many([instance(db, f"d{n:04d}", {"n": n}, 1) for n in range(1100)])
    await index.apply(event("INSTANCE_DELETED", {"db": db, "class_id": "Item", "instance_id": "d0007"}, 2))
    person = {"id": "Person", "label": "Person", "properties": [], "relationships": []}
    await index.apply(klass(db, person, 1))
    documents = await index.indexed_documents(db)
    assert len(documents) == 1100  # 1,099 instances (past one page of 1,000) and the class
    assert documents[("instance", "Item/d1099")] == {"n": 1099}
    assert ("instance", "Item/d0007") not in documents
    assert documents[("class", "Person")] == person


async def test_refused_credentials_name_the_servers_answer(elasticsearch_stack):
    from spice.stores.errors import StoreUnavailable
    from spice.stores.search_elasticsearch import ElasticsearchSearchIndex

    wrong = ElasticsearchSearchIndex(elasticsearch_stack.elasticsearch_url,
                                     basic_auth=("elastic", "not-the-password"))
    try:
        with pytest.raises(StoreUnavailable) as refused:
            await wrong.search(unique_db(), "x")
    finally:
        await wrong.close()
    assert "401 Unauthorized" in str(refused.value)
    assert "None" not in str(refused.value)


class TestPostgresStructuredQueries(StructuredQueryContract):
    @pytest.fixture
    def make_search(self, runtime, settings):
        @asynccontextmanager
        async def make():
            pool = await asyncpg.create_pool(settings.postgres_dsn, min_size=1, max_size=2)
            try:
                yield PostgresSearchIndex(pool)
            finally:
                await pool.close()
        return make


class TestElasticsearchStructuredQueries(StructuredQueryContract):
    @pytest.fixture
    def make_search(self, elasticsearch_stack):
        from spice.stores.search_elasticsearch import ElasticsearchSearchIndex

        @asynccontextmanager
        async def make():
            adapter = ElasticsearchSearchIndex.from_settings(elasticsearch_stack)
            try:
                yield adapter
            finally:
                await adapter.close()
        return make
