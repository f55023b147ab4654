"""The monitoring under docker/ names only series a worker exports, and the exposition
parses with prometheus_client's own parser."""
from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.integration
MONITORING = Path(__file__).resolve().parents[2] / "docker" / "monitoring"


def named_series() -> set[str]:
    rules = yaml.safe_load((MONITORING / "alerts.yml").read_text())
    expressions = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    dashboard = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    expressions += [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    return {name for expr in expressions for name in re.findall(r"\bspice_[a-z_]+\b", expr)}


def exported(text: str) -> set[str]:
    names = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
        if family.type == "counter":
            names.add(family.name + "_total")
        if family.type == "histogram":
            names.update(family.name + suffix for suffix in ("_bucket", "_sum", "_count"))
    return names


async def test_every_series_a_rule_or_panel_names_is_exported(worker, http):
    text = ""
    for _ in range(50):  # the leader's cluster snapshot is refreshed after a first scrape
        async with http.get(f"{worker.url}/metrics") as r:
            assert r.status == 200
            text = await r.text()
        if "spice_cluster_metrics_age_seconds" in text:
            break
        await asyncio.sleep(0.2)
    names = named_series()
    assert len(names) >= 15
    missing = names - exported(text)
    assert not missing, f"named in docker/monitoring but not exported: {sorted(missing)}"
