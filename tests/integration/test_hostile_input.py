"""One tenant cannot hurt another (issue #23): each finding, against the real worker.

Every test sends what an editor key of one database could send, and checks that the
sender gets a 4xx naming the field while writes of another database, at the same
moment, are untouched."""
import asyncio
import json
import socket
import time
import uuid

import aiohttp
import pytest
from aiokafka import AIOKafkaProducer

from spice.domain.messages import CommandType, instance_aggregate, new_command
from spice.kafka_client import kafka_options
from tests.integration.test_api_end_to_end import create_db, unique_db, wait

V1 = "/api/v1"


async def make_class(http, worker, db, class_id="Item", **extra):
    await create_db(http, worker, db)
    body = {"id": class_id, "properties": [{"name": "name", "type": "string"}], **extra}
    async with http.post(f"{worker.url}{V1}/ontology/{db}/sync/create?timeout=30", json=body) as r:
        assert r.status == 200, await r.text()


async def post_raw(http, url, raw: bytes):
    async with http.post(url, data=raw, headers={"Content-Type": "application/json"}) as r:
        return r.status, await r.text()


async def other_tenant_writes(http, worker, db, n=40, prefix="ok"):
    """n concurrent instance creates of another database: each must get its 202."""
    async def one(i):
        async with http.post(f"{worker.url}{V1}/instances/{db}/async/Item/create",
                             json={"instance_id": f"{prefix}{i}", "data": {"name": f"n{i}"}}) as r:
            return r.status, await r.json()
    return await asyncio.gather(*[one(i) for i in range(n)])


async def settled(http, worker, command_id, timeout=30):
    """The status of a command produced at topic level, once it is terminal (the status
    API knows such a command only once a worker has seen it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        async with http.get(f"{worker.url}{V1}/commands/{command_id}/status") as r:
            if r.status == 200:
                body = await r.json()
                if body["status"] in ("COMPLETED", "FAILED"):
                    return body
        await asyncio.sleep(0.2)
    raise AssertionError(f"{command_id} not terminal after {timeout} s")


async def produce(settings, command) -> None:
    """A command sent straight to its topic, as another service would."""
    producer = AIOKafkaProducer(**kafka_options(settings))
    await producer.start()
    try:
        await producer.send_and_wait("instance_commands", command.to_json(),
                                     key=command.aggregate_id.encode())
    finally:
        await producer.stop()


@pytest.fixture
async def victim(worker, http):
    db = unique_db()
    await make_class(http, worker, db)
    return db


async def test_redos_pattern_runs_in_linear_time_and_never_stalls_another_tenant(
        worker, http, victim):
    attacker = unique_db()
    await create_db(http, worker, attacker)
    evil = {"id": "Evil", "properties": [{"name": "s", "type": "string",
                                          "constraints": {"pattern": "(a+)+$"},
                                          "default": "a" * 30 + "!"}]}

    async def timed_victim_write():
        started = time.perf_counter()
        async with http.get(f"{worker.url}{V1}/ontology/{victim}") as r:
            assert r.status == 200
        return time.perf_counter() - started

    baseline = min([await timed_victim_write() for _ in range(5)])
    url = f"{worker.url}{V1}/ontology/{attacker}/async/create"
    [(status, text), delay] = await asyncio.gather(
        post_raw(http, url, json.dumps(evil).encode()), timed_victim_write())
    # RE2 takes the pattern; the default does not match it: a 422 naming the field.
    assert status == 422, text
    assert "properties" in text and "default" in text or "pattern" in text, text
    assert delay - baseline < 0.05, (delay, baseline)
    backreference = {"id": "Back", "properties": [{"name": "s", "type": "string",
                                                   "constraints": {"pattern": r"(a)\1"}}]}
    status, text = await post_raw(http, url, json.dumps(backreference).encode())
    assert status == 422 and "RE2" in text and "pattern" in text, text


async def test_expected_seq_out_of_range_fails_alone(worker, http, victim):
    attacker = unique_db()
    await make_class(http, worker, attacker)
    url = f"{worker.url}{V1}/instances/{attacker}/async/Item/create"
    bad = json.dumps({"instance_id": "x", "data": {"name": "x"}, "expected_seq": 2**63}).encode()
    results, answers = await asyncio.gather(
        other_tenant_writes(http, worker, victim),
        asyncio.gather(*[post_raw(http, url, bad) for _ in range(5)]))
    assert [s for s, _ in results] == [202] * 40
    for status, text in answers:
        assert status in (400, 422) and '"field":"expected_seq"' in text, text
        assert "None" not in text and "$7" not in text
    async with http.delete(f"{worker.url}{V1}/instances/{attacker}/async/Item/x/delete"
                           f"?expected_seq={2**63}") as r:
        assert r.status in (400, 405), await r.text()
    async with http.post(f"{worker.url}{V1}/instances/{attacker}/async/Item/x/delete"
                         f"?expected_seq={2**63}") as r:
        assert r.status == 400 and '"field":"expected_seq"' in await r.text()
    for _, body in results[:3]:
        code, _ = await wait(http, worker, body["command_id"])
        assert code == 200


async def test_unencodable_values_fail_alone_and_burn_no_sequence(worker, http, runtime, victim):
    attacker = unique_db()
    await make_class(http, worker, attacker)
    url = f"{worker.url}{V1}/instances/{attacker}/async/Item/create"
    surrogate = b'{"instance_id": "s", "data": {"name": "\\ud800"}}'
    results, answers = await asyncio.gather(
        other_tenant_writes(http, worker, victim, prefix="s"),
        asyncio.gather(*[post_raw(http, url, surrogate) for _ in range(5)]))
    assert [s for s, _ in results] == [202] * 40
    for status, text in answers:
        assert status == 422 and '"field": "data.name"' in text.replace('":"', '": "'), text
    # No sequence was reserved for the refused writes: the victim's aggregates are at 1.
    for i in range(40):
        assert await runtime.event_store.last_sequence(
            instance_aggregate(victim, "Item", f"s{i}")) == 1
    assert await runtime.event_store.last_sequence(instance_aggregate(attacker, "Item", "s")) == 0
    started = time.monotonic()
    async with http.post(f"{worker.url}{V1}/instances/{victim}/async/Item/s0/update",
                         json={"data": {"name": "again"}}) as r:
        assert r.status == 202
        command_id = (await r.json())["command_id"]
    code, _ = await wait(http, worker, command_id)
    assert code == 200 and time.monotonic() - started < 4  # no 5 s wait for a gap


async def test_event_store_refuses_an_unencodable_envelope_alone(scratch):
    from spice.stores.errors import InvalidEnvelope
    from tests.contracts.event_store import aggregate, envelope

    good = [envelope(aggregate()) for _ in range(20)]
    bad = envelope(aggregate(), data={"name": "\ud800"})
    outcomes = await asyncio.gather(
        *[scratch.event_store.append(e, allocate=True) for e in good],
        scratch.event_store.append(bad, allocate=True), return_exceptions=True)
    assert all(o.sequence_number == 1 for o in outcomes[:-1]), outcomes
    assert isinstance(outcomes[-1], InvalidEnvelope)
    with pytest.raises(InvalidEnvelope):
        await scratch.event_store.append(envelope(aggregate()), allocate=True, expected_seq=2**63)


@pytest.mark.parametrize("body, field", [
    (b'{"instance_id": "d", "data": {"name": "x", "deep": ' + b"[" * 250 + b"]" * 250 + b"}}",
     "data.deep"),
    (b'{"instance_id": "d", "data": ' + b'{"a":' * 300 + b"1" + b"}" * 300 + b"}", "data"),
    (b'{"instance_id": "d", "data": {"name": "nul\\u0000"}}', "data.name"),
    (b'{"instance_id": "d", "data": {"name": 18446744073709551616}}', "data.name"),
    (b'{"instance_id": "d", "data": {"name": 1' + b"0" * 5000 + b"}}", "body"),
    (b'{"instance_id": "d", "data": {"name": NaN}}', "body"),
    (b'{"instance_id": "d", "data": {"name": 1e999}}', "data.name"),
])
async def test_values_no_store_could_hold_are_refused_at_the_edge(worker, http, victim, body, field):
    status, text = await post_raw(http, f"{worker.url}{V1}/instances/{victim}/async/Item/create",
                                  body)
    assert status in (400, 422), text
    assert json.loads(text)["detail"]["field"].startswith(field), text
    assert "Traceback" not in text


@pytest.mark.parametrize("query", [
    "name=NaN", "name=Infinity", "name=1e999", "n=1" + "0" * 5000, "name=" + "[" * 400,
    'name={"a":[1,2]}', "cursor=eyJvIjogLTV9", "cursor=eyJvIjogMWUzMDB9", "cursor=%%%",
])
async def test_search_parameters_never_cost_a_500(worker, http, victim, query):
    async with http.get(f"{worker.url}{V1}/search/{victim}?class_id=Item&{query}") as r:
        text = await r.text()
        assert r.status in (200, 400, 422), (query, r.status, text)
        assert "Traceback" not in text


async def test_a_status_without_its_database_is_not_shown_to_other_tenants(
        worker, http, anonymous_http, runtime, local_stack, victim):
    """A command produced straight to a topic names its database only in its data; the
    worker's steps record it, and a viewer of another database cannot see the status."""
    command = new_command(CommandType.CREATE_INSTANCE, instance_aggregate(victim, "Item", "t1"),
                          {"db": victim, "class_id": "Item", "instance_id": "t1",
                           "data": {"name": "topic"}})
    assert "db" not in command.metadata
    await produce(local_stack, command)
    assert (await settled(http, worker, command.command_id))["status"] == "COMPLETED"
    other = unique_db()
    _, stranger = await runtime.keys.create(f"viewer-{other}", {other: "viewer"})
    _, owner = await runtime.keys.create(f"viewer-{victim}", {victim: "viewer"})
    url = f"{worker.url}{V1}/commands/{command.command_id}/status"
    async with anonymous_http.get(url, headers={"X-API-Key": stranger}) as r:
        assert r.status == 404
    async with anonymous_http.get(url, headers={"X-API-Key": owner}) as r:
        assert r.status == 200 and (await r.json())["status"] == "COMPLETED"


async def test_refused_topic_command_gets_failed_with_the_reason(worker, http, local_stack, victim):
    command = new_command(CommandType.CREATE_INSTANCE, instance_aggregate(victim, "Item", "bad"),
                          {"db": victim, "class_id": "Item", "instance_id": "bad",
                           "data": {"name": "x\u0000y"}})
    await produce(local_stack, command)
    body = await settled(http, worker, command.command_id)
    assert body["status"] == "FAILED" and body["error"]["code"] == "invalid", body
    assert "NUL" in body["error"]["message"] and "data.data.name" in body["error"]["message"]


async def test_made_up_keys_are_throttled_per_address_before_any_lookup(worker):
    """From an address of its own (127.0.0.2): the other tests' 401s come from 127.0.0.1."""
    connector = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
    statuses = []
    async with aiohttp.ClientSession(connector=connector) as session:
        for _ in range(35):
            fake = f"spk_{uuid.uuid4().hex[:12]}_{uuid.uuid4().hex}"
            async with session.get(f"{worker.url}{V1}/database/list",
                                   headers={"X-API-Key": fake}) as r:
                statuses.append((r.status, r.headers.get("Retry-After")))
    assert [s for s, _ in statuses[:30]] == [401] * 30
    assert all(s == 429 and int(after) > 0 for s, after in statuses[30:]), statuses[30:]
    async with aiohttp.ClientSession() as session:  # another address is not affected
        async with session.get(f"{worker.url}{V1}/database/list",
                               headers={"X-API-Key": "spk_000000000000_" + "x" * 30}) as r:
            assert r.status == 401


async def test_key_verification_cache_is_bounded(runtime, monkeypatch):
    from spice.stores import keys

    monkeypatch.setattr(keys, "CACHE_ENTRIES", 50)
    store = keys.KeyStore(runtime.pool)
    for _ in range(120):
        assert await store.verify(f"spk_{uuid.uuid4().hex[:12]}_{uuid.uuid4().hex}") is None
    assert len(store._cache) == 50


async def test_key_rules(runtime):
    from spice.stores.keys import NameTaken

    name = f"once-{uuid.uuid4().hex[:8]}"
    await runtime.keys.create(name, {"*": "viewer"})
    with pytest.raises(NameTaken):
        await runtime.keys.create(name, {"*": "viewer"})
    for rate in (0, -1):
        with pytest.raises(ValueError, match="rate"):
            await runtime.keys.create(f"r-{uuid.uuid4().hex[:8]}", {"*": "viewer"},
                                      rate_per_second=rate)


def test_keys_cli_needs_a_grant():
    import subprocess
    import sys
    from pathlib import Path

    spice = str(Path(sys.executable).with_name("spice"))
    done = subprocess.run([spice, "keys", "create", "--name", f"n-{uuid.uuid4().hex[:6]}"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "--grant" in done.stderr, done


async def test_faust_pages_are_not_served(worker, anonymous_http):
    for path in ("/", "/router/", "/table/", "/table/command-status/", "/stats/", "/graph/"):
        async with anonymous_http.get(f"{worker.url}{path}") as r:
            assert r.status == 404, (path, r.status, await r.text())


async def test_a_trickled_request_head_is_cut_off(worker):
    host, port = "127.0.0.1", worker.port
    loop = asyncio.get_running_loop()
    sock = socket.create_connection((host, port))
    sock.setblocking(False)
    started = time.monotonic()
    try:
        await loop.sock_sendall(sock, b"GET /health HTTP/1.1\r\n")
        while time.monotonic() - started < 30:
            try:
                await loop.sock_sendall(sock, b"X")
            except OSError:
                break  # closed by the server
            try:
                data = await asyncio.wait_for(loop.sock_recv(sock, 1024), 1.0)
                if data == b"":
                    break
            except TimeoutError:
                pass
    finally:
        sock.close()
    assert time.monotonic() - started < 15


async def test_html_has_security_headers(worker, anonymous_http):
    async with anonymous_http.get(f"{worker.url}/dashboard") as r:
        assert r.status == 200
        assert "script-src 'sha256-" in r.headers["Content-Security-Policy"]
        assert r.headers["X-Frame-Options"] == "DENY"
        assert r.headers["X-Content-Type-Options"] == "nosniff"


async def test_legacy_direct_write_takes_an_admin_and_records_an_event(
        worker, http, anonymous_http, runtime, victim):
    name = f"editor-{uuid.uuid4().hex[:8]}"
    _, editor = await runtime.keys.create(name, {victim: "editor"})
    url = f"{worker.url}{V1}/ontology/{victim}/create"
    body = {"id": "Legacy", "label": "Legacy thing"}
    async with anonymous_http.post(url, json=body, headers={"X-API-Key": editor}) as r:
        assert r.status == 403
    async with http.post(url, json=body) as r:
        assert r.status == 201, await r.text()
        assert (await r.json())["class_id"] == "Legacy"
    events = [e async for e in runtime.event_store.read_aggregate(f"{victim}:Legacy")]
    by_type = {e.event_type: e for e in events}
    assert set(by_type) == {"CREATE_ONTOLOGY_CLASS_REQUESTED", "ONTOLOGY_CLASS_CREATED"}
    assert by_type["CREATE_ONTOLOGY_CLASS_REQUESTED"].actor.startswith("key:bootstrap-admin")
    async with http.post(url, json={**body, "label": "Renamed"}) as r:  # an existing class
        assert r.status == 201, await r.text()
    async with http.get(f"{worker.url}{V1}/ontology/{victim}/Legacy") as r:
        assert "Renamed" in await r.text()
