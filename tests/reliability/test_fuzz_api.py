"""Scenario 5: HTTP fuzzing from the API's own OpenAPI document (schemathesis):
no 500s, no crash, and afterwards the read model still equals the graph store."""
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from spice.handlers import rebuild
from spice.web.routes import openapi
from tests.conftest import TEST_ADMIN_KEY

schema = schemathesis.openapi.from_dict(openapi())


@schema.parametrize()
@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors(case, worker):
    case.call_and_validate(base_url=worker.url, headers={"X-API-Key": TEST_ADMIN_KEY},
                           checks=[not_a_server_error], timeout=60)


async def test_still_healthy_and_consistent_after_fuzzing(worker, runtime, http):
    async with http.get(f"{worker.url}/health") as response:
        assert response.status == 200
    report = await rebuild.verify(runtime)
    assert report["drift_count"] == 0, report["drift"][:5]
