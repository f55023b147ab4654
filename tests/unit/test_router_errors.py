"""The router's own answers (no route, wrong method) are JSON in the API's error shape."""
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from spice.web.server import json_errors


async def ok(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


async def client() -> TestClient:
    app = web.Application(middlewares=[json_errors])
    app.router.add_get("/api/v1/thing", ok)
    test_client = TestClient(TestServer(app))
    await test_client.start_server()
    return test_client


async def test_no_route_is_a_json_404():
    c = await client()
    try:
        r = await c.get("/api/v1/nothing%00here")
        assert r.status == 404
        assert r.content_type == "application/json"
        assert (await r.json())["detail"]["code"] == "not_found"
    finally:
        await c.close()


async def test_wrong_method_is_a_json_405_keeping_allow():
    c = await client()
    try:
        r = await c.delete("/api/v1/thing")
        assert r.status == 405
        assert r.content_type == "application/json"
        assert "GET" in r.headers["Allow"]
        assert (await r.json())["detail"]["message"] == "DELETE /api/v1/thing: method not allowed"
    finally:
        await c.close()


async def test_answers_of_views_pass_unchanged():
    c = await client()
    try:
        r = await c.get("/api/v1/thing")
        assert (r.status, await r.json()) == (200, {"ok": True})
    finally:
        await c.close()
