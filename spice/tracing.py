"""Trace context across the whole flow, in W3C `traceparent` form.

The HTTP layer takes the caller's `traceparent` (or starts a trace), stores it in
the command envelope's metadata; domain events copy it (spice.domain.messages),
so the worker and the projection continue the same trace. Without OpenTelemetry
installed (the `tracing` extra) and TRACING_ENABLED, only the header travels;
with both, each step is also a span exported by the configured OTel SDK.
"""
from __future__ import annotations

import random
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_enabled = False


def enable(on: bool) -> None:
    global _enabled
    _enabled = on


def valid(traceparent: str | None) -> bool:
    match = TRACEPARENT.match(traceparent or "")
    return match is not None and match.group(1) != "0" * 32 and match.group(2) != "0" * 16


def _span_id() -> str:
    # Trace and span ids need to be unique, not secret: OpenTelemetry's own id
    # generator uses random.getrandbits too. secrets.token_hex made two getrandom
    # system calls on every accepted command (~1 % of a busy worker's samples).
    return f"{random.getrandbits(64) or 1:016x}"


def new_traceparent() -> str:
    return f"00-{random.getrandbits(128) or 1:032x}-{_span_id()}-01"


def from_headers(headers: Any) -> str:
    incoming = headers.get("traceparent")
    if valid(incoming):
        return f"00-{incoming.split('-')[1]}-{_span_id()}-{incoming.split('-')[3]}"
    return new_traceparent()


def trace_id(traceparent: str | None) -> str | None:
    return traceparent.split("-")[1] if traceparent and valid(traceparent) else None


@contextmanager
def span(name: str, traceparent: str | None, **attributes: Any) -> Iterator[None]:
    """An OpenTelemetry span under the envelope's trace, when tracing is on."""
    if not _enabled or not valid(traceparent):
        yield
        return
    try:
        from opentelemetry import trace
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
    except ImportError:  # the extra is not installed: the header still travels
        yield
        return
    context = TraceContextTextMapPropagator().extract({"traceparent": traceparent})
    with trace.get_tracer("spice").start_as_current_span(name, context=context,
                                                          attributes=attributes):
        yield
