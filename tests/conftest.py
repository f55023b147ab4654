import os

import pytest

from spice.settings import Settings

# Authentication stays on in the tests, as in every deployment: the workers the
# tests start seed this admin key, and the `http` fixture sends it.
TEST_ADMIN_KEY = "spk_7e5700000ad1_test-admin-key-not-a-secret"
os.environ.setdefault("AUTH_BOOTSTRAP_ADMIN_KEY", TEST_ADMIN_KEY)
# The sweeper re-sends what is still unprocessed after this long; sooner than the
# production default, so the reliability suite's books settle within its waits.
os.environ.setdefault("EVENT_SWEEP_DELAY_SECONDS", "20")
os.environ.setdefault("AUTH_JWT_SECRET", "test-jwt-secret-for-hs256-at-least-32-bytes")


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings()


def pytest_collection_modifyitems(config, items):
    for item in items:
        path = str(item.fspath)
        if "/integration/" in path:
            item.add_marker(pytest.mark.integration)
        elif "/reliability/" in path:
            item.add_marker(pytest.mark.reliability)
        elif "/unit/" in path:
            item.add_marker(pytest.mark.unit)


def requires_env(name: str):
    return pytest.mark.skipif(not os.environ.get(name), reason=f"{name} is not set: "
                              "this adapter's tests run against a real server only")
