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
    group.addoption("--essc-hang-batch", type=int, default=None, metavar="N",
                    help="hang checks that wait on their plugins' budgets at once (default "
                         f"{HANG_BATCH} with the in-process mock, {HANG_BATCH_EXTERNAL} with --essc-mock-url: "
                         "the mock needs more threads than that)")


def pytest_configure(config: pytest.Config) -> None:
    # the hang checks run in one pytest-xdist group (--dist loadgroup): one worker takes them all and
    # waits on them together (essc.conformance.hangs); registered here too for runs without xdist
    config.addinivalue_line("markers", "xdist_group(name): pytest-xdist runs a group's tests in one worker")


#: hang checks waiting at once (essc.conformance.hangs); the in-process mock gets HANG_BATCH + 16 threads,
#: ``essc mock`` serves 48 by default
HANG_BATCH, HANG_BATCH_EXTERNAL = 64, 32
_CURRENT_KEY = pytest.StashKey["pytest.Item"]()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    item.config.stash[_CURRENT_KEY] = item


def _hang_check(item: pytest.Item) -> bool:
    from .hangs import CHECK, KIND

    callspec = getattr(item, "callspec", None)
    return (getattr(item, "originalname", None) == CHECK and callspec is not None
            and callspec.params.get("kind") == KIND and "essc_city" in callspec.params)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list) -> None:
    for item in items:
        if _hang_check(item):
            item.add_marker(pytest.mark.xdist_group("essc-hang"))


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
    skipped, notes = {}, []
    for info in reg.cities():
        manifest = reg.plugin(info.plugin).manifest
        dialect = manifest["dialect"]
        if info.code in known:
            if known[info.code].get("dialect") != dialect:
                notes.append(f"the mock plays city {info.code} in dialect {known[info.code].get('dialect')} but "
                             f"plugin {info.plugin!r} declares {dialect}: expect contract failures")
            continue
        city = _mock_city(info, manifest)
        refusal = _add_mock_city(admin.session, url, city)
        if refusal is None:
            continue
        skipped[info.code] = (f"the mock city systems cannot play city {info.code} {info.name} of plugin "
                              f"{info.plugin!r} (dialect {dialect}): POST /__admin/cities answered {refusal}")
        notes.append(skipped[info.code] + "; its checks that need the mock are skipped")
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

    server = start_in_thread(create_app({"CLOCK_MODE": "frozen"}), threads=_hang_batch(request.config) + 16)
    try:
        _teach_mock(request.config, server.url)
        yield server.url
    finally:
        server.stop()


def _suite_admin(url: str):
    """An admin client whose reset keeps the cities the mock plays now: the suite taught them once
    per session (:func:`_teach_mock`), and a city added by hand to a running mock before the suite
    ran stays too (``keep_cities``: the mock's own reset would go back to its initial cities)."""
    from essc.mockserver.client import MockAdmin

    class SuiteMockAdmin(MockAdmin):
        def reset(self, seed: int | None = None, *, keep_cities: bool = True) -> None:
            super().reset(seed, keep_cities=keep_cities)

        def reset_frozen(self) -> None:
            """Reset, then freeze the clock unless the reset left it frozen (an in-process mock)."""
            answer = self._call("POST", "reset", json={"keep_cities": True})
            if (answer.get("clock") or {}).get("mode") != "frozen":
                self.freeze()

    return SuiteMockAdmin(url)


@pytest.fixture(scope="session")
def essc_mock_admin(essc_mock_url: str):
    """The session's admin client of the mock (one keep-alive connection); reset at the end."""
    admin = _suite_admin(essc_mock_url)
    yield admin
    admin.reset()
    admin.session.close()


@pytest.fixture
def essc_mock(request: pytest.FixtureRequest, essc_mock_admin):
    """Admin client of the mock, reset to its initial state (plus the cities the suite added) with a
    frozen clock. A check of a city the mock cannot play is skipped with the reason (and the run
    fails, naming it: :mod:`essc.conformance.selection`)."""
    callspec = getattr(request.node, "callspec", None)
    city = callspec.params.get("essc_city") if callspec is not None else None
    why = request.config.stash.get(_MOCK_SKIPPED_KEY, {}).get(city)
    if why:
        pytest.skip(why)
    essc_mock_admin.reset_frozen()  # the next check resets it again, and the session's end
    return essc_mock_admin


@pytest.fixture(scope="session")
def essc_registry(essc_mock_url: str):
    """A registry whose plugins talk to the mock (endpoint overrides are ignored)."""
    from essc.core.registry import Registry
    from essc.core.settings import Settings

    # breaker_failures=0: the suite injects upstream faults on purpose, one after another; a circuit
    # breaker (core/resilience.py) would answer circuit_open for the plugin under test.
    # retry_backoff_s=0: the fault checks prove that a failed idempotent call is tried again and what
    # it ends in; the pause between the tries is the framework's (tests/core/test_http.py), and
    # waiting it out cost 2 x ~50 ms per city (~40 s over 400 cities)
    settings = Settings.from_env(base_url=essc_mock_url, breaker_failures=0, retry_backoff_s=0.0)
    settings.endpoints = {}
    return Registry(settings).setup()


@pytest.fixture
def essc_city_info(essc_city: str, essc_registry):
    return essc_registry.city(essc_city)


def _hang_batch(config: pytest.Config) -> int:
    given = config.getoption("essc_hang_batch")
    if given is not None:
        return max(1, given)
    return HANG_BATCH_EXTERNAL if config.getoption("essc_mock_url") else HANG_BATCH


@pytest.fixture(scope="session")
def essc_hang_probes(request: pytest.FixtureRequest, essc_registry, essc_mock_admin):
    """The hang probes of this process (:mod:`essc.conformance.hangs`): the hang checks of the cities
    this process runs next wait on their plugins' budgets together, each timed on its own."""
    from .hangs import HangProbes, hang_fault
    from .tiers import exemption

    config, session = request.config, request.session
    unplayable = config.stash.get(_MOCK_SKIPPED_KEY, {})

    def probed(item: pytest.Item) -> str | None:
        """The city whose hang check ``item`` is, if that check will take a probe."""
        if not _hang_check(item):
            return None
        city = str(item.callspec.params["essc_city"])
        try:
            info = essc_registry.city(city)
            manifest = essc_registry.plugin(info.plugin).manifest
        except Exception:  # the check itself reports it
            return None
        if not info.opened or city in unplayable or exemption(manifest, "test_upstream_fault"):
            return None
        return city

    def upcoming() -> list[str]:
        items = session.items
        current = config.stash.get(_CURRENT_KEY, None)
        start = next((i + 1 for i, item in enumerate(items) if item is current), 0)
        return [city for city in map(probed, items[start:]) if city is not None]

    def prepare(city: str) -> dict:
        total_s = essc_registry.plugin(essc_registry.city(city).plugin).manifest["timeouts"]["total_s"]
        essc_mock_admin.set_city(city, mode="supported")
        citizen = essc_mock_admin.citizen(city, "normal")
        essc_mock_admin.fault(**hang_fault(city, total_s))
        return {"aac002": citizen["id_number"], "aac003": citizen["name"], "aab301": city}

    return HangProbes(upcoming=upcoming, prepare=prepare, release=essc_mock_admin.reset,
                      call=lambda city, query: essc_registry.call(city, "read_card", query),
                      batch=_hang_batch(config))
