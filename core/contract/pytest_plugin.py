"""pytest plugin of the contract suite (entry point ``pytest11: essc``).

Options: ``--essc-city CODE`` / ``--essc-plugin NAME`` select cities (default: every city
the registry discovers), ``--essc-mock-url URL`` uses a running mock instead of starting
one in-process. Fixtures: ``essc_mock_url``, ``essc_mock`` (admin client, reset and frozen
clock for every test), ``essc_registry``, ``essc_city`` (parametrized) and ``essc_city_info``.
"""
from __future__ import annotations

import pytest

_REGISTRY_KEY = pytest.StashKey["object"]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("essc", "e-SSC contract suite")
    group.addoption("--essc-city", action="append", default=[], metavar="CODE",
                    help="run the contract suite for this city only (repeatable)")
    group.addoption("--essc-plugin", action="append", default=[], metavar="NAME",
                    help="run the contract suite for this plugin's cities only (repeatable)")
    group.addoption("--essc-mock-url", default=None, metavar="URL",
                    help="use a running mock city system instead of an in-process one")


def _manifest_registry(config: pytest.Config):
    """A registry that has read manifests only (cheap; used for parametrization)."""
    reg = config.stash.get(_REGISTRY_KEY, None)
    if reg is None:
        from essc.core.registry import Registry

        reg = Registry()
        reg.setup()
        config.stash[_REGISTRY_KEY] = reg
    return reg


def selected_cities(config: pytest.Config) -> list:
    reg = _manifest_registry(config)
    cities = reg.cities()
    wanted, plugins = config.getoption("essc_city"), config.getoption("essc_plugin")
    known = {c.code for c in cities}
    unknown = [c for c in wanted if c not in known]
    if unknown:
        raise pytest.UsageError(f"--essc-city {', '.join(unknown)}: no loaded plugin serves it "
                                f"(known: {', '.join(sorted(known))})")
    if wanted:
        cities = [c for c in cities if c.code in wanted]
    if plugins:
        cities = [c for c in cities if c.plugin in plugins]
    return cities


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "essc_city" in metafunc.fixturenames:
        cities = selected_cities(metafunc.config)
        metafunc.parametrize("essc_city", [c.code for c in cities], ids=[f"{c.code}-{c.plugin}" for c in cities])


@pytest.fixture(scope="session")
def essc_mock_url(request: pytest.FixtureRequest):
    """URL of the mock city systems: ``--essc-mock-url`` or one started in-process."""
    url = request.config.getoption("essc_mock_url")
    if url:
        yield url.rstrip("/")
        return
    from essc.mockserver import create_app
    from essc.mockserver.serve import start_in_thread

    server = start_in_thread(create_app({"CLOCK_MODE": "frozen"}))
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def essc_mock(essc_mock_url: str):
    """Admin client of the mock, reset to its initial state with a frozen clock."""
    from .mock_client import MockAdmin

    admin = MockAdmin(essc_mock_url)
    admin.reset()
    admin.freeze()
    yield admin
    admin.reset()


@pytest.fixture(scope="session")
def essc_registry(essc_mock_url: str):
    """A registry whose plugins talk to the mock (endpoint overrides are ignored)."""
    from essc.core.registry import Registry
    from essc.core.settings import Settings

    settings = Settings.from_env(base_url=essc_mock_url)
    settings.endpoints = {}
    return Registry(settings).setup()


@pytest.fixture
def essc_city_info(essc_city: str, essc_registry):
    return essc_registry.city(essc_city)
