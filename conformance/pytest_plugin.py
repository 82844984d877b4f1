"""pytest plugin of the contract suite (entry point ``pytest11: essc``).

Options: ``--essc-city CODE`` / ``--essc-plugin NAME`` select cities (default: every city
the registry discovers), ``--essc-mock-url URL`` uses a running mock instead of starting
one in-process. Fixtures: ``essc_mock_url``, ``essc_mock`` (admin client, reset and frozen
clock for every test), ``essc_registry``, ``essc_city`` (parametrized) and ``essc_city_info``.

The suite never passes on nothing, and applies exemptions before any fixture:
:mod:`essc.conformance.selection` (loaded with this plugin).
"""
from __future__ import annotations

import warnings

import pytest

pytest_plugins = ["essc.conformance.selection"]

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
    """The registry's cities the options select. Names that select nothing are reported before any
    check runs (:func:`essc.conformance.selection.selection_problems`)."""
    reg = _manifest_registry(config)
    cities = reg.cities()
    wanted, plugins = config.getoption("essc_city"), config.getoption("essc_plugin")
    if wanted:
        cities = [c for c in cities if c.code in wanted]
    if plugins:
        cities = [c for c in cities if c.plugin in plugins]
    return cities


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "essc_city" in metafunc.fixturenames:
        cities = selected_cities(metafunc.config)
        metafunc.parametrize("essc_city", [c.code for c in cities], ids=[f"{c.code}-{c.plugin}" for c in cities])


class EsscMockWarning(UserWarning):
    """The mock city systems cannot play a city of the registry (the suite skips that city's checks)."""


#: cities of the registry the mock plays: those the suite taught it (POST /__admin/cities) and those it
#: knew - which may be gone after a reset, when someone else had added them through the admin API
_MOCK_CITIES_KEY = pytest.StashKey["list"]()
_MOCK_SKIPPED_KEY = pytest.StashKey["dict"]()  # city code -> why the mock cannot play it


def _mock_city(info, manifest: dict) -> dict:
    """The mock's view of a registry city (docs/mock.md, ``POST /__admin/cities``)."""
    return {"code": info.code, "name": info.name, "province": info.province, "dialect": manifest["dialect"],
            "mode": "supported" if info.opened else "not_opened"}


def _add_mock_city(session, url: str, city: dict) -> str | None:
    """Add ``city`` to the mock; ``None`` when it plays the city now, else the mock's refusal."""
    resp = session.post(f"{url}/__admin/cities", json=city, timeout=10)
    if resp.status_code in (201, 409):  # 409: it knows the city already
        return None
    try:
        reason = resp.json().get("error")
    except (ValueError, AttributeError):
        reason = None
    return f"HTTP {resp.status_code}: {reason or resp.text[:200]}"


def _teach_mock(config: pytest.Config, url: str) -> None:
    """Add every city of the registry that the mock does not know, with its plugin manifest's dialect,
    name, province and mode; warn about (and later skip) the cities the mock cannot play."""
    from essc.mockserver.client import MockAdmin

    admin = MockAdmin(url)
    try:
        known = {c["code"]: c for c in admin.cities()}
    except Exception as err:  # connection refused, not a mock, ...
        raise pytest.UsageError(f"the mock city systems at {url} do not answer GET /__admin/cities "
                                f"({type(err).__name__}: {err})\nhint: start one with `essc mock` or drop "
                                "--essc-mock-url to start one in-process") from None
    reg = _manifest_registry(config)
    added, skipped, notes = [], {}, []
    for info in reg.cities():
        manifest = reg.plugin(info.plugin).manifest
        dialect = manifest["dialect"]
        if info.code in known:
            if known[info.code].get("dialect") != dialect:
                notes.append(f"the mock plays city {info.code} in dialect {known[info.code].get('dialect')} but "
                             f"plugin {info.plugin!r} declares {dialect}: expect contract failures")
            added.append({k: known[info.code][k] for k in ("code", "name", "province", "dialect", "mode")
                          if k in known[info.code]})
            continue
        city = _mock_city(info, manifest)
        refusal = _add_mock_city(admin.session, url, city)
        if refusal is None:
            added.append(city)
            continue
        skipped[info.code] = (f"the mock city systems cannot play city {info.code} {info.name} of plugin "
                              f"{info.plugin!r} (dialect {dialect}): POST /__admin/cities answered {refusal}")
        notes.append(skipped[info.code] + "; its checks that need the mock are skipped")
    config.stash[_MOCK_CITIES_KEY] = added
    config.stash[_MOCK_SKIPPED_KEY] = skipped
    # A warning, not an error, even under ``-W error``: one city the mock cannot play must not fail
    # the session fixture (and with it every other city's checks).
    with warnings.catch_warnings():
        warnings.simplefilter("always", EsscMockWarning)
        for note in notes:
            warnings.warn(EsscMockWarning(note), stacklevel=2)


@pytest.fixture(scope="session")
def essc_mock_url(request: pytest.FixtureRequest):
    """URL of the mock city systems: ``--essc-mock-url`` or one started in-process. Either way the
    mock is taught every city of the registry it does not know (``POST /__admin/cities``)."""
    url = request.config.getoption("essc_mock_url")
    if url:
        url = url.rstrip("/")
        _teach_mock(request.config, url)
        yield url
        return
    from essc.mockserver import create_app
    from essc.mockserver.serve import start_in_thread

    server = start_in_thread(create_app({"CLOCK_MODE": "frozen"}))
    try:
        _teach_mock(request.config, server.url)
        yield server.url
    finally:
        server.stop()


def _suite_admin(config: pytest.Config, url: str):
    """An admin client whose reset keeps the cities of the registry the mock plays: the mock's own
    reset goes back to its initial cities (docs/mock.md), so those it lost are added again right
    after it (a city added by hand to a running mock, before the suite ran, included)."""
    from essc.mockserver.client import MockAdmin

    extra = list(config.stash.get(_MOCK_CITIES_KEY, []))

    class SuiteMockAdmin(MockAdmin):
        def reset(self, seed: int | None = None) -> None:
            super().reset(seed)
            present = {c["code"] for c in self.cities()} if extra else set()
            for city in extra:
                if city["code"] in present:
                    continue
                refusal = _add_mock_city(self.session, self.url, city)
                if refusal is not None:
                    raise RuntimeError(f"mock admin POST cities {city['code']} after reset -> {refusal}")

    return SuiteMockAdmin(url)


@pytest.fixture
def essc_mock(request: pytest.FixtureRequest, essc_mock_url: str):
    """Admin client of the mock, reset to its initial state (plus the cities the suite added) with a
    frozen clock. A check of a city the mock cannot play is skipped with the reason (and the run
    fails, naming it: :mod:`essc.conformance.selection`)."""
    callspec = getattr(request.node, "callspec", None)
    city = callspec.params.get("essc_city") if callspec is not None else None
    why = request.config.stash.get(_MOCK_SKIPPED_KEY, {}).get(city)
    if why:
        pytest.skip(why)
    admin = _suite_admin(request.config, essc_mock_url)
    admin.reset()
    admin.freeze()
    yield admin
    admin.reset()


@pytest.fixture(scope="session")
def essc_registry(essc_mock_url: str):
    """A registry whose plugins talk to the mock (endpoint overrides are ignored)."""
    from essc.core.registry import Registry
    from essc.core.settings import Settings

    # breaker_failures=0: the suite injects upstream faults on purpose, one after another; a circuit
    # breaker (core/resilience.py) would answer circuit_open for the plugin under test
    settings = Settings.from_env(base_url=essc_mock_url, breaker_failures=0)
    settings.endpoints = {}
    return Registry(settings).setup()


@pytest.fixture
def essc_city_info(essc_city: str, essc_registry):
    return essc_registry.city(essc_city)
