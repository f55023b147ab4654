"""Trace context across the whole flow, in W3C `traceparent` form.

The HTTP layer takes the caller's `traceparent` (or starts a trace), stores it in
the command envelope's metadata; domain events copy it (spice.domain.messages),
so the worker and the projection continue the same trace. Without OpenTelemetry
installed (the `tracing` extra) and TRACING_ENABLED, only the header travels (and
JSON log lines carry its ids); with both, `configure` installs the SDK with an OTLP
exporter (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_TRACES_SAMPLER, ... as the SDK reads them)
and the client instrumentations, each HTTP request is a server span, and the
command and projection steps are its children.
"""
from __future__ import annotations

import contextvars
import logging
import random
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_enabled = False
log = logging.getLogger(__name__)
# The step running now, as a traceparent: what JSON log lines take their ids from.
current: contextvars.ContextVar[str | None] = contextvars.ContextVar("traceparent", default=None)
# Client libraries instrumented when tracing is on, by their OpenTelemetry package.
INSTRUMENTATIONS = {
    "aiohttp-client": ("opentelemetry.instrumentation.aiohttp_client", "AioHttpClientInstrumentor"),
    "aiokafka": ("opentelemetry.instrumentation.aiokafka", "AIOKafkaInstrumentor"),
    "asyncpg": ("opentelemetry.instrumentation.asyncpg", "AsyncPGInstrumentor"),
    "redis": ("opentelemetry.instrumentation.redis", "RedisInstrumentor"),
}


def enable(on: bool) -> None:
    global _enabled
    _enabled = on


def configure(service_name: str, instrument: list[str], exporter: Any = None) -> bool:
    """Install the OpenTelemetry SDK (once per process) with a batching exporter: the
    OTLP/HTTP one unless `exporter` is given (tests pass an in-memory one), and the
    instrumentations named. False, logged, when the `tracing` extra is not installed."""
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    except ImportError:
        log.warning("TRACING_ENABLED but the tracing extra is not installed "
                    "(pip install 'spice-harvester-faust[tracing]'): only trace headers travel")
        return False
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    if exporter is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    else:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    for name in instrument:
        module_name, class_name = INSTRUMENTATIONS[name]
        try:
            module = __import__(module_name, fromlist=[class_name])
        except ImportError:
            log.warning("tracing: %s is not installed; %s calls get no spans", module_name, name)
            continue
        getattr(module, class_name)().instrument()
    enable(True)
    return True


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


def _active_traceparent() -> str | None:
    """The current OpenTelemetry span as a traceparent (None when there is none)."""
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


def for_command(headers: Any) -> str:
    """The traceparent a command accepted now carries: the HTTP request's span when
    tracing is on (the command's steps become its children), else the caller's trace
    with a span id of our own."""
    if _enabled:
        active = current.get()
        if active:
            return active
    return from_headers(headers)


def record_spans(name: str, traceparents: list[str | None], start_ns: int, end_ns: int,
                 **attributes: Any) -> None:
    """One finished span per trace for work done once for many of them (a projection
    batch): each event's trace shows its step, timed as the batch was."""
    if not _enabled:
        return
    from opentelemetry import trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    tracer = trace.get_tracer("spice")
    for traceparent in traceparents:
        if valid(traceparent):
            context = TraceContextTextMapPropagator().extract({"traceparent": traceparent})
            tracer.start_span(name, context=context, start_time=start_ns,
                              attributes=attributes).end(end_time=end_ns)


@contextmanager
def request_span(method: str, route: str, headers: Any) -> Iterator[Any]:
    """A server span per HTTP request, child of the caller's traceparent; yields the
    span (or None) so the status code can be set on it."""
    if not _enabled:
        yield None
        return
    from opentelemetry import trace
    from opentelemetry.trace import SpanKind
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    incoming = headers.get("traceparent")
    context = TraceContextTextMapPropagator().extract({"traceparent": incoming}) \
        if valid(incoming) else None
    with trace.get_tracer("spice").start_as_current_span(
            f"{method.upper()} {route}", context=context, kind=SpanKind.SERVER,
            attributes={"http.request.method": method.upper(), "http.route": route}) as server:
        token = current.set(_active_traceparent())
        try:
            yield server
        finally:
            current.reset(token)


@contextmanager
def span(name: str, traceparent: str | None, **attributes: Any) -> Iterator[None]:
    """An OpenTelemetry span under the envelope's trace, when tracing is on; either way
    log lines inside carry the trace's ids."""
    if not valid(traceparent):
        yield
        return
    if not _enabled:
        token = current.set(traceparent)
        try:
            yield
        finally:
            current.reset(token)
        return
    from opentelemetry import trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    context = TraceContextTextMapPropagator().extract({"traceparent": traceparent})
    with trace.get_tracer("spice").start_as_current_span(name, context=context,
                                                          attributes=attributes):
        token = current.set(_active_traceparent())
        try:
            yield
        finally:
            current.reset(token)
