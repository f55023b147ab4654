from pathlib import Path

import pytest

from spice.devstack import stack
from spice.runtime import Runtime
from tests.conftest import TEST_ADMIN_KEY


@pytest.fixture(scope="session")
def local_stack(settings):
    # Idempotent: a no-op when the README's test command already brought it up.
    stack.up(settings)
    return settings


@pytest.fixture(scope="session")
def elasticsearch_stack(local_stack):
    """The stack's Elasticsearch node, started if it is not running (idempotent): the
    adapter's tests always run against the real server, never skip."""
    stack.up(local_stack, extras=["elasticsearch"])
    return local_stack


@pytest.fixture(scope="session")
def terminusdb_stack(local_stack):
    """The stack's TerminusDB server (built once from the vendored source, cached)."""
    stack.up(local_stack, extras=["terminusdb"])
    return local_stack


@pytest.fixture(scope="session")
async def runtime(local_stack):
    rt = await Runtime.open(local_stack)
    yield rt
    await rt.close()


@pytest.fixture(scope="session")
async def scratch(local_stack):
    """A runtime on a bucket of its own: what store-level tests write there never
    reaches the worker's publisher (which tails the service's bucket)."""
    rt = await Runtime.open(local_stack.model_copy(update={"event_store_bucket": "spice-scratch"}))
    yield rt
    await rt.close()


@pytest.fixture(scope="session")
def worker(local_stack, tmp_path_factory):
    from tests.integration.worker import WorkerProcess

    log_dir = Path("test-artifacts")
    log_dir.mkdir(exist_ok=True)
    process = WorkerProcess(16166, log_dir / "worker.log").start()
    yield process
    process.stop()


@pytest.fixture
async def http():
    """A client with the admin key; tests of authentication itself use `anonymous_http`."""
    import aiohttp

    async with aiohttp.ClientSession(headers={"X-API-Key": TEST_ADMIN_KEY}) as session:
        yield session


@pytest.fixture
async def anonymous_http():
    import aiohttp

    async with aiohttp.ClientSession() as session:
        yield session
