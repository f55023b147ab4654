"""History, time travel, diffs, revert and the audit log through HTTP on the real worker,
and the audit chain verified against the event store in S3 (also after tampering)."""
import asyncio
import uuid

import jsonpatch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spice.audit_verify import verify_chain
from spice.client import NotFound, SpiceClient
from spice.handlers.rebuild import verify_history
from tests.integration.test_api_end_to_end import V1, create_db, unique_db

ORG = {"id": "Org", "properties": [{"name": "name", "type": "string"}]}
PERSON_V1 = {"id": "Person", "properties": [{"name": "name", "type": "string"}],
             "relationships": [{"predicate": "employer", "target": "Org"}]}
PERSON_V2 = {"id": "Person", "properties": [{"name": "name", "type": "string"},
                                            {"name": "age", "type": "integer"}]}


async def send(http, method, url, body=None, status=200):
    async with http.request(method, url, json=body) as r:
        assert r.status == status, (url, r.status, await r.text())
        return await r.json()


async def get(http, url, status=200):
    return await send(http, "GET", url, status=status)


async def test_history_time_travel_diff_and_revert(worker, http, runtime):
    """Writes, reads and history through the Python client; diffs and the audit routes,
    which the client does not wrap, over plain HTTP."""
    client = SpiceClient(worker.url, session=http)
    base = worker.url + V1
    db = unique_db()
    await create_db(http, worker, db)
    await client.create_class(db, ORG)
    await client.create_class(db, PERSON_V1)
    org, person_v1 = [{k: v for k, v in (await client.get_class(db, c)).items() if k != "version"}
                      for c in ("Org", "Person")]
    await client.replace_class(db, "Person", PERSON_V2)
    person_v2 = {k: v for k, v in (await client.get_class(db, "Person")).items() if k != "version"}
    states = []
    for data in ({"name": "Ann"}, {"name": "Ann", "age": 30}, {"name": "Anne", "age": 31}):
        if not states:
            await client.create_instance(db, "Person", "ann", data, wait=True)
        else:
            await client.update_instance(db, "Person", "ann", data, wait=True, timeout=20)
        now = await client.get_instance(db, "Person", "ann")
        states.append((now["version"], now["data"]))

    # Time travel by version equals what the graph store held at that version.
    for version, data in states:
        then = await client.get_instance(db, "Person", "ann", as_of=version)
        assert then["data"] == data and then["version"] == version
    history = {"entries": [e async for e in client.history(db, "Person", "ann")]}
    events = [e for e in history["entries"] if e["kind"] == "event"]
    commands = [e for e in history["entries"] if e["kind"] == "command"]
    assert [e["sequence_number"] for e in events] == [v for v, _ in reversed(states)]
    assert len(commands) == 3 and all(e["actor"].startswith("key:") for e in history["entries"])
    assert events[0]["changes"] == {"added": {}, "removed": {},
                                    "changed": {"name": {"from": "Ann", "to": "Anne"},
                                                "age": {"from": 30, "to": 31}}}
    assert events[-1]["changes"]["added"] == {"name": "Ann"}
    # ... and by time: the moment an event was recorded.
    second = events[1]
    by_time = await client.get_instance(db, "Person", "ann", as_of=second["recorded_at"])
    assert by_time["data"] == states[1][1]
    oldest = await get(http, f"{base}/history/{db}/instances/Person/ann?order=asc&limit=2")
    assert oldest["entries"][0]["kind"] == "command" and oldest["cursor"]
    rest = await get(http, f"{base}/history/{db}/instances/Person/ann?order=asc&limit=50"
                           f"&cursor={oldest['cursor']}")
    assert len(oldest["entries"]) + len(rest["entries"]) == len(history["entries"])

    # A diff applied to the first version gives the second.
    first, last = states[0][0], states[-1][0]
    diff = await get(http, f"{base}/history/{db}/instances/Person/ann/diff?from={first}&to={last}")
    assert jsonpatch.apply_patch(states[0][1], diff["patch"]) == states[-1][1]
    class_diff = await get(http, f"{base}/history/{db}/classes/Person/diff?from=1")
    assert jsonpatch.apply_patch(person_v1, class_diff["patch"]) == person_v2
    class_history = await get(http, f"{base}/history/{db}/classes/Person?kind=event")
    assert class_history["entries"][0]["changes"]["properties"]["added"] == ["age"]
    assert class_history["entries"][0]["changes"]["relationships"]["removed"] == ["employer"]

    # Revert appends a new version equal to the old one.
    reverted = await client.revert_instance(db, "Person", "ann", first)
    assert reverted["status"] == "success", reverted
    now = await client.get_instance(db, "Person", "ann")
    assert now["data"] == states[0][1] and now["version"] > last
    latest = await anext(client.history(db, "Person", "ann", kind="event"))
    assert latest["revert_to"] == first and latest["sequence_number"] == now["version"]

    # A revert that would break references is refused with the reason.
    await client.delete_class(db, "Org")
    async with http.post(f"{base}/ontology/{db}/sync/Person/revert", json={"to_version": 1}) as r:
        assert r.status in (404, 409, 422), await r.text()
        assert "Org" in await r.text()
    assert "employer" not in str(await client.get_class(db, "Person"))
    async with http.post(f"{base}/ontology/{db}/async/Person/revert", json={"to_version": 99}) as r:
        assert r.status == 404 and '"to_version"' in await r.text()

    # The schema as it was, by chain position and by time; a diff of the whole schema.
    schema_now = await get(http, f"{base}/ontology/{db}")
    head = await get(http, f"{base}/audit/{db}/chain")
    then = await get(http, f"{base}/ontology/{db}?as_of={head['chain_position']}")
    assert sorted(c["id"] for c in then["classes"]) == sorted(c["id"] for c in schema_now["classes"])
    created = [e for e in (await get(http, f"{base}/history/{db}?order=asc"))["entries"]
               if e["type"] == "ONTOLOGY_CLASS_CREATED" and e["aggregate_id"].endswith(":Person")]
    early = await get(http, f"{base}/ontology/{db}?as_of={created[0]['chain_position']}")
    assert {c["id"]: c for c in early["classes"]} == {"Org": org, "Person": person_v1}
    schema_diff = await get(http, f"{base}/history/{db}/schema/diff?from={created[0]['chain_position']}")
    assert jsonpatch.apply_patch({"Org": org, "Person": person_v1}, schema_diff["patch"]) == \
        {c["id"]: c for c in schema_now["classes"]}
    # `spice verify`: the history at its latest versions is what the graph store holds.
    assert (await verify_history(runtime, db))["drift_count"] == 0
    async with runtime.pool.acquire() as conn:  # a history that lost its last event
        await conn.execute("DELETE FROM audit_events WHERE db = $1 AND aggregate_id = $2 "
                           "AND sequence_number = $3 AND kind = 'domain'",
                           db, f"{db}:Person/ann", now["version"])
    drift = (await verify_history(runtime, db))["drift"]
    assert drift == [{"db": db, "kind": "instance", "id": "Person/ann", "problem": "differs"}]


async def test_bad_history_parameters_name_the_field(worker, http):
    base = worker.url + V1
    db = unique_db()
    await create_db(http, worker, db)
    for url, field in ((f"{base}/ontology/{db}/Person?as_of=yesterday", "as_of"),
                       (f"{base}/history/{db}/classes/Person/diff", "from"),
                       (f"{base}/history/{db}/classes/Person?order=sideways", "order"),
                       (f"{base}/history/{db}/classes/Person?cursor=xyz", "cursor"),
                       (f"{base}/audit/{db}?outcome=maybe", "outcome"),
                       (f"{base}/audit/{db}?since=monday", "since"),
                       (f"{base}/history/{db}/classes/Person?limit=0", "limit")):
        async with http.get(url) as r:
            assert r.status == 400, (url, r.status)
            assert (await r.json())["detail"]["field"] == field, url


async def test_the_audit_log_lists_exactly_the_commands_sent_with_their_actors(worker, http, runtime):
    base = worker.url + V1
    db = unique_db()
    await create_db(http, worker, db)
    name = f"auditor-{uuid.uuid4().hex[:8]}"
    _, key = await runtime.keys.create(name, {db: "editor"})
    sent = []
    for index in range(3):
        async with http.post(f"{base}/ontology/{db}/async/create",
                             json={"id": f"C{index}"}, headers={"X-API-Key": key}) as r:
            assert r.status == 202
            sent.append((await r.json())["command_id"])
    for command in sent:
        await get(http, f"{base}/commands/{command}/wait?timeout=20")
    mine = await get(http, f"{base}/audit/{db}?actor=key:{name}&kind=command")
    assert sorted(e["command_id"] for e in mine["entries"]) == sorted(sent)
    assert {e["command_type"] for e in mine["entries"]} == {"CREATE_ONTOLOGY_CLASS"}
    outcomes = await get(http, f"{base}/audit/{db}?actor=key:{name}&outcome=succeeded")
    assert sorted(e["command_id"] for e in outcomes["entries"]) == sorted(sent)
    window = await get(http, f"{base}/audit/{db}?since={mine['entries'][-1]['recorded_at']}"
                             f"&until={mine['entries'][0]['recorded_at']}&kind=command")
    assert {e["command_id"] for e in window["entries"]} >= set(sent)
    everywhere = await get(http, f"{base}/audit?actor=key:{name}&kind=command")
    assert {e["db"] for e in everywhere["entries"]} == {db}


async def test_viewers_of_another_database_get_404_on_every_history_route(worker, http, anonymous_http,
                                                                          runtime):
    base = worker.url + V1
    db, other = unique_db(), unique_db()
    for name in (db, other):
        await create_db(http, worker, name)
    _, key = await runtime.keys.create(f"viewer-{other}", {other: "viewer"})
    headers = {"X-API-Key": key}
    for path in (f"history/{db}", f"history/{db}/schema/diff?from=1",
                 f"history/{db}/classes/Person", f"history/{db}/classes/Person/diff?from=1",
                 f"history/{db}/instances/Person/p1", f"history/{db}/instances/Person/p1/diff?from=1",
                 f"audit/{db}", f"audit/{db}/chain"):
        async with anonymous_http.get(f"{base}/{path}", headers=headers) as r:
            assert r.status == 404, (path, r.status)
        async with anonymous_http.get(f"{base}/{path.replace(db, other)}", headers=headers) as r:
            assert r.status in (200, 404), (path, r.status)  # their own: answered
    async with anonymous_http.get(f"{base}/audit", headers=headers) as r:
        assert r.status == 403  # every database: '*' admins only


async def test_audit_verify_finds_a_rewritten_event_at_its_position(worker, http, runtime):
    base = worker.url + V1
    db = unique_db()
    await create_db(http, worker, db)
    for index in range(3):
        await send(http, "POST", f"{base}/ontology/{db}/sync/create", {"id": f"K{index}"})
    clean = await verify_chain(runtime, db)
    assert clean.broken is None and clean.checked == clean.head_position >= 7
    entries = (await get(http, f"{base}/history/{db}?order=asc"))["entries"]
    victim = next(e for e in entries if e["type"] == "ONTOLOGY_CLASS_CREATED")
    async with runtime.pool.acquire() as conn:
        key = await conn.fetchval("SELECT batch_key FROM audit_events WHERE db = $1 "
                                  "AND chain_position = $2", db, victim["chain_position"])
    bucket = runtime.settings.event_store_bucket
    body = await runtime.event_store.signed.get(bucket, key)
    forged = body.replace(b'"id":"K0"', b'"id":"K9"')
    assert forged != body
    await runtime.s3.put_object(Bucket=bucket, Key=key, Body=forged)
    try:
        broken = await verify_chain(runtime, db)
        assert broken.broken is not None
        assert broken.broken.position == victim["chain_position"]
        assert broken.broken.reason == "rewritten in the event store"
    finally:
        await runtime.s3.put_object(Bucket=bucket, Key=key, Body=body)
    assert (await verify_chain(runtime, db)).broken is None


# ---- generated command sequences: the fold at every version is what the graph held ----

OPERATIONS = st.lists(st.one_of(
    st.tuples(st.just("put"), st.sampled_from(["a", "b"]),
              st.dictionaries(st.sampled_from(["name", "age"]),
                              st.integers(0, 99), max_size=2)),
    st.tuples(st.just("delete"), st.sampled_from(["a", "b"]), st.just({}))), min_size=1, max_size=8)
THING = {"id": "Thing", "properties": [{"name": "name", "type": "integer"},
                                       {"name": "age", "type": "integer"}]}


def test_the_fold_at_every_version_equals_the_graph_then(worker, local_stack):
    import aiohttp

    from tests.integration.conftest import TEST_ADMIN_KEY

    async def run(operations):
        async with aiohttp.ClientSession(headers={"X-API-Key": TEST_ADMIN_KEY}) as http:
            client = SpiceClient(worker.url, session=http)
            db = unique_db()
            await create_db(http, worker, db)
            await client.create_class(db, THING)
            seen: dict[str, list[tuple[int, dict | None]]] = {"a": [], "b": []}
            exists = {"a": False, "b": False}
            for operation, instance, data in operations:
                if operation == "put" and exists[instance]:
                    answer = await client.update_instance(db, "Thing", instance, data)
                elif operation == "put":
                    answer = await client.create_instance(db, "Thing", instance, data)
                elif exists[instance]:
                    answer = await client.delete_instance(db, "Thing", instance)
                else:
                    continue
                waited = await client.wait(answer, timeout=20)
                assert waited["status"] == "success", waited
                exists[instance] = operation == "put"
                try:
                    graph = await client.get_instance(db, "Thing", instance)
                except NotFound:
                    graph = None
                seen[instance].append((answer["sequence_number"], graph and graph["data"]))
            for instance, versions in seen.items():
                for version, data in versions:
                    try:
                        folded = (await client.get_instance(db, "Thing", instance, as_of=version))["data"]
                    except NotFound:
                        folded = None
                    assert folded == data, (instance, version, versions)

    @settings(max_examples=4, deadline=None, suppress_health_check=list(HealthCheck))
    @given(OPERATIONS)
    def check(operations):
        asyncio.run(run(operations))

    check()


async def test_audit_filters_no_store_could_hold_are_refused_naming_the_field(worker, http):
    """Found by the fuzzing: a NUL in `actor` reached PostgreSQL (text holds no NUL): 500."""
    for name in ("actor", "command_type", "aggregate"):
        async with http.get(f"{worker.url}/api/v1/audit", params={name: "a\x00b", "order": "asc"}) as r:
            body = await r.json()
        assert r.status == 400 and body["detail"]["field"] == name, body
