from contextlib import asynccontextmanager

import asyncpg
import pytest

from spice.stores.graph_postgres import PostgresGraphStore
from tests.contracts.graph_query import GraphQueryContract
from tests.contracts.graph_store import GraphStoreContract


class TestPostgresGraphStore(GraphStoreContract):
    @pytest.fixture
    def graph(self, runtime):
        return PostgresGraphStore(runtime.pool)


class TestTerminusGraphStore(GraphStoreContract):
    @pytest.fixture
    async def graph(self, terminusdb_stack):
        from spice.stores.graph_terminus import TerminusGraphStore

        settings = terminusdb_stack
        store = TerminusGraphStore(settings.terminusdb_url, settings.terminusdb_user,
                                   settings.terminusdb_password.get_secret_value())
        yield store
        await store.close()


class TestPostgresGraphQuery(GraphQueryContract):
    @pytest.fixture
    def make_graph(self, runtime, settings):
        @asynccontextmanager
        async def make():
            pool = await asyncpg.create_pool(settings.postgres_dsn, min_size=1, max_size=4)
            try:
                yield PostgresGraphStore(pool)
            finally:
                await pool.close()
        return make


class TestTerminusGraphQuery(GraphQueryContract):
    @pytest.fixture
    def make_graph(self, terminusdb_stack):
        from spice.stores.graph_terminus import TerminusGraphStore

        @asynccontextmanager
        async def make():
            settings = terminusdb_stack
            store = TerminusGraphStore(settings.terminusdb_url, settings.terminusdb_user,
                                       settings.terminusdb_password.get_secret_value())
            try:
                yield store
            finally:
                await store.close()
        return make


async def test_terminusdb_schema_graph_does_not_grow_with_class_updates(terminusdb_stack):
    """v11 keeps every JSON value once written as `@metadata`; definitions live elsewhere."""
    import aiohttp

    from spice.domain.messages import AggregateType, EventType
    from spice.stores.graph_terminus import TerminusGraphStore, basic_auth
    from tests.contracts.graph_store import PERSON, db_name, event

    settings = terminusdb_stack
    store = TerminusGraphStore(settings.terminusdb_url, settings.terminusdb_user,
                               settings.terminusdb_password.get_secret_value())
    password = settings.terminusdb_password.get_secret_value()
    auth = {"Authorization": basic_auth(settings.terminusdb_user, password)}
    db = db_name()

    async def triples(graph: str) -> int:
        query = {"query": {"@type": "Triple", "subject": {"@type": "NodeValue", "variable": "S"},
                           "predicate": {"@type": "NodeValue", "variable": "P"},
                           "object": {"@type": "Value", "variable": "O"}, "graph": graph}}
        async with aiohttp.ClientSession(headers=auth) as session, session.post(
                f"{settings.terminusdb_url}/api/woql/admin/{db}", json=query) as answer:
            return len((await answer.json())["bindings"])

    try:
        await store.apply(event(EventType.DATABASE_CREATED, {"name": db}, 1, AggregateType.DATABASE))
        for version in range(1, 21):
            await store.apply(event(EventType.ONTOLOGY_CLASS_UPDATED, {
                "db": db, "class_id": "Person", "class": {**PERSON, "label": f"label {version}"}},
                version, AggregateType.ONTOLOGY_CLASS))
            if version == 1:
                first = (await triples("schema"), await triples("instance"))
        assert (await triples("schema"), await triples("instance")) == first
        assert (await store.get_class(db, "Person"))["label"] == "label 20"
    finally:
        await store.close()
