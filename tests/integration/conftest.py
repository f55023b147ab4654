import pytest

from spice.devstack import stack
from spice.runtime import Runtime


@pytest.fixture(scope="session")
def local_stack(settings):
    # Idempotent: a no-op when the README's test command already brought it up.
    stack.up(settings)
    return settings


@pytest.fixture(scope="session")
async def runtime(local_stack):
    rt = await Runtime.open(local_stack)
    yield rt
    await rt.close()
