"""The router's own answers (no route, wrong method) are JSON in the API's error shape."""
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from spice.web.server import json_errors


async def ok(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


def app() -> web.Application:
    application = web.Application(middlewares=[json_errors])
    application.router.add_get("/api/v1/thing", ok)
    return application


@pytest.fixture
async def c():
    test_client = TestClient(TestServer(app()))
    await test_client.start_server()
    yield test_client
    await test_client.close()


async def test_no_route_is_a_json_404(c):
    r = await c.get("/api/v1/nothing%00here")
    assert r.status == 404
    assert r.content_type == "application/json"
    assert (await r.json())["detail"]["code"] == "not_found"


async def test_wrong_method_is_a_json_405_keeping_allow(c):
    r = await c.delete("/api/v1/thing")
    assert r.status == 405
    assert r.content_type == "application/json"
    assert "GET" in r.headers["Allow"]
    assert (await r.json())["detail"]["message"] == "DELETE /api/v1/thing: method not allowed"


async def test_answers_of_views_pass_unchanged(c):
    r = await c.get("/api/v1/thing")
    assert (r.status, await r.json()) == (200, {"ok": True})


async def raw_exchange(request: bytes) -> tuple[int, str, dict]:
    """Sends bytes to a server on the API's site (the parser's errors included)."""
    import asyncio
    import json

    from aiohttp.web import AppRunner

    from spice.web.server import _Site

    runner = AppRunner(app())
    await runner.setup()
    site = _Site(runner, "127.0.0.1", 0)
    await site.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", site._bound_port)
        writer.write(request)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 5)
        writer.close()
    finally:
        await runner.cleanup()
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers["Content-Type"], json.loads(body)


async def test_a_malformed_header_is_a_json_400():
    status, content_type, body = await raw_exchange(
        b"GET /api/v1/thing HTTP/1.1\r\nHost: x\r\nBad\x01Name: v\r\n\r\n")
    assert (status, content_type) == (400, "application/json; charset=utf-8")
    assert body["detail"]["code"] == "bad_request"


async def test_a_malformed_request_line_is_a_json_400():
    status, content_type, body = await raw_exchange(b"GET /api/v1/thing HTTP/9\r\n\r\n")
    assert status == 400 and content_type.startswith("application/json")
    assert body["detail"]["message"]
