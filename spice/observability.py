"""In-process counters and histograms for /metrics, JSON logs, and the log context.

Hand-written rather than prometheus_client: a dozen series, no global registry
to reset between tests, and the text format is four lines of code.
"""
from __future__ import annotations

import bisect
import contextvars
import json
import logging
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def _labels(labels: dict[str, Any]) -> str:
    if not labels:
        return ""
    escaped = (str(v).replace("\\", "\\\\").replace('"', '\\"') for v in labels.values())
    return "{" + ",".join(f'{k}="{v}"' for k, v in zip(labels, escaped, strict=True)) + "}"


class Counter:
    def __init__(self, name: str, help_text: str, labels: tuple[str, ...]) -> None:
        self.name, self.help, self.label_names = name, help_text, labels
        self.values: dict[tuple[Any, ...], float] = defaultdict(float)

    def inc(self, *labels: Any, amount: float = 1.0) -> None:
        self.values[labels] += amount

    def get(self, *labels: Any) -> float:
        return self.values.get(labels, 0.0)

    def render(self) -> list[str]:
        out = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} counter"]
        for key, value in sorted(self.values.items()):
            out.append(f"{self.name}{_labels(dict(zip(self.label_names, key, strict=True)))} {value:g}")
        return out


class Histogram:
    def __init__(self, name: str, help_text: str, labels: tuple[str, ...],
                 buckets: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self.name, self.help, self.label_names, self.buckets = name, help_text, labels, buckets
        self.counts: dict[tuple[Any, ...], list[int]] = {}
        self.sums: dict[tuple[Any, ...], float] = defaultdict(float)

    def observe(self, value: float, *labels: Any) -> None:
        counts = self.counts.setdefault(labels, [0] * (len(self.buckets) + 1))
        counts[bisect.bisect_left(self.buckets, value)] += 1
        self.sums[labels] += value

    def render(self) -> list[str]:
        out = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} histogram"]
        for key, counts in sorted(self.counts.items()):
            labels = dict(zip(self.label_names, key, strict=True))
            running = 0
            for bound, count in zip([*self.buckets, float("inf")], counts, strict=True):
                running += count
                le = "+Inf" if bound == float("inf") else f"{bound:g}"
                out.append(f"{self.name}_bucket{_labels({**labels, 'le': le})} {running}")
            out.append(f"{self.name}_sum{_labels(labels)} {self.sums[key]:.6f}")
            out.append(f"{self.name}_count{_labels(labels)} {running}")
        return out


HTTP_REQUESTS = Counter("spice_http_requests_total", "HTTP requests by route, method and status",
                        ("route", "method", "code"))
HTTP_LATENCY = Histogram("spice_http_request_seconds", "HTTP request latency", ("route", "method"))
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
REWOUND = Counter("spice_partitions_rewound_total",
                  "Partitions sought back to a head message the worker had lost", ("topic",))
LOOP_LAG = Histogram("spice_event_loop_lag_seconds",
                     "How much later than asked the worker's event loop woke a timer: the stall "
                     "its agents, producer and API all share (spice/agents/loop_lag.py)", (),
                     buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5))
UNREADABLE = Counter("spice_event_store_unreadable_total",
                     "Lines of stored batches that do not decode as an envelope (skipped, logged)",
                     ())
LOOP_ERRORS = Counter("spice_background_errors_total",
                      "Exceptions a background loop (publisher, sweeper, watchdog, expiry) "
                      "caught, logged and went on after", ("loop",))
ALL = (UNREADABLE, LOOP_ERRORS, RESENT, REWOUND, LOOP_LAG, HTTP_REQUESTS, HTTP_LATENCY,
       COMMANDS, CLAIMS, PROJECTED, RATE_LIMITED, AUTH_FAILURES)


def render_all() -> list[str]:
    return [line for metric in ALL for line in metric.render()]


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
        if record.exc_info:
            body["exception"] = self.formatException(record.exc_info)
        return json.dumps(body, ensure_ascii=False)


def use_json_logs() -> None:
    """Replace the root handlers' formatters (Faust installs its own at start-up)."""
    formatter = JsonFormatter()
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.StreamHandler())
    for handler in root.handlers:
        handler.setFormatter(formatter)
