"""The web layer's limit for bench.compare: a bare aiohttp handler that parses the
create request's body and produces it to Kafka with the service's producer settings
(acks=all, 2 ms linger, key partitioner), then answers 202. No authentication, no
validation, no event store, no status.

    python -m bench.bare_web PORT
"""
from __future__ import annotations

import sys
import uuid

import orjson
from aiohttp import web
from aiokafka import AIOKafkaProducer

from spice.kafka_client import kafka_options
from spice.partitioner import KeyPartitioner
from spice.settings import Settings

TOPIC = "bench_bare_web"


async def producer_context(app: web.Application):  # type: ignore[no-untyped-def]
    producer = AIOKafkaProducer(**kafka_options(Settings()), acks="all", linger_ms=2,
                                max_batch_size=512 << 10, partitioner=KeyPartitioner())
    await producer.start()
    app["producer"] = producer
    yield
    await producer.stop()


async def create(request: web.Request) -> web.Response:
    body = await request.read()
    data = orjson.loads(body)
    key = f"{request.match_info['db']}:{data['instance_id']}".encode()
    await request.app["producer"].send_and_wait(TOPIC, body, key=key)
    return web.json_response({"command_id": str(uuid.uuid4()), "status": "PENDING"}, status=202)


def main() -> None:
    app = web.Application()
    app.cleanup_ctx.append(producer_context)
    app.router.add_post("/api/v1/instances/{db}/async/{class_id}/create", create)
    app.router.add_get("/livez", lambda _: web.json_response({"status": "ok"}))
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None)


if __name__ == "__main__":
    main()
