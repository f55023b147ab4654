import pytest

from tests.contracts.event_store import EventStoreContract


class TestS3EventStore(EventStoreContract):
    @pytest.fixture
    def store(self, runtime):
        return runtime.event_store
