"""Finished commands leave the status table after its retention; the status API then
answers from the event store, the source of truth, with the right outcome."""
from pathlib import Path

from spice.kafka_client import kafka_options
from tests.integration.kafka_helpers import wait_for
from tests.integration.test_api_end_to_end import create_db, unique_db
from tests.integration.worker import WorkerProcess

V1 = "/api/v1"


async def projected(runtime, command_id):
    doc = await runtime.status.get(command_id)
    return bool(doc and doc.get("projected"))


async def test_expired_statuses_are_answered_from_the_event_store(worker, runtime, http):
    worker.stop()  # one worker owns every partition: the short retention applies to all
    short = WorkerProcess(16169, Path("test-artifacts") / "retention-worker.log",
                          env={"STATUS_TABLE_RETENTION_SECONDS": "1"})
    short.start()
    try:
        db = unique_db()
        await create_db(http, short, db)
        async with http.post(f"{short.url}{V1}/ontology/{db}/sync/create?timeout=30",
                             json={"id": "Kept"}) as r:
            ok = (await r.json())["data"]["command_id"]
        async with http.post(f"{short.url}{V1}/ontology/{db}/sync/create?timeout=30",
                             json={"id": "Bad", "parents": ["Missing"]}) as r:
            assert r.status in (404, 422)
            bad = (await r.json())["detail"]["command_id"]
        for command_id in (ok, bad):
            # Let the last step (PROJECTED, after the outcome event is projected) land
            # first, or it would write the Redis entry again.
            await wait_for(lambda cid=command_id: projected(runtime, cid), timeout=30)
            await runtime.redis.delete(f"command:{command_id}:status", f"command:{command_id}:result")
        # Past the retention, expiry reaches them within a pass over the table (2,000
        # keys a second: longer on a stack that kept many statuses).
        answers = {}
        for command_id in (ok, bad):
            async def from_the_store(cid: str = command_id) -> bool:
                async with http.get(f"{short.url}{V1}/commands/{cid}/status") as r:
                    assert r.status == 200
                    answers[cid] = await r.json()
                return answers[cid]["source"] == "event_store"
            await wait_for(from_the_store, timeout=120, interval=1.0)
        assert answers[ok]["source"] == "event_store" and answers[ok]["status"] == "COMPLETED"
        assert answers[bad]["source"] == "event_store" and answers[bad]["status"] == "FAILED"
        assert answers[bad]["error"]["code"] in ("not_found", "invalid")
        async with http.get(f"{short.url}{V1}/commands/{ok}/wait?timeout=5") as r:
            assert r.status == 200  # a waiter gets the outcome at once, not a 408
    finally:
        short.stop()
        worker.start()


async def test_table_changelogs_are_compacted_eagerly(worker, settings):
    """Table recovery reads the changelog: with Kafka's 7-day default segments nothing is
    compacted for a week and a worker's start-up grows with every status change. The
    worker sets short segments on every table changelog, new or existing."""
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    from spice.topics import CHANGELOG_CONFIGS

    admin = AIOKafkaAdminClient(**kafka_options(settings))
    await admin.start()
    try:
        names = sorted(t for t in await admin.list_topics() if t.endswith("-changelog"))
        assert {f"{settings.spice_app_id}-command-{t}-changelog"
                for t in ("status", "counts", "rates")} <= set(names)
        described = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name) for name in names])
        for response in described:
            for resource in response.resources:
                configs = {entry[0]: entry[1] for entry in resource[4]}
                for key, value in CHANGELOG_CONFIGS.items():
                    assert configs[key] == value, (resource[3], key, configs[key])
    finally:
        await admin.close()


async def test_the_status_table_is_recovered_from_its_changelog(worker, runtime, http):
    """The status agent writes its changelogs as record batches of its own
    (spice/tables/changelog.py): a restarted worker, whose memory starts empty, must
    rebuild the table from them and answer from it with Redis emptied."""
    db = unique_db()
    command_id = await create_db(http, worker, db)

    async def in_table():
        await runtime.redis.delete(f"command:{command_id}:status", f"command:{command_id}:result")
        async with http.get(f"{worker.url}{V1}/commands/{command_id}/status") as r:
            body = await r.json()
        return r.status == 200 and body["source"] == "table" and body["status"] == "COMPLETED"

    await wait_for(in_table, timeout=30, interval=0.2)
    async with http.get(f"{worker.url}{V1}/status/commands") as r:
        before = (await r.json())["by_state"].get("COMPLETED", 0)
    worker.stop()
    worker.start()
    await wait_for(in_table, timeout=60, interval=0.5)
    async with http.get(f"{worker.url}{V1}/commands/{command_id}/status") as r:
        body = await r.json()
    assert [h["status"] for h in body["result"]["history"]][:1] == ["PENDING"]
    async with http.get(f"{worker.url}{V1}/status/commands") as r:
        assert (await r.json())["by_state"].get("COMPLETED", 0) >= before  # counts recovered too
