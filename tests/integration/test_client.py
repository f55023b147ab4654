"""spice.client against the real worker: writes and waits, cursor iteration, history,
bulk progress, typed errors, retries of 429, and the sync wrapper."""
import asyncio
import uuid

import pytest

from spice.client import Conflict, NotFound, SpiceClient, SyncSpiceClient, ValidationError
from tests.integration.conftest import TEST_ADMIN_KEY
from tests.integration.test_api_end_to_end import unique_db

PERSON = {"id": "Person", "properties": [{"name": "name", "type": "string"},
                                         {"name": "age", "type": "integer"}]}


async def test_the_client_writes_reads_iterates_and_raises_typed_errors(worker):
    db = unique_db()
    async with SpiceClient(worker.url, api_key=TEST_ADMIN_KEY) as spice:
        await spice.create_database(db, wait=True)
        await spice.create_class(db, PERSON)
        for index, name in enumerate(("Ann", "Bo", "Cy")):
            answer = await spice.create_instance(db, "Person", f"p{index}", {"name": name, "age": 30})
            assert answer["status"] == "PENDING"
            await spice.wait(answer, projected=True)  # searchable before the query below
        outcome = await spice.update_instance(db, "Person", "p0", {"name": "Anne", "age": 31}, wait=True)
        assert outcome["status"] == "success"
        await spice.wait(outcome["data"]["command_id"], projected=True)
        names = [hit["document"]["name"] async for hit in spice.query_all(
            db, {"class_id": "Person", "sort": ["name"], "fields": ["name"], "limit": 1})]
        assert names == ["Anne", "Bo", "Cy"]
        entries = [e async for e in spice.history(db, "Person", "p0", limit=1)]
        assert [e["kind"] for e in entries].count("event") == 2
        assert (await spice.get_instance(db, "Person", "p0", as_of=entries[-1]["sequence_number"]))[
            "data"]["name"] == "Ann"

        with pytest.raises(ValidationError) as invalid:
            await spice.create_class(db, {"id": "Bad", "properties": [{"name": "x"}]})
        assert invalid.value.field and invalid.value.field.startswith("class.properties[0]")
        with pytest.raises(NotFound):
            await spice.get_instance(db, "Person", "nobody")
        current = (await spice.get_instance(db, "Person", "p0"))["version"]
        with pytest.raises(Conflict) as conflict:
            await spice.update_instance(db, "Person", "p0", {"name": "X"}, expected_seq=current - 1)
        assert conflict.value.actual_seq == current

        seen = []
        done = await spice.bulk_create(db, "Person", [{"instance_id": f"b{i}", "data": {"name": f"B{i}"}}
                                                      for i in range(20)], progress=seen.append)
        assert done["status"] == "COMPLETED" and seen[-1]["status"] == "COMPLETED"


async def test_429_is_retried_after_retry_after(worker, runtime):
    db = unique_db()
    _, key = await runtime.keys.create(f"slow-{uuid.uuid4().hex[:8]}", {"*": "admin"}, rate_per_second=2)
    async with SpiceClient(worker.url, api_key=key, retries=10) as spice:
        answers = await asyncio.gather(*(spice.list_databases() for _ in range(8)))
        assert len(answers) == 8  # over the rate: some waited and were sent again
        await spice.create_database(db, wait=True)


def test_the_sync_wrapper(worker):
    with SyncSpiceClient(worker.url, api_key=TEST_ADMIN_KEY) as spice:
        db = unique_db()
        assert spice.create_database(db, wait=True)["status"] == "success"
        assert db in {d["name"] for d in spice.list_databases()}
