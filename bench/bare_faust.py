"""The framework's limit for bench.compare: a bare Faust agent that decodes each command
envelope and writes one table entry, nothing else (no claim, no event store, no graph,
no status). It counts what it has processed at GET /count.

    faust -A bench.bare_faust worker --web-port PORT
"""
from __future__ import annotations

from typing import Any

import faust
from aiohttp import web

from spice.domain.envelope import Envelope
from spice.kafka_client import faust_credentials
from spice.settings import get_settings

TOPIC = "bench_bare_commands"
settings = get_settings()
app = faust.App("spice-bench-bare-faust", broker=f"kafka://{settings.kafka_bootstrap_servers}",
                broker_credentials=faust_credentials(settings), store="memory://",
                topic_partitions=settings.topic_partitions, web_host="127.0.0.1",
                datadir=str(settings.spice_run_dir / "bench-bare-faust"),
                consumer_auto_offset_reset="latest",
                # The worker's settings where they bear on throughput (spice/app.py).
                producer_acks=-1, producer_linger=0.005, producer_max_batch_size=1 << 20,
                stream_wait_empty=False)
commands = app.topic(TOPIC, key_type=bytes, value_type=bytes, value_serializer="raw",
                     key_serializer="raw")
last = app.Table("bench_bare_last", default=str, partitions=settings.topic_partitions)
processed = {"count": 0}


@app.agent(commands)
async def apply(stream: Any) -> None:
    async for value in stream:
        envelope = Envelope.from_json(value)
        last[envelope.aggregate_id] = envelope.event_id
        processed["count"] += 1


@app.page("/count")
async def count(_web: Any, _request: Any) -> web.Response:
    return web.json_response(processed)
