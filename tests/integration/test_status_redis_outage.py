"""The status tracker through a Redis outage, on a Redis server of the test's own:
writes skip Redis at once while it is known down (each to the topic), and what
Redis missed is replayed once it is back, so it does not keep a stale status."""
import asyncio
import json
import shutil
import signal
import socket
import subprocess
import uuid

import pytest
import redis.asyncio as aioredis

from spice.stores import status as status_module
from spice.stores.status import StatusTracker, status_key

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrivateRedis:
    def __init__(self, home, port: int) -> None:
        self.home, self.port, self.proc = home, port, None

    def spawn(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.home),
             "--appendonly", "yes", "--appendfsync", "always", "--save", ""],
            stdout=subprocess.DEVNULL)

    async def start(self) -> None:
        self.spawn()
        client = aioredis.Redis(port=self.port)
        for _ in range(100):
            try:
                await client.ping()
                break
            except OSError:
                await asyncio.sleep(0.05)
            except Exception:  # noqa: BLE001 - redis-py wraps refusals in its own errors
                await asyncio.sleep(0.05)
        await client.aclose()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=30)


async def test_status_writes_skip_a_down_redis_and_replay_when_back(tmp_path, monkeypatch):
    monkeypatch.setattr(status_module, "PROBE_INTERVAL", 0.2)
    server = PrivateRedis(tmp_path, free_port())
    await server.start()
    emitted: list[dict] = []

    async def emit(change: dict) -> None:
        emitted.append(change)

    redis = aioredis.Redis(port=server.port, decode_responses=True, socket_timeout=2,
                           socket_connect_timeout=1)
    tracker = StatusTracker(redis, 3600, emit=emit)
    ids = [str(uuid.uuid4()) for _ in range(20)]
    try:
        for cid in ids:
            assert (await tracker.update(cid, "PENDING", "accepted"))["status"] == "PENDING"
        server.stop()

        loop = asyncio.get_running_loop()
        started = loop.time()
        for cid in ids:
            await tracker.update(cid, "PROCESSING", "claimed")
            assert await tracker.update(cid, "COMPLETED", "done", result={"ok": cid}) is None
        down_for = loop.time() - started
        # Only the first write found out that Redis is gone; the other 39 did not wait.
        assert tracker.redis_down and tracker.missed == 40
        assert down_for < status_module.REDIS_TIMEOUT * 2, down_for
        assert [c["status"] for c in emitted].count("COMPLETED") == 20  # the topic had them all
        with pytest.raises(Exception):  # noqa: B017 - reads fail fast too (callers fall back)
            await tracker.get(ids[0])

        await server.start()
        for _ in range(100):
            if not tracker.redis_down:
                break
            await asyncio.sleep(0.1)
        assert not tracker.redis_down and tracker.missed == 0
        for cid in ids:
            doc = await tracker.get(cid)
            assert doc["status"] == "COMPLETED", doc
            assert [h["status"] for h in doc["history"]] == ["PENDING", "PROCESSING", "COMPLETED"]
            assert doc["result"] == {"ok": cid}
        raw = json.loads(await redis.get(status_key(ids[0])))
        assert raw["command_id"] == ids[0]
    finally:
        await tracker.close()
        await redis.aclose()
        server.stop()


async def test_the_same_outcome_reported_twice_is_recorded_once(tmp_path):
    server = PrivateRedis(tmp_path, free_port())
    await server.start()
    redis = aioredis.Redis(port=server.port, decode_responses=True)
    tracker = StatusTracker(redis, 3600)
    cid = str(uuid.uuid4())
    try:
        for status in ("PENDING", "PROCESSING", "COMPLETED", "PROJECTED", "COMPLETED"):
            await tracker.update(cid, status, status.lower(), projected=status == "PROJECTED" or None)
        doc = await tracker.get(cid)
        assert [h["status"] for h in doc["history"]] == ["PENDING", "PROCESSING", "COMPLETED", "PROJECTED"]
        assert doc["status"] == "COMPLETED" and doc["projected"] is True
    finally:
        await tracker.close()
        await redis.aclose()
        server.stop()


async def test_a_batch_of_transitions_is_applied_in_order_by_one_script_call(tmp_path):
    """Concurrent updates share one script call (several changes for one command among
    them); record_many does the same without answers. Each command ends as if its
    changes had been applied one by one, and every change is published to waiters."""
    from spice.stores.status import channel, make_change

    server = PrivateRedis(tmp_path, free_port())
    await server.start()
    redis = aioredis.Redis(port=server.port, decode_responses=True)
    tracker = StatusTracker(redis, 3600)
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    pubsub = redis.pubsub()
    try:
        await pubsub.subscribe(channel(a))
        docs = await asyncio.gather(
            tracker.update(a, "PENDING", "accepted"), tracker.update(a, "PROCESSING", "claimed"),
            tracker.update(b, "PENDING", "accepted"),
            tracker.update(a, "COMPLETED", "done", result={"n": 1}, progress=100.0),
            tracker.update(a, "PROCESSING", "late redelivery"))  # after a terminal: ignored
        assert [d["status"] for d in docs] == ["PENDING", "PROCESSING", "PENDING", "COMPLETED",
                                               "COMPLETED"]
        await tracker.record_many([make_change(a, "PROJECTED", "caught up", projected=True),
                                   make_change(b, "PROJECTED", "caught up", projected=True)])
        doc = await tracker.get(a)
        assert [h["status"] for h in doc["history"]] == ["PENDING", "PROCESSING", "COMPLETED",
                                                         "PROJECTED"]
        assert doc["status"] == "COMPLETED" and doc["projected"] is True
        assert doc["result"] == {"n": 1} and doc["progress"] == 100.0
        other = await tracker.get(b)
        assert other["status"] == "PENDING" and other["projected"] is True
        published: list[str] = []
        deadline = asyncio.get_running_loop().time() + 2.0
        while len(published) < 4 and asyncio.get_running_loop().time() < deadline:
            # None for the subscription's own confirmation, and when nothing came yet.
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2)
            if message is not None:
                published.append(json.loads(message["data"])["history"][-1]["status"])
        assert published == ["PENDING", "PROCESSING", "COMPLETED", "PROJECTED"]
    finally:
        await pubsub.aclose()
        await tracker.close()
        await redis.aclose()
        server.stop()
