# The real stack and the shared worker, as in the integration tests.
from tests.integration.conftest import (  # noqa: F401
    anonymous_http,
    http,
    local_stack,
    runtime,
    worker,
)
