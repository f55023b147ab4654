"""Metrics (prometheus_client, one registry per process), JSON logs, and the log context.

The counters and histograms here are the process's own events; /metrics adds the values
read at scrape time from memory (spice/web/metrics.py). Series names carry their unit
(`_seconds`, `_total`, `_events`); every label has a bounded set of values.
"""
from __future__ import annotations

import contextvars
import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from prometheus_client import CollectorRegistry, disable_created_metrics
from prometheus_client import Counter as PromCounter
from prometheus_client import Histogram as PromHistogram

from spice import tracing

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# This process's metrics: not prometheus_client's global registry, so a test or a second
# app in one interpreter starts from its own.
REGISTRY = CollectorRegistry(auto_describe=True)
# No `_created` series: a timestamp per labelled child doubles the exposition and no
# rule or panel here reads it.
disable_created_metrics()


class Counter:
    """A labelled counter; `inc(*label_values)` keeps the children it made, so the hot
    path is a dict lookup, not prometheus_client's labels() lock."""

    def __init__(self, name: str, help_text: str, labels: tuple[str, ...]) -> None:
        self.name, self.label_names = name, labels
        self.metric = PromCounter(name.removesuffix("_total"), help_text, labels, registry=REGISTRY)
        self.children: dict[tuple[Any, ...], Any] = {}

    def _child(self, labels: tuple[Any, ...]) -> Any:
        child = self.children.get(labels)
        if child is None:
            child = self.metric.labels(*labels) if labels else self.metric
            self.children[labels] = child
        return child

    def inc(self, *labels: Any, amount: float = 1.0) -> None:
        self._child(labels).inc(amount)

    def get(self, *labels: Any) -> float:
        child = self.children.get(labels)
        return 0.0 if child is None else float(child._value.get())

    def items(self) -> Iterator[tuple[tuple[Any, ...], float]]:
        """(label values, count) of every series this process has counted."""
        for labels, child in list(self.children.items()):
            yield labels, float(child._value.get())


class Histogram:
    def __init__(self, name: str, help_text: str, labels: tuple[str, ...],
                 buckets: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self.name, self.label_names = name, labels
        self.metric = PromHistogram(name, help_text, labels, buckets=buckets, registry=REGISTRY)
        self.children: dict[tuple[Any, ...], Any] = {}

    def observe(self, value: float, *labels: Any) -> None:
        child = self.children.get(labels)
        if child is None:
            child = self.children[labels] = self.metric.labels(*labels) if labels else self.metric
        child.observe(value)

    def count(self, *labels: Any) -> int:
        """Observations made with these label values."""
        child = self.children.get(labels)
        return 0 if child is None else int(sum(bucket.get() for bucket in child._buckets))


HTTP_REQUESTS = Counter("spice_http_requests_total",
                        "HTTP requests by route template, method and status code",
                        ("route", "method", "code"))
HTTP_LATENCY = Histogram("spice_http_request_seconds", "HTTP request latency in seconds, by route "
                         "template and method", ("route", "method"))
COMMANDS = Counter("spice_commands_processed_total",
                   "Commands finished by this worker, by type and outcome", ("command_type", "outcome"))
CLAIMS = Counter("spice_registry_claims_total",
                 "Processed-events registry claims by handler and outcome "
                 "(claimed, done = duplicate, stale, in_progress)", ("handler", "outcome"))
PROJECTED = Counter("spice_projection_events_total", "Events applied to the read model", ("event_type",))
RATE_LIMITED = Counter("spice_rate_limited_total",
                       "Requests refused with 429, by credential kind (api_key, jwt)", ("via",))
AUTH_FAILURES = Counter("spice_auth_failures_total", "Requests refused with 401 or 403", ("code",))
RESENT = Counter("spice_sweeper_resent_total",
                 "Stored envelopes the sweeper found unprocessed and sent again", ("kind",))
REGISTRY_PRUNED = Counter("spice_registry_pruned_total",
                          "Finished processed-events rows deleted by the registry's retention",
                          ())
REWOUND = Counter("spice_partitions_rewound_total",
                  "Partitions sought back to a head message the worker had lost", ("topic",))
LOOP_LAG = Histogram("spice_event_loop_lag_seconds",
                     "How much later than asked the worker's event loop woke a timer, in seconds: "
                     "the stall its agents, producer and API all share (spice/agents/loop_lag.py)", (),
                     buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5))
UNREADABLE = Counter("spice_event_store_unreadable_total",
                     "Lines of stored batches that do not decode as an envelope (skipped, logged)",
                     ())
LOOP_ERRORS = Counter("spice_background_errors_total",
                      "Exceptions a background loop (publisher, sweeper, watchdog, expiry) "
                      "caught, logged and went on after", ("loop",))


# -- structured logs ---------------------------------------------------------
command_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("command_id", default=None)
event_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("event_id", default=None)


@contextmanager
def log_context(command_id: str | None = None, event_id: str | None = None) -> Iterator[None]:
    """Every log line inside carries these ids (JSON logs put them in fields)."""
    tokens = [command_id_var.set(command_id), event_id_var.set(event_id)]
    try:
        yield
    finally:
        event_id_var.reset(tokens[1])
        command_id_var.reset(tokens[0])


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(), "logger": record.name, "message": record.getMessage()}
        for key, var in (("command_id", command_id_var), ("event_id", event_id_var)):
            value = getattr(record, key, None) or var.get()
            if value:
                body[key] = value
        traceparent = tracing.current.get()
        if traceparent:
            _, body["trace_id"], body["span_id"], _ = traceparent.split("-")
        if record.exc_info:
            body["exception"] = self.formatException(record.exc_info)
        return json.dumps(body, ensure_ascii=False)
