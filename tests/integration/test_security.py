"""Authentication, authorisation, rate limits, limits, metrics and trace context,
on the real stack through the real worker."""
import asyncio
import os
import re
import time
import uuid

import jwt
import pytest

from tests.integration.test_api_end_to_end import create_db, unique_db

V1 = "/api/v1"
# The dashboard page is static (no data); the JSON it polls is checked as OPS.
PUBLIC = {("/livez", "get"), ("/readyz", "get"), ("/health", "get"), (f"{V1}/health", "get"),
          ("/openapi.json", "get"), ("/dashboard", "get"),
          ("/docs", "get"), ("/docs/assets/{name}", "get"), (f"{V1}/schemas", "get"),
          (f"{V1}/schemas/{{name}}", "get")}
# Queries sent as a body: reads, so a viewer may send them.
READ_POSTS = {(f"{V1}/analysis/{{db}}/dry-run", "post"), (f"{V1}/graph-query/{{db}}", "post"),
              (f"{V1}/query/{{db}}", "post"), (f"{V1}/bff/{{db}}/query", "post")}
OPS = {("/metrics", "get"), (f"{V1}/status/commands", "get"), (f"{V1}/dashboard/data", "get"),
       (f"{V1}/dashboard/local", "get"), (f"{V1}/audit", "get")}  # every database's audit log


def fill(path: str, db: str) -> str:
    values = {"db": db, "class_id": "Person", "class_ref": "Person", "instance_id": "p1",
              "name": "envelope" if "/schemas/" in path else "swagger-ui.css",
              "command_id": str(uuid.uuid4())}
    return re.sub(r"{(\w+)}", lambda m: values[m.group(1)], path)


async def operations(http, worker):
    async with http.get(f"{worker.url}/openapi.json") as r:
        document = await r.json()
    return [(path, method) for path, item in document["paths"].items() for method in item]


async def request(session, method, url, **headers):
    body = {} if method in ("post", "put") else None
    async with session.request(method, url, json=body, headers=headers,
                               params={"timeout": "1"}) as r:
        return r.status, await r.text()


@pytest.fixture
async def viewer_key(runtime):
    db = unique_db()
    _, key = await runtime.keys.create(f"viewer-{db}", {db: "viewer"})
    return db, key


async def test_every_route_needs_a_credential_and_a_viewer_cannot_write(
        worker, http, anonymous_http, viewer_key):
    db, key = viewer_key
    await create_db(http, worker, db)
    ops = await operations(http, worker)
    assert len(ops) > 40
    for path, method in ops:
        url = worker.url + fill(path, db)
        status, text = await request(anonymous_http, method, url)
        if (path, method) in PUBLIC:
            assert status in (200, 503), (path, method, status, text)
            continue
        assert status == 401, (path, method, status, text)
        assert '"unauthenticated"' in text
        status, text = await request(anonymous_http, method, url, **{"X-API-Key": key})
        if (method != "get" and (path, method) not in READ_POSTS) or (path, method) in OPS:
            assert status == 403, (path, method, status, text)
            assert '"forbidden"' in text
        else:
            assert status not in (401, 403), (path, method, status, text)


async def test_roles_are_per_database_and_the_actor_is_recorded(worker, http, anonymous_http, runtime):
    mine, theirs = unique_db(), unique_db()
    for db in (mine, theirs):
        await create_db(http, worker, db)
    name = f"editor-of-one-{uuid.uuid4().hex[:8]}"  # key names are never reused
    _, key = await runtime.keys.create(name, {mine: "editor"})
    headers = {"X-API-Key": key}
    body = {"id": "Thing", "label": "Thing"}
    async with anonymous_http.post(f"{worker.url}{V1}/ontology/{mine}/async/create", json=body,
                                   headers=headers) as r:
        assert r.status == 202, await r.text()
        command_id = (await r.json())["command_id"]
    async with anonymous_http.post(f"{worker.url}{V1}/ontology/{theirs}/async/create", json=body,
                                   headers=headers) as r:
        assert r.status == 403
    async with anonymous_http.post(f"{worker.url}{V1}/database/create", json={"name": unique_db()},
                                   headers=headers) as r:
        assert r.status == 403  # creating databases takes a '*' admin
    async with anonymous_http.get(f"{worker.url}{V1}/database/list", headers=headers) as r:
        names = {d["name"] for d in (await r.json())["databases"]}
    assert mine in names and theirs not in names
    async with anonymous_http.post(f"{worker.url}{V1}/ontology/_system/async/create", json=body,
                                   headers=headers) as r:
        assert r.status == 403  # system databases: '*' admin only
    stored = await runtime.event_store.get(command_id)
    assert stored.actor == f"key:{name}"


async def test_revoked_key_stops_working(worker, anonymous_http, runtime):
    key_info, key = await runtime.keys.create(f"short-lived-{uuid.uuid4().hex[:8]}", {"*": "viewer"})
    url = f"{worker.url}{V1}/database/list"
    async with anonymous_http.get(url, headers={"X-API-Key": key}) as r:
        assert r.status == 200
    assert await runtime.keys.revoke(key_info.key_id)
    deadline = time.monotonic() + 10  # each worker caches a verified key for 5 s
    while time.monotonic() < deadline:
        async with anonymous_http.get(url, headers={"X-API-Key": key}) as r:
            if r.status == 401:
                return
        await asyncio.sleep(0.5)
    pytest.fail("a revoked key still works after 10 s")


async def test_jwt_bearer_tokens(worker, http, anonymous_http):
    db = unique_db()
    await create_db(http, worker, db)
    secret = os.environ["AUTH_JWT_SECRET"]
    token = jwt.encode({"sub": "ann@example.org", "roles": {db: "editor"}, "exp": time.time() + 60},
                       secret, algorithm="HS256")
    headers = {"Authorization": f"Bearer {token}"}
    async with anonymous_http.post(f"{worker.url}{V1}/ontology/{db}/sync/create?timeout=30",
                                   json={"id": "Doc"}, headers=headers) as r:
        assert r.status == 200, await r.text()
    expired = jwt.encode({"sub": "ann", "roles": {db: "editor"}, "exp": time.time() - 5}, secret,
                         algorithm="HS256")
    async with anonymous_http.get(f"{worker.url}{V1}/ontology/{db}",
                                  headers={"Authorization": f"Bearer {expired}"}) as r:
        assert r.status == 401 and "expired" in await r.text()
    forged = jwt.encode({"sub": "eve", "roles": {"*": "admin"}, "exp": time.time() + 60},
                        "another-secret-of-32-bytes-or-more!",
                        algorithm="HS256")
    async with anonymous_http.get(f"{worker.url}{V1}/ontology/{db}",
                                  headers={"Authorization": f"Bearer {forged}"}) as r:
        assert r.status == 401


async def test_rate_limit_answers_429_with_retry_after(worker, anonymous_http, runtime):
    _, key = await runtime.keys.create(f"slow-client-{uuid.uuid4().hex[:8]}", {"*": "viewer"},
                                       rate_per_second=2)
    statuses, retry_after = [], None
    for _ in range(12):
        async with anonymous_http.get(f"{worker.url}{V1}/database/list",
                                      headers={"X-API-Key": key}) as r:
            statuses.append(r.status)
            if r.status == 429:
                retry_after = r.headers.get("Retry-After")
    assert statuses[0] == 200 and 429 in statuses, statuses
    assert retry_after is not None and int(retry_after) >= 1
    await asyncio.sleep(1.2)  # tokens come back at the key's rate
    async with anonymous_http.get(f"{worker.url}{V1}/database/list", headers={"X-API-Key": key}) as r:
        assert r.status == 200


async def test_body_and_batch_size_limits(worker, http):
    db = unique_db()
    await create_db(http, worker, db)
    big = {"id": "Big", "description": "x" * 2_000_000}
    async with http.post(f"{worker.url}{V1}/ontology/{db}/async/create", json=big) as r:
        assert r.status == 413
    items = [{"instance_id": f"i{i}", "data": {}} for i in range(10_001)]
    async with http.post(f"{worker.url}{V1}/instances/{db}/async/Person/bulk-create",
                         json={"items": items}) as r:
        assert r.status == 413 and (await r.json())["detail"]["field"] == "items"


def metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            if all(f'{k}="{v}"' in line for k, v in labels.items()):
                total += float(line.rsplit(" ", 1)[1])
    return total


async def test_metrics_are_exposed_and_move_under_load(worker, http):
    async with http.get(f"{worker.url}/metrics") as r:
        before = await r.text()
    db = unique_db()
    await create_db(http, worker, db)
    for n in range(5):
        async with http.post(f"{worker.url}{V1}/ontology/{db}/sync/create?timeout=30",
                             json={"id": f"C{n}"}) as r:
            assert r.status == 200
    async with http.get(f"{worker.url}/metrics") as r:
        after = await r.text()
    route = "/api/v1/ontology/{db}/sync/create"
    assert metric(after, "spice_http_requests_total", route=route, code="200") - \
        metric(before, "spice_http_requests_total", route=route, code="200") == 5
    assert metric(after, "spice_http_request_seconds_count", route=route) >= 5
    assert metric(after, "spice_commands_processed_total", command_type="CREATE_ONTOLOGY_CLASS",
                  outcome="completed") >= metric(before, "spice_commands_processed_total",
                                                 command_type="CREATE_ONTOLOGY_CLASS",
                                                 outcome="completed") + 5
    assert metric(after, "spice_registry_claims_total", outcome="claimed") > \
        metric(before, "spice_registry_claims_total", outcome="claimed")
    # (the cluster-wide series: test_metrics_expose_lag_dlq_and_commands)
    for name in ("spice_info", "spice_circuit_open", "spice_publisher_is_leader"):
        assert name in after


async def test_trace_context_travels_from_request_to_projection(worker, http, runtime):
    db = unique_db()
    await create_db(http, worker, db)
    trace_id = uuid.uuid4().hex
    headers = {"traceparent": f"00-{trace_id}-{'1' * 16}-01"}
    async with http.post(f"{worker.url}{V1}/ontology/{db}/sync/create?timeout=30&wait=projected",
                         json={"id": "Traced"}, headers=headers) as r:
        assert r.status == 200, await r.text()
        body = await r.json()
    command = await runtime.event_store.get(body["data"]["command_id"])
    assert command.metadata["traceparent"].split("-")[1] == trace_id
    event = await runtime.event_store.get(body["data"]["result"]["event_ids"][0])
    assert event.metadata["traceparent"].split("-")[1] == trace_id
