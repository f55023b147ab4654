import pytest

from spice.stores.event_store import InMemoryEventStore
from tests.contracts.event_store import EventStoreContract


class TestInMemoryEventStore(EventStoreContract):
    @pytest.fixture
    def store(self):
        return InMemoryEventStore()
