"""Fixtures shared by the service, browser and fuzz tests: the mock of the city systems
in-process (waitress in a thread, frozen clock), its admin client reset around each test, a
registry of the installed plugins pointed at it, and the service's Runtime over them configured
by the folder's ``service_config`` fixture. A folder's conftest.py may override them."""
import pytest

from essc.core.registry import Registry
from essc.core.settings import Settings
from essc.mockserver.client import MockAdmin


@pytest.fixture(scope="session")
def mock_server():
    from essc.mockserver import create_app
    from essc.mockserver.serve import start_in_thread

    server = start_in_thread(create_app({"CLOCK_MODE": "frozen"}))
    yield server
    server.stop()


@pytest.fixture
def mock(mock_server):
    """The mock's admin client, the mock reset and its clock frozen before the test and reset after."""
    admin = MockAdmin(mock_server.url)
    admin.reset()
    admin.freeze()
    yield admin
    admin.reset()


@pytest.fixture(scope="session")
def registry(mock_server):
    return Registry(Settings(base_url=mock_server.url)).setup()


@pytest.fixture
def runtime(service_config, registry, mock):
    """The service (SQLite store and queue in the test's folder: ``service_config``) without workers."""
    from essc.service.runtime import Runtime

    rt = Runtime(service_config, registry=registry)
    yield rt
    rt.stop_workers()
    rt.store.engine.dispose()
