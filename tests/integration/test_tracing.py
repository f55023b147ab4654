"""One trace from the HTTP request through the worker to the projection, exported over
OTLP/HTTP by a worker with TRACING_ENABLED to a receiver in this test."""
from __future__ import annotations

import json
import uuid
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.conftest import TEST_ADMIN_KEY
from tests.integration.kafka_helpers import wait_for
from tests.integration.test_api_end_to_end import create_db, unique_db
from tests.integration.worker import WorkerProcess

pytestmark = pytest.mark.integration
V1 = "/api/v1"
RECEIVER_PORT = 16402


@pytest.fixture
async def receiver():
    """An OTLP/HTTP trace receiver: every span posted to /v1/traces, with its service."""
    spans: list[dict] = []

    async def traces(request: web.Request) -> web.Response:
        message = ExportTraceServiceRequest.FromString(await request.read())
        for resource in message.resource_spans:
            service = next((a.value.string_value for a in resource.resource.attributes
                            if a.key == "service.name"), "")
            for scope in resource.scope_spans:
                for span in scope.spans:
                    spans.append({"name": span.name, "service": service, "scope": scope.scope.name,
                                  "trace_id": span.trace_id.hex(), "span_id": span.span_id.hex(),
                                  "parent": span.parent_span_id.hex()})
        return web.Response(status=200, content_type="application/x-protobuf")

    app = web.Application()
    app.router.add_post("/v1/traces", traces)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", RECEIVER_PORT)
    await site.start()
    yield spans
    await runner.cleanup()


async def test_one_trace_from_the_request_through_the_worker_to_the_projection(worker, http, receiver):
    db = unique_db()
    await create_db(http, worker, db)
    log = Path("test-artifacts") / "worker-traced.log"
    log.unlink(missing_ok=True)
    # The shared worker must not take the command: the traced one runs alone meanwhile.
    worker.stop()
    traced = WorkerProcess(worker.port, log, env={
        "TRACING_ENABLED": "true", "LOG_FORMAT": "json",
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{RECEIVER_PORT}",
        "OTEL_BSP_SCHEDULE_DELAY": "200"})
    trace_id, caller = uuid.uuid4().hex, "1" * 16
    try:
        traced.start()
        # A session of its own: `http` may hold a kept-alive connection to the stopped worker.
        async with aiohttp.ClientSession(headers={"X-API-Key": TEST_ADMIN_KEY}) as fresh, fresh.post(
                f"{traced.url}{V1}/ontology/{db}/sync/create?timeout=30&wait=projected",
                json={"id": "Traced"}, headers={"traceparent": f"00-{trace_id}-{caller}-01"}) as r:
            assert r.status == 200, await r.text()

        def ours() -> list[dict]:
            return [s for s in receiver if s["trace_id"] == trace_id]

        def complete() -> bool:
            names = {s["name"] for s in ours()}
            return {"command", "projection"} <= names and any(n.startswith("POST ") for n in names)

        try:
            await wait_for(complete, timeout=30)
        except AssertionError:
            raise AssertionError(f"spans of the trace: {ours()}; all: {len(receiver)}") from None
        spans = ours()
        [server] = [s for s in spans if s["name"] == f"POST {V1}/ontology/{{db}}/sync/create"]
        assert server["parent"] == caller and server["service"] == "spice-worker"
        [command] = [s for s in spans if s["name"] == "command"]
        projections = [s for s in spans if s["name"] == "projection"]
        assert command["parent"] == server["span_id"]
        assert projections and all(p["parent"] == server["span_id"] for p in projections)
        # The instrumented clients add their calls inside the steps (asyncpg, aiokafka, ...).
        inside = {s["scope"] for s in spans if s["parent"] in {command["span_id"], server["span_id"]}}
        assert any("instrumentation" in scope for scope in inside), inside
    finally:
        traced.stop()
        worker.start()
    # LOG_FORMAT=json: Faust's own start-up lines are JSON too (the banner is not a log
    # line: `faust -q`, as the image runs it, leaves it out).
    logged = [line for line in log.read_text().splitlines() if line.startswith("{")]
    assert any(json.loads(line)["logger"] == "faust.worker" for line in logged)
