import pytest

from spice.stores.graph_postgres import PostgresGraphStore
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
                                   settings.terminusdb_password)
        yield store
        await store.close()
