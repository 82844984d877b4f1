"""Per-city bulkheads and circuit breakers (core/resilience.py) through Registry.call.

The adapters are in-memory (a plugin whose adapter runs a test's ``hook`` first) and the
breakers' time is an injected clock: nothing here sleeps. Calls that must stay in flight block
on events the test sets; the one test against the real mock (a hanging city) waits only for
the mock to count the hung requests.
"""
from __future__ import annotations

import datetime
import threading
from types import SimpleNamespace

import pytest

from essc.core.errors import (
    UPSTREAM_REASONS,
    CardStatusAbnormal,
    ContractViolation,
    InvalidInput,
    RecordNotSynced,
    UpstreamUnavailable,
)
from essc.core.idnumber import make_id_number
from essc.core.registry import Registry
from essc.core.resilience import BUSY_RETRY_AFTER_S, TRIP_REASONS, Policy, Resilience
from essc.core.schemas import validator
from essc.core.settings import Settings

from .conftest import manifest

SCRIPTED = '''from essc.core import hookimpl
from essc.tooling.bench import SyntheticAdapter


class Scripted(SyntheticAdapter):
    """The synthetic adapter, but read_card first runs ``hook(request)`` when a test sets one;
    a dict it returns is the response."""

    def __init__(self):
        self.hook = None
        self.calls = []

    def read_card(self, request):
        self.calls.append(request["aab301"])
        if self.hook is not None:
            answer = self.hook(request)
            if answer is not None:
                return answer
        return super().read_card(request)


@hookimpl
def essc_register_adapters(register, context):
    for city in context.cities:
        register(city, Scripted())
'''
A, B, C = "700001", "700002", "700003"
WAIT = 10  # seconds: the bound of every wait on an event (never reached when things work)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def request(city: str) -> dict:
    return {"aac002": make_id_number("110101", datetime.date(1990, 3, 7), 17), "aac003": "张三", "aab301": city}


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def make_registry(plugin_folder, clock):
    """``make_registry(concurrency=None, **settings)``: plugin ``a`` serves A and B (its manifest's
    ``concurrency`` when given), plugin ``c`` serves C (the settings' default); all loaded."""

    def make(concurrency: dict | None = None, **settings) -> Registry:
        extra = {"concurrency": concurrency} if concurrency else {}
        plugin_folder.add("a", init=SCRIPTED, cities=(A, B), **extra)
        plugin_folder.add("c", init=SCRIPTED, cities=(C,))
        reg = Registry(Settings(builtin_plugins=False, entry_points=False, plugin_dirs=(plugin_folder.root,),
                                **settings), clock=clock)
        reg.load_all()
        return reg

    return make


def raising(error):
    def hook(_request):
        raise error

    return hook


class Holder:
    """A hook that keeps each call in flight until :meth:`release`; :meth:`wait_entered` returns
    once ``n`` calls are inside the adapter."""

    def __init__(self) -> None:
        self.entered = threading.Semaphore(0)
        self.go = threading.Event()

    def __call__(self, _request):
        self.entered.release()
        assert self.go.wait(WAIT), "never released"

    def wait_entered(self, n: int) -> None:
        for _ in range(n):
            assert self.entered.acquire(timeout=WAIT), "a call did not reach the adapter"

    def release(self) -> None:
        self.go.set()


def in_thread(reg: Registry, city: str, outcomes: list) -> threading.Thread:
    def run() -> None:
        try:
            outcomes.append(reg.call(city, "read_card", request(city)))
        except Exception as err:  # recorded for the test's assertions
            outcomes.append(err)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def refused(reg: Registry, city: str, reason: str) -> UpstreamUnavailable:
    with pytest.raises(UpstreamUnavailable) as info:
        reg.call(city, "read_card", request(city))
    err = info.value
    assert err.reason == reason
    assert validator("error").is_valid(err.to_dict()), err.to_dict()  # a contract error object
    assert err.details["city"] == city and err.details["operation"] == "read_card" and err.retryable
    return err


# -- the bulkhead ------------------------------------------------------------------------------
def test_the_bulkhead_limits_calls_in_flight_per_city_while_other_cities_pass(make_registry):
    reg = make_registry({"max_in_flight": 2}, bulkhead_max_in_flight=3)
    held = Holder()
    reg.adapter(A).hook = held
    outcomes: list = []
    threads = [in_thread(reg, A, outcomes) for _ in range(2)]
    held.wait_entered(2)

    err = refused(reg, A, "bulkhead_full")  # the third call to A: refused at once, A not called
    assert err.retry_after == BUSY_RETRY_AFTER_S and "2 calls already in flight" in str(err)
    assert err.details["plugin"].startswith("p_a_")
    assert reg.adapter(A).calls == [A, A]
    # B (same plugin, its own bulkhead) and C (another plugin) still answer
    assert reg.call(B, "read_card", request(B))["aab301"] == B
    assert reg.call(C, "read_card", request(C))["aab301"] == C

    snap = reg.resilience_snapshot()
    assert snap[A] | {"rejected_by": None} == {"breaker": "closed", "in_flight": 2, "limit": 2, "rejected": 1,
                                                "rejected_by": None, "opened": 0, "failures": 0, "retry_after": 0}
    assert snap[A]["rejected_by"] == {"bulkhead_full": 1, "circuit_open": 0}
    assert (snap[B]["in_flight"], snap[B]["limit"], snap[C]["limit"]) == (0, 2, 3)  # C: the settings' default

    held.release()
    for t in threads:
        t.join(WAIT)
    assert [o["aab301"] for o in outcomes] == [A, A]
    assert reg.resilience_snapshot()[A]["in_flight"] == 0
    assert reg.call(A, "read_card", request(A))["aab301"] == A  # room again


def test_a_refused_call_is_not_a_failure_of_the_city(make_registry):
    reg = make_registry({"max_in_flight": 1}, breaker_failures=1)
    held = Holder()
    reg.adapter(A).hook = held
    outcomes: list = []
    thread = in_thread(reg, A, outcomes)
    held.wait_entered(1)
    for _ in range(3):
        refused(reg, A, "bulkhead_full")
    held.release()
    thread.join(WAIT)
    assert reg.resilience_snapshot()[A]["breaker"] == "closed"


class Signalling(threading.Condition):
    """A guard's condition, telling the test when a call starts waiting on it."""

    def __init__(self) -> None:
        super().__init__(threading.Lock())
        self.waiting = threading.Event()

    def wait(self, timeout=None):
        self.waiting.set()
        return super().wait(timeout)


def test_a_full_bulkhead_lets_a_call_wait_up_to_bulkhead_wait_s(make_registry):
    reg = make_registry({"max_in_flight": 1}, bulkhead_wait_s=WAIT)
    guard = reg.resilience.guard(A)
    guard._cond = Signalling()
    held = Holder()
    reg.adapter(A).hook = held
    outcomes: list = []
    first = in_thread(reg, A, outcomes)
    held.wait_entered(1)
    second = in_thread(reg, A, outcomes)
    assert guard._cond.waiting.wait(WAIT), "the second call did not wait for a slot"
    assert reg.resilience_snapshot()[A]["in_flight"] == 1
    held.release()  # the first call leaves: the waiting one enters
    first.join(WAIT)
    second.join(WAIT)
    assert [o["aab301"] for o in outcomes] == [A, A] and reg.adapter(A).calls == [A, A]


def test_the_wait_for_a_slot_is_bounded(make_registry):
    reg = make_registry({"max_in_flight": 1}, bulkhead_wait_s=0.01)
    held = Holder()
    reg.adapter(A).hook = held
    outcomes: list = []
    thread = in_thread(reg, A, outcomes)
    held.wait_entered(1)
    refused(reg, A, "bulkhead_full")  # waited 10 ms for a slot that never came
    held.release()
    thread.join(WAIT)


# -- the circuit breaker -----------------------------------------------------------------------
def trip(reg: Registry, city: str, times: int, reason: str = "timeout") -> None:
    reg.adapter(city).hook = raising(UpstreamUnavailable("city down", reason=reason))
    for _ in range(times):
        with pytest.raises(UpstreamUnavailable) as info:
            reg.call(city, "read_card", request(city))
        assert info.value.reason == reason


def test_the_breaker_opens_after_k_failures_and_fails_fast_without_calling_the_city(make_registry, clock):
    reg = make_registry(breaker_failures=3, breaker_cooldown_s=10)
    trip(reg, A, 2)
    assert reg.resilience_snapshot()[A] | {"rejected_by": None} == {
        "breaker": "closed", "in_flight": 0, "limit": 32, "rejected": 0, "rejected_by": None, "opened": 0,
        "failures": 2, "retry_after": 0}
    trip(reg, A, 1)
    snap = reg.resilience_snapshot()[A]
    assert (snap["breaker"], snap["opened"], snap["retry_after"]) == ("open", 1, 10)

    called = len(reg.adapter(A).calls)
    err = refused(reg, A, "circuit_open")
    assert err.retry_after == 10 and "circuit breaker open" in str(err)
    clock.advance(4)
    assert refused(reg, A, "circuit_open").retry_after == 6  # seconds until half-open
    assert len(reg.adapter(A).calls) == called  # the city was never touched
    assert reg.resilience_snapshot()[A]["rejected_by"] == {"bulkhead_full": 0, "circuit_open": 2}
    # the other cities, even of the same plugin, are not affected
    assert reg.call(B, "read_card", request(B))["aab301"] == B
    assert reg.resilience_snapshot()[B]["breaker"] == "closed"


def test_half_open_lets_one_probe_through_and_a_success_closes(make_registry, clock):
    reg = make_registry(breaker_failures=2, breaker_cooldown_s=10)
    trip(reg, A, 2)
    clock.advance(10)
    assert reg.resilience_snapshot()[A]["breaker"] == "half_open"  # the cool-down is over

    held = Holder()
    reg.adapter(A).hook = held
    outcomes: list = []
    probe = in_thread(reg, A, outcomes)
    held.wait_entered(1)
    assert reg.resilience_snapshot()[A]["breaker"] == "half_open"
    calls = len(reg.adapter(A).calls)
    err = refused(reg, A, "circuit_open")  # the probe is out: everyone else still fails fast
    assert err.retry_after == BUSY_RETRY_AFTER_S and len(reg.adapter(A).calls) == calls

    held.release()  # the probe succeeds
    probe.join(WAIT)
    assert outcomes[0]["aab301"] == A
    assert reg.resilience_snapshot()[A]["breaker"] == "closed"
    reg.adapter(A).hook = None
    for _ in range(3):
        assert reg.call(A, "read_card", request(A))["aab301"] == A


def test_a_failed_probe_reopens_with_a_growing_capped_cool_down(make_registry, clock):
    reg = make_registry(breaker_failures=2, breaker_cooldown_s=10, breaker_cooldown_max_s=30)
    trip(reg, A, 2)
    for cooldown in (20, 30, 30):  # doubled after each failed probe, up to the cap
        clock.advance(reg.resilience_snapshot()[A]["retry_after"])
        trip(reg, A, 1)  # the probe fails
        snap = reg.resilience_snapshot()[A]
        assert (snap["breaker"], snap["retry_after"]) == ("open", cooldown)
        assert refused(reg, A, "circuit_open").retry_after == cooldown
    assert reg.resilience_snapshot()[A]["opened"] == 4
    clock.advance(30)
    reg.adapter(A).hook = None
    reg.call(A, "read_card", request(A))  # the probe succeeds
    trip(reg, A, 1)
    clock.advance(1)
    # closed again with the base cool-down: one failure does not re-open, a second opens for 10 s
    assert reg.resilience_snapshot()[A]["breaker"] == "closed"
    trip(reg, A, 1)
    assert reg.resilience_snapshot()[A]["retry_after"] == 10


@pytest.mark.parametrize("reason", sorted(TRIP_REASONS))
def test_every_upstream_failure_reason_trips(make_registry, reason):
    reg = make_registry(breaker_failures=2)
    trip(reg, A, 2, reason)
    assert reg.resilience_snapshot()[A]["breaker"] == "open"


@pytest.mark.parametrize("error, expected", [
    (CardStatusAbnormal(status="reported_lost"), CardStatusAbnormal),
    (RecordNotSynced(retry_after=60), RecordNotSynced),
    (InvalidInput("the city refused the name", field="aac003"), InvalidInput),
    (ContractViolation("broken", rule="x"), ContractViolation),
    (ValueError("untyped"), ContractViolation),  # the registry turns it into a contract violation
    (UpstreamUnavailable("garbage", reason="malformed_response"), UpstreamUnavailable),
], ids=lambda v: getattr(v, "__name__", type(v).__name__))
def test_business_errors_and_contract_violations_do_not_trip(make_registry, error, expected):
    reg = make_registry(breaker_failures=2)
    reg.adapter(A).hook = raising(error)
    for _ in range(5):
        with pytest.raises(expected):
            reg.call(A, "read_card", request(A))
    assert reg.resilience_snapshot()[A] | {"rejected_by": None} == {
        "breaker": "closed", "in_flight": 0, "limit": 32, "rejected": 0, "rejected_by": None, "opened": 0,
        "failures": 0, "retry_after": 0}


def test_a_schema_breaking_response_does_not_trip(make_registry):
    reg = make_registry(breaker_failures=1)
    reg.adapter(A).hook = lambda _request: {"bogus": True}
    for _ in range(3):
        with pytest.raises(ContractViolation):
            reg.call(A, "read_card", request(A))
    assert reg.resilience_snapshot()[A]["breaker"] == "closed"


def test_an_answer_resets_the_count_a_contract_violation_does_not(make_registry):
    reg = make_registry(breaker_failures=3)
    trip(reg, A, 2)
    reg.adapter(A).hook = raising(CardStatusAbnormal(status="sealed"))  # the city answered
    with pytest.raises(CardStatusAbnormal):
        reg.call(A, "read_card", request(A))
    assert reg.resilience_snapshot()[A]["failures"] == 0
    trip(reg, A, 2)
    reg.adapter(A).hook = raising(ValueError("plugin bug"))  # neither way
    with pytest.raises(ContractViolation):
        reg.call(A, "read_card", request(A))
    assert reg.resilience_snapshot()[A]["failures"] == 2
    trip(reg, A, 1)
    assert reg.resilience_snapshot()[A]["breaker"] == "open"


def test_failures_count_within_the_window_only(make_registry, clock):
    reg = make_registry(breaker_failures=3, breaker_window_s=60)
    trip(reg, A, 2)
    clock.advance(61)
    trip(reg, A, 1)  # a new streak: 1 failure
    assert reg.resilience_snapshot()[A] | {"rejected_by": None} == {
        "breaker": "closed", "in_flight": 0, "limit": 32, "rejected": 0, "rejected_by": None, "opened": 0,
        "failures": 1, "retry_after": 0}
    trip(reg, A, 2)
    assert reg.resilience_snapshot()[A]["breaker"] == "open"


def test_a_neutral_probe_leaves_the_breaker_half_open(make_registry, clock):
    reg = make_registry(breaker_failures=1, breaker_cooldown_s=5)
    trip(reg, A, 1)
    clock.advance(5)
    reg.adapter(A).hook = raising(ValueError("plugin bug"))
    with pytest.raises(ContractViolation):
        reg.call(A, "read_card", request(A))
    assert reg.resilience_snapshot()[A]["breaker"] == "half_open"
    reg.adapter(A).hook = None
    reg.call(A, "read_card", request(A))  # the next call is the probe
    assert reg.resilience_snapshot()[A]["breaker"] == "closed"


def test_late_outcomes_of_calls_let_in_before_the_breaker_opened_do_not_count(make_registry, clock):
    reg = make_registry(breaker_failures=1, breaker_cooldown_s=5)
    held = Holder()
    reg.adapter(A).hook = held
    outcomes: list = []
    late = in_thread(reg, A, outcomes)
    held.wait_entered(1)
    reg.adapter(A).hook = raising(UpstreamUnavailable("down", reason="http_5xx"))
    with pytest.raises(UpstreamUnavailable):
        reg.call(A, "read_card", request(A))
    assert reg.resilience_snapshot()[A]["breaker"] == "open"
    held.release()  # its success comes while the breaker is open: no probe, it stays open
    late.join(WAIT)
    assert outcomes[0]["aab301"] == A
    assert reg.resilience_snapshot()[A] | {"rejected_by": None} == {
        "breaker": "open", "in_flight": 0, "limit": 32, "rejected": 0, "rejected_by": None, "opened": 1,
        "failures": 0, "retry_after": 5}


def test_breaker_failures_0_disables_the_breaker(make_registry):
    reg = make_registry(breaker_failures=0)
    trip(reg, A, 20)
    assert reg.resilience_snapshot()[A]["breaker"] == "closed"


# -- configuration -----------------------------------------------------------------------------
def test_knobs_from_the_environment_and_the_config_file(tmp_path):
    settings = Settings.from_env(env={"ESSC_BULKHEAD_MAX_IN_FLIGHT": "8", "ESSC_BULKHEAD_WAIT_S": "0.5",
                                      "ESSC_BREAKER_FAILURES": "3", "ESSC_BREAKER_WINDOW_S": "30",
                                      "ESSC_BREAKER_COOLDOWN_S": "2.5", "ESSC_BREAKER_COOLDOWN_MAX_S": "60"})
    assert Policy.from_settings(settings) == Policy(8, 0.5, 3, 30.0, 2.5, 60.0)
    assert Policy.from_settings(Settings.from_env(env={})) == Policy(32, 0.25, 5, 60.0, 10.0, 300.0)
    cfg = tmp_path / "essc.toml"
    cfg.write_text("[resilience]\nbulkhead_max_in_flight = 4\nbreaker_cooldown_s = 1.5\n", encoding="utf-8")
    from_file = Settings.from_env(cfg, env={"ESSC_BREAKER_COOLDOWN_S": "7"})  # the environment wins
    assert (from_file.bulkhead_max_in_flight, from_file.breaker_cooldown_s) == (4, 7.0)


@pytest.mark.parametrize("var, value", [("ESSC_BREAKER_FAILURES", "many"), ("ESSC_BREAKER_FAILURES", "2.5"),
                                        ("ESSC_BREAKER_COOLDOWN_S", "-1"), ("ESSC_BULKHEAD_WAIT_S", "nan"),
                                        ("ESSC_BREAKER_WINDOW_S", "inf")])
def test_a_bad_knob_is_refused_naming_it(var, value):
    with pytest.raises(ValueError, match=var):
        Settings.from_env(env={var: value})


def test_bad_knobs_in_the_config_file_are_refused(tmp_path):
    cfg = tmp_path / "essc.toml"
    cfg.write_text("[resilience]\nbreaker_failurez = 3\n", encoding="utf-8")
    with pytest.raises(ValueError, match="breaker_failurez"):
        Settings.from_env(cfg, env={})
    cfg.write_text("[resilience]\nbulkhead_max_in_flight = true\n", encoding="utf-8")
    with pytest.raises(ValueError, match="bulkhead_max_in_flight"):
        Settings.from_env(cfg, env={})
    with pytest.raises(ValueError, match="at least 1"):
        Registry(Settings(bulkhead_max_in_flight=0))


@pytest.mark.parametrize("concurrency", [{"max_in_flight": 0}, {"max_in_flight": 2.5}, {}, {"max_in_flight": 4,
                                                                                              "queue": 1}])
def test_a_bad_concurrency_in_the_manifest_quarantines_the_plugin(plugin_folder, concurrency):
    name = plugin_folder.add("bad", manifest_data=manifest("placeholder", concurrency=concurrency))
    reg = plugin_folder.registry()
    record = reg.plugins[0]
    assert record.status == "quarantined" and "concurrency" in record.reason, (name, record.reason)


def test_the_reasons_are_the_error_schemas():
    from essc import schemas

    enum = schemas.load("error")["properties"]["details"]["properties"]["reason"]["enum"]
    assert list(UPSTREAM_REASONS) == enum and {"bulkhead_full", "circuit_open"} <= set(enum)
    assert Resilience().snapshot() == {}


# -- metrics -----------------------------------------------------------------------------------
def test_the_service_metrics_export_every_citys_breaker_and_bulkhead(make_registry, clock):
    from essc.service.metrics import ApiMetrics

    reg = make_registry({"max_in_flight": 1}, breaker_failures=1)
    trip(reg, A, 1)
    refused(reg, A, "circuit_open")
    held = Holder()
    reg.adapter(B).hook = held
    outcomes: list = []
    thread = in_thread(reg, B, outcomes)
    held.wait_entered(1)
    refused(reg, B, "bulkhead_full")
    runtime = SimpleNamespace(registry=reg, store=SimpleNamespace(counts=dict), queue_depth=lambda: 0)
    text = ApiMetrics(runtime).render().decode()
    held.release()
    thread.join(WAIT)
    for line in (f'essc_city_breaker_state{{city="{A}",state="open"}} 1.0',
                 f'essc_city_breaker_state{{city="{A}",state="closed"}} 0.0',
                 f'essc_city_breaker_state{{city="{B}",state="closed"}} 1.0',
                 f'essc_city_in_flight{{city="{B}"}} 1.0',
                 f'essc_city_in_flight{{city="{A}"}} 0.0',
                 f'essc_city_in_flight_limit{{city="{C}"}} 32.0',
                 f'essc_city_rejected_total{{city="{A}",reason="circuit_open"}} 1.0',
                 f'essc_city_rejected_total{{city="{B}",reason="bulkhead_full"}} 1.0',
                 f'essc_city_breaker_opened_total{{city="{A}"}} 1.0'):
        assert line in text, line


def test_metrics_survive_a_failing_snapshot(caplog):
    from essc.service.metrics import ApiMetrics

    class Broken(Registry):
        def resilience_snapshot(self):
            raise RuntimeError("boom")

    runtime = SimpleNamespace(registry=Broken(Settings(builtin_plugins=False, entry_points=False)),
                              store=SimpleNamespace(counts=dict), queue_depth=lambda: 0)
    text = ApiMetrics(runtime).render().decode()
    assert "# TYPE essc_city_breaker_state gauge" in text and "reading the resilience snapshot failed" in caplog.text


# -- a real hanging city -----------------------------------------------------------------------
def test_a_hanging_city_holds_at_most_its_bulkhead_and_the_others_still_answer():
    """The mock (real HTTP) hangs every read_card of 杭州 330100; 福州 350100 still answers at
    once, and 杭州 never holds more than N=2 threads: the calls beyond are refused."""
    from essc.mockserver import create_app
    from essc.mockserver.client import MockAdmin
    from essc.mockserver.serve import start_in_thread

    server = start_in_thread(create_app({"CLOCK_MODE": "frozen"}))
    threads: list[threading.Thread] = []
    try:
        admin = MockAdmin(server.url)
        state = server.app.extensions["essc_mock"]
        reg = Registry(Settings(base_url=server.url, entry_points=False, bulkhead_max_in_flight=2)).setup()
        hz, fz = admin.citizen("330100"), admin.citizen("350100")
        admin.fault(city="330100", operation="read_card", kind="hang", hang_s=60)
        outcomes: list = []

        def read(city: str, citizen: dict) -> None:
            try:
                outcomes.append(reg.call(city, "read_card", {"aac002": citizen["id_number"],
                                                             "aac003": citizen["name"], "aab301": city}))
            except Exception as err:  # recorded for the assertions
                outcomes.append(err)

        threads = [threading.Thread(target=read, args=("330100", hz), daemon=True) for _ in range(2)]
        for t in threads:
            t.start()
        reached = threading.Event()
        for _ in range(WAIT * 100):  # until both hung requests reached the mock (a bounded poll)
            if state.attempts("330100", "read_card") >= 2:
                reached.set()
                break
            reached.wait(0.01)
        assert reached.is_set(), "the hanging calls did not reach the mock"
        assert reg.resilience_snapshot()["330100"]["in_flight"] == 2

        for _ in range(5):  # refused at once, 杭州 not called again
            with pytest.raises(UpstreamUnavailable) as info:
                reg.call("330100", "read_card", {"aac002": hz["id_number"], "aac003": hz["name"], "aab301": "330100"})
            assert info.value.reason == "bulkhead_full"
        assert state.attempts("330100", "read_card") == 2
        record = reg.call("350100", "read_card", {"aac002": fz["id_number"], "aac003": fz["name"],
                                                  "aab301": "350100"})
        assert record["aab301"] == "350100"
        snap = reg.resilience_snapshot()
        assert (snap["330100"]["in_flight"], snap["330100"]["rejected"], snap["350100"]["in_flight"]) == (2, 5, 0)
        assert all(t.is_alive() for t in threads) and not outcomes  # still hanging
    finally:
        server.stop()  # releases the hung requests
        for t in threads:
            t.join(WAIT * 3)
    assert not any(t.is_alive() for t in threads)
    assert reg.resilience_snapshot()["330100"]["in_flight"] == 0


def test_new_work_is_refused_when_the_bulkhead_is_full_and_nothing_may_wait(make_registry):
    """Admission (Registry.saturated, the API's 429): with no wait a full bulkhead refuses new work."""
    reg = make_registry({"max_in_flight": 1}, bulkhead_wait_s=0)
    held = Holder()
    reg.adapter(A).hook = held
    outcomes: list = []
    thread = in_thread(reg, A, outcomes)
    held.wait_entered(1)
    assert reg.saturated(A) == BUSY_RETRY_AFTER_S and reg.saturated(B) is None
    held.release()
    thread.join(WAIT)
    assert reg.saturated(A) is None


def test_with_a_wait_new_work_may_queue_as_deep_as_the_bulkhead(make_registry):
    """With bulkhead_wait_s, admission lets new work queue for a full bulkhead, as many calls as
    it has slots, no more."""
    outcomes: list = []
    reg = make_registry({"max_in_flight": 1}, bulkhead_wait_s=WAIT)
    guard = reg.resilience.guard(A)
    guard._cond = Signalling()
    held = Holder()
    reg.adapter(A).hook = held
    first = in_thread(reg, A, outcomes)
    held.wait_entered(1)
    assert guard.full() and reg.saturated(A) is None  # full, but a call may wait for the slot
    second = in_thread(reg, A, outcomes)
    assert guard._cond.waiting.wait(WAIT) and guard.waiting == 1, "the second call did not wait"
    assert reg.saturated(A) == BUSY_RETRY_AFTER_S  # one waits already: the queue is full
    held.release()
    first.join(WAIT)
    second.join(WAIT)
    assert reg.saturated(A) is None
