"""Live status over WebSocket on the real worker: a command's changes arrive in order and
end with its terminal status; a database's stream carries its commands; a caller who
may not read the database gets nothing but close code 4404."""
import json

import aiohttp

from tests.integration.conftest import TEST_ADMIN_KEY
from tests.integration.test_api_end_to_end import V1, create_db, unique_db

ORDER = ["PENDING", "PROCESSING", "RETRYING", "COMPLETED", "FAILED"]


async def submit(http, worker, db, class_id):
    async with http.post(f"{worker.url}{V1}/ontology/{db}/async/create", json={"id": class_id}) as r:
        assert r.status == 202, await r.text()
        return (await r.json())["command_id"]


async def messages(socket, until=None, limit=50):
    out = []
    async for message in socket:
        if message.type != aiohttp.WSMsgType.TEXT:
            break
        out.append(json.loads(message.data))
        if until is not None and until(out[-1]) or len(out) >= limit:
            break
    return out


async def test_a_commands_changes_arrive_in_order_and_end_terminal(worker, http, anonymous_http):
    db = unique_db()
    await create_db(http, worker, db)
    ws = worker.url.replace("http", "ws", 1)
    async with anonymous_http.ws_connect(f"{ws}{V1}/ws/commands?db={db}",
                                         headers={"X-API-Key": TEST_ADMIN_KEY}) as stream:
        command_id = await submit(http, worker, db, "Thing")
        # authenticated by the first message, as a browser would
        async with anonymous_http.ws_connect(f"{ws}{V1}/ws/commands/{command_id}") as one:
            await one.send_str(json.dumps({"auth": TEST_ADMIN_KEY}))
            docs = await messages(one)
            assert one.closed or (await one.receive()).type in (aiohttp.WSMsgType.CLOSE,
                                                               aiohttp.WSMsgType.CLOSED)
        assert docs and docs[-1]["status"] == "COMPLETED", (docs, one.close_code)
        assert all(d["command_id"] == command_id for d in docs)
        ranks = [ORDER.index(d["status"]) for d in docs if d["status"] in ORDER]
        assert ranks == sorted(ranks), [d["status"] for d in docs]
        seen = await messages(stream, until=lambda d: d["command_id"] == command_id
                              and d["status"] == "COMPLETED")
        assert seen[-1]["status"] == "COMPLETED" and all(d["db"] == db for d in seen if "db" in d)


async def test_a_caller_without_access_gets_nothing(worker, http, anonymous_http, runtime):
    db, other = unique_db(), unique_db()
    for name in (db, other):
        await create_db(http, worker, name)
    _, key = await runtime.keys.create(f"ws-viewer-{other}", {other: "viewer"})
    command_id = await submit(http, worker, db, "Secret")
    ws = worker.url.replace("http", "ws", 1)
    async with anonymous_http.ws_connect(f"{ws}{V1}/ws/commands/{command_id}",
                                         headers={"X-API-Key": key}) as socket:
        message = await socket.receive(timeout=10)
        assert message.type == aiohttp.WSMsgType.CLOSE and socket.close_code == 4404
    async with anonymous_http.ws_connect(f"{ws}{V1}/ws/commands?db={db}",
                                         headers={"X-API-Key": key}) as socket:
        message = await socket.receive(timeout=10)
        assert message.type == aiohttp.WSMsgType.CLOSE and socket.close_code == 4404
    async with anonymous_http.ws_connect(f"{ws}{V1}/ws/commands/{command_id}") as socket:
        await socket.send_str(json.dumps({"auth": "spk_made_up"}))
        message = await socket.receive(timeout=15)
        assert message.type == aiohttp.WSMsgType.CLOSE and socket.close_code == 4401
