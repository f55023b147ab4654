"""Counters are exact however large they grow (the text format of floats is Go's %g
with full precision, not six digits), and label values are escaped."""
from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from spice import observability

pytestmark = pytest.mark.unit


def value(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    raise AssertionError(f"{name} {labels} not exported")


def test_two_million_requests_are_counted_exactly(monkeypatch):
    registry = CollectorRegistry()
    monkeypatch.setattr(observability, "REGISTRY", registry)
    counter = observability.Counter("test_requests_total", "Requests", ("route",))
    for _ in range(2_000_000):
        counter.inc("/api/v1/x")
    text = generate_latest(registry).decode()
    assert value(text, "test_requests_total", route="/api/v1/x") == 2_000_000
    counter.inc("/api/v1/x")  # +1 past two million still moves the line
    assert value(generate_latest(registry).decode(), "test_requests_total", route="/api/v1/x") == 2_000_001
    assert counter.get("/api/v1/x") == 2_000_001


def test_label_values_are_escaped(monkeypatch):
    registry = CollectorRegistry()
    monkeypatch.setattr(observability, "REGISTRY", registry)
    counter = observability.Counter("test_odd_total", "Odd labels", ("route",))
    counter.inc('a"b\\c\nd')
    text = generate_latest(registry).decode()
    assert 'route="a\\"b\\\\c\\nd"' in text
    assert value(text, "test_odd_total", route='a"b\\c\nd') == 1



def test_histograms_count_into_cumulative_buckets(monkeypatch):
    registry = CollectorRegistry()
    monkeypatch.setattr(observability, "REGISTRY", registry)
    histogram = observability.Histogram("test_h_seconds", "A latency", ("route",), buckets=(0.1, 1.0))
    for seconds in (0.05, 0.5, 5.0):
        histogram.observe(seconds, "/a")
    text = generate_latest(registry).decode()
    assert value(text, "test_h_seconds_bucket", route="/a", le="0.1") == 1
    assert value(text, "test_h_seconds_bucket", route="/a", le="1.0") == 2
    assert value(text, "test_h_seconds_bucket", route="/a", le="+Inf") == 3
    assert value(text, "test_h_seconds_count", route="/a") == 3
