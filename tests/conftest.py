import os

import pytest

from spice.settings import Settings


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
