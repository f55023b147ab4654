"""What each role registers on the Faust app, and the worker's CPU priority: checked in
fresh interpreters, prepared as `faust -A spice.app worker` prepares its app (the process
set-up, then the role's modules)."""
import json
import os
import subprocess
import sys

import pytest

PROBE = """
import json, os
from faust.cli.base import prepare_app
from spice.app import app
prepare_app(app, "spice.app")
print(json.dumps({
    "id": app.conf.id,
    "agents": sorted(app.agents),
    "tables": sorted(app.tables),
    "nice": os.getpriority(os.PRIO_PROCESS, 0),
}))
"""


def probe(**env: str) -> dict:
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60,
                            env={**os.environ, **env})
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def niceness_now() -> int:
    return os.getpriority(os.PRIO_PROCESS, 0)


def test_a_worker_has_the_agents_and_tables(niceness_now):
    worker = probe(SPICE_ROLE="worker", WORKER_NICE="3")
    assert worker["id"] == "spice"
    assert "spice.agents.instance_commands" in worker["agents"]
    assert "spice.agents.command_status" in worker["agents"]
    assert "command-status" in worker["tables"]
    assert worker["nice"] == min(19, niceness_now + 3)


def test_an_api_process_has_neither_and_its_own_group(niceness_now):
    api = probe(SPICE_ROLE="api", WORKER_NICE="3")
    assert api["id"] == "spice-api"  # a group of its own: it takes no worker's partitions
    assert api["agents"] == [] and api["tables"] == []
    assert api["nice"] == niceness_now  # WORKER_NICE is a worker's setting only


def test_an_unknown_role_is_refused_by_name():
    result = subprocess.run([sys.executable, "-c", "import spice.app"], capture_output=True, text=True,
                            timeout=60, env={**os.environ, "SPICE_ROLE": "both"})
    assert result.returncode == 2 and "SPICE_ROLE: Input should be 'worker' or 'api'" in result.stderr
    assert "Traceback" not in result.stderr  # one line per bad variable, not a stack
