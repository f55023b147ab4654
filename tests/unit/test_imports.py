"""Any module of the package can be imported first, in a fresh interpreter, and
importing it changes nothing in the process (issue #31): no import cycle through
spice.app, no patches, loop policy, collector thresholds, priority or directories
until spice.bootstrap.configure_process runs."""
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MODULES = sorted(
    ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
    for path in (ROOT / "spice").rglob("*.py"))

PROBE = """
import asyncio, gc, json, os, sys
from faust.transport.consumer import Consumer
def state():
    return {"gc": list(gc.get_threshold()), "nice": os.nice(0),
            "policy": type(asyncio.get_event_loop_policy()).__module__,
            "new_offset": Consumer._new_offset.__module__}
before = state()
import importlib
importlib.import_module(sys.argv[1])
print(json.dumps({"before": before, "after": state()}))
"""


def probe(module: str) -> tuple[str, str, dict | None]:
    done = subprocess.run([sys.executable, "-c", PROBE, module], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)
    if done.returncode != 0:
        return module, done.stderr.strip().splitlines()[-1], None
    return module, "", json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def probes() -> list[tuple[str, str, dict | None]]:
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(probe, MODULES))


def test_every_module_can_be_imported_first(probes):
    assert len(probes) > 80
    assert [(module, error) for module, error, _ in probes if error] == []


def test_importing_a_module_changes_nothing_in_the_process(probes):
    changed = [(module, result) for module, _, result in probes
               if result is not None and result["before"] != result["after"]]
    assert changed == []


def test_bootstrap_is_what_changes_the_process():
    script = PROBE.replace("importlib.import_module(sys.argv[1])",
                           "from spice.bootstrap import configure_process\n"
                           "from spice.settings import Settings\n"
                           "configure_process(Settings(worker_nice=2))")
    done = subprocess.run([sys.executable, "-c", script, "-"], capture_output=True, text=True,
                          timeout=120, cwd=ROOT, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    after, before = result["after"], result["before"]
    assert after["gc"] == [10000, 50, 100] and after["nice"] == min(19, before["nice"] + 2)
    assert after["policy"].startswith("uvloop") and after["new_offset"] == "spice.faust_fixes"
