import pytest

from tests.contracts.event_store import EventStoreContract


class TestS3EventStore(EventStoreContract):
    @pytest.fixture
    def store(self, scratch):
        return scratch.event_store
