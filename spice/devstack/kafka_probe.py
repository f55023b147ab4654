"""Ask the broker for its metadata: an open port alone is not a ready KRaft broker."""
from __future__ import annotations

import asyncio

from spice.kafka_client import kafka_options
from spice.settings import Settings


async def _probe(settings: Settings) -> bool:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(**kafka_options(settings), request_timeout_ms=3000)
    try:
        await admin.start()
        await admin.list_topics()
        return True
    except Exception:
        return False
    finally:
        await admin.close()


def broker_answers(settings: Settings) -> bool:
    return asyncio.run(_probe(settings))
