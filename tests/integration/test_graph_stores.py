import pytest

from spice.stores.graph_postgres import PostgresGraphStore
from tests.conftest import requires_env
from tests.contracts.graph_store import GraphStoreContract


class TestPostgresGraphStore(GraphStoreContract):
    @pytest.fixture
    def graph(self, runtime):
        return PostgresGraphStore(runtime.pool)


@requires_env("TERMINUSDB_URL")
class TestTerminusGraphStore(GraphStoreContract):
    @pytest.fixture
    async def graph(self):
        import os

        from spice.stores.graph_terminus import TerminusGraphStore

        store = TerminusGraphStore(os.environ["TERMINUSDB_URL"],
                                   os.environ.get("TERMINUSDB_USER", "admin"),
                                   os.environ.get("TERMINUSDB_PASSWORD", "root"))
        yield store
        await store.close()
