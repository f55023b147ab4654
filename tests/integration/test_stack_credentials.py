"""The local stack takes credentials, as production does (issue #23): another local
process without the files under .run/secrets gets nowhere."""
import asyncio
import urllib.error
import urllib.request

import asyncpg
import pytest
import redis.asyncio as aioredis
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from pydantic import SecretStr

from spice.kafka_client import kafka_options


async def test_postgres_role_is_not_a_superuser_and_needs_its_password(local_stack):
    conn = await asyncpg.connect(local_stack.postgres_dsn)
    try:
        row = await conn.fetchrow("SELECT rolsuper, rolcreaterole, rolcreatedb FROM pg_roles "
                                  "WHERE rolname = current_user")
        assert tuple(row) == (False, False, False)
        owner = await conn.fetchval("SELECT pg_get_userbyid(datdba) FROM pg_database "
                                    "WHERE datname = current_database()")
        assert owner == local_stack.postgres_user
    finally:
        await conn.close()
    wrong = local_stack.model_copy(update={"postgres_password": SecretStr("spice")})
    with pytest.raises(asyncpg.InvalidPasswordError):
        await asyncpg.connect(wrong.postgres_dsn)


async def test_redis_needs_its_password(local_stack):
    anonymous = aioredis.from_url(local_stack.redis_url)
    with pytest.raises(aioredis.AuthenticationError):
        await anonymous.ping()
    await anonymous.aclose()
    client = aioredis.from_url(local_stack.redis_url, password=local_stack.redis_password.get_secret_value())
    assert await client.ping()
    await client.aclose()


async def _admin_answers(options) -> bool:
    admin = AIOKafkaAdminClient(**options, request_timeout_ms=3000)
    try:
        await asyncio.wait_for(admin.start(), 10)
        await asyncio.wait_for(admin.list_topics(), 10)
        return True
    except (KafkaError, TimeoutError, OSError):
        return False
    finally:
        await admin.close()


async def test_kafka_needs_scram_credentials(local_stack):
    assert await _admin_answers(kafka_options(local_stack))
    assert not await _admin_answers({"bootstrap_servers": local_stack.kafka_bootstrap_servers})
    wrong = {**kafka_options(local_stack), "sasl_plain_password": "not-the-password"}
    assert not await _admin_answers(wrong)


def test_seaweedfs_serves_stored_events_only_through_signed_s3(local_stack):
    base = local_stack.s3_port
    bucket = local_stack.event_store_bucket
    for url in (f"http://127.0.0.1:{base + 5}/buckets/{bucket}/",  # filer
                f"http://127.0.0.1:{base}/{bucket}/"):  # S3 without a signature
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(url, timeout=5)
        assert refused.value.code in (401, 403), url
    with pytest.raises(OSError):  # WebDAV is off
        urllib.request.urlopen(f"http://127.0.0.1:{base + 6}/", timeout=5)
