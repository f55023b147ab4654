"""Scenario 5: HTTP fuzzing from the API's own OpenAPI document (schemathesis):
no 500s, no crash, every status code and content type an operation answers is one its
document declares (the per-operation error lists in spice/web/openapi.py are checked
here, against the running service), and afterwards the read model still equals the
graph store."""
import json
import urllib.request

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import content_type_conformance, not_a_server_error, status_code_conformance

from spice.handlers import rebuild
from spice.web.routes import openapi
from tests.conftest import TEST_ADMIN_KEY
from tests.integration.kafka_helpers import wait_for

schema = schemathesis.openapi.from_dict(openapi())


def database_names(url: str) -> set[str]:
    request = urllib.request.Request(f"{url}/api/v1/database/list",
                                     headers={"X-API-Key": TEST_ADMIN_KEY})
    with urllib.request.urlopen(request, timeout=10) as response:
        return {d["name"] for d in json.loads(response.read())["databases"]}


@pytest.fixture(scope="module")
def databases_before(worker) -> set[str]:
    """The fuzzing's own databases are the ones checked afterwards."""
    return database_names(worker.url)


@schema.parametrize()
@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors(case, worker, databases_before):
    case.call_and_validate(base_url=worker.url, headers={"X-API-Key": TEST_ADMIN_KEY},
                           checks=[not_a_server_error, status_code_conformance,
                                   content_type_conformance], timeout=60)


async def test_still_healthy_and_consistent_after_fuzzing(worker, runtime, http, databases_before):
    async with http.get(f"{worker.url}/health") as response:
        assert response.status == 200
    async with http.get(f"{worker.url}/api/v1/database/list") as response:
        created = {d["name"] for d in (await response.json())["databases"]} - databases_before
    for db in sorted(created):  # no partial writes: the read model equals the graph
        report = await wait_for(lambda db=db: no_drift(runtime, db), timeout=30)
        assert report, f"{db} drifts: {(await rebuild.verify(runtime, db))['drift'][:5]}"


async def no_drift(runtime, db):
    return (await rebuild.verify(runtime, db))["drift_count"] == 0
