"""Topics whose messages the agents decode themselves (envelopes, status changes).

Faust decodes a message's key and value through its serializer registry even when
both serializers are "raw" (a chain of codec lookups and calls that hands the bytes
back unchanged): a few per cent of a projection worker's CPU. These topics get a
schema that makes the event straight from the message's bytes.
"""
from __future__ import annotations

from typing import Any

import faust

from spice.app import app


class RawSchema(faust.Schema):
    def compile(self, app: Any, *, on_key_decode_error: Any = None,
                on_value_decode_error: Any = None, default_propagate: bool = False) -> Any:
        create_event = app.create_event

        async def decode(message: Any, *, propagate: bool = default_propagate) -> Any:
            return create_event(message.key, message.value, message.headers, message)

        return decode


def raw_topic(name: str) -> Any:
    """A topic of bytes keys and values, as the publisher and other services send them."""
    return app.topic(name, partitions=app.settings.topic_partitions,
                     schema=RawSchema(key_type=bytes, value_type=bytes, key_serializer="raw",
                                      value_serializer="raw"))
