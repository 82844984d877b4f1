"""``essc serve --processes N`` (issue 10, essc.service.processes): one port, N API processes
forked by a supervisor, sharing the SQLite database; a dead one is started again; the
supervisor's signal stops them all cleanly, a second one at once; killed, its children stop
by themselves; each guards its share of a city's bulkhead."""
import os
import signal
import threading
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner
from sqlalchemy import text

from essc.cli import main
from essc.core.registry import Registry
from essc.core.resilience import Policy, Resilience
from essc.core.settings import Settings
from essc.service import states
from essc.service.config import ServiceConfig
from essc.service.processes import cpu_of, default_processes, pin_cpu
from essc.service.store import Store

from .conftest import DEMO
from .test_shutdown import AUTH, free_port, log_of, signal_and_wait, start_serve
from .workers import kill9, wait_until, worker_env


def children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.fixture
def served(tmp_path, mock, mock_server):
    """``essc serve`` with two API processes on a fresh data folder: (process, api URL, store, log)."""
    env = worker_env(tmp_path, mock_server.url, ESSC_API_PROCESSES=2)
    port = free_port()
    log = tmp_path / "serve.log"
    proc = start_serve(env, log, port)
    # both listen before the test starts (else the first takes every connection)
    assert wait_until(lambda: log_of(log).count(" listening") == 2, timeout=30), log_of(log)
    assert len(children(proc.pid)) == 2
    store = Store(f"sqlite:///{tmp_path / 'data' / 'essc.sqlite3'}")
    yield proc, f"http://127.0.0.1:{port}", store, log
    if proc.poll() is None:
        kill9(proc)
    proc._essc_log.close()
    store.engine.dispose()


def activate(api: str, citizen: dict, city: str = "330100") -> dict:
    """Both steps, each on a new connection (the kernel hands new connections to either process)."""
    r = requests.post(f"{api}/v1/activations", headers={**AUTH, "Connection": "close"}, timeout=30,
                      json={"city": city, "id_number": citizen["id_number"], "name": citizen["name"], "consent": True})
    assert r.status_code == 201, r.text
    r = requests.post(f"{api}{r.headers['Location']}/verification", headers={**AUTH, "Connection": "close"},
                      json=DEMO, timeout=30)
    assert r.status_code == 201, r.text
    return r.json()


def pids_in_audit(store: Store) -> set[str]:
    """The processes that ran a step (the actor of a transition is ``host:pid:thread``)."""
    with store.engine.connect() as conn:
        actors = [r[0] for r in conn.execute(text("SELECT actor FROM audit_events WHERE event = 'card_read'"))]
    return {a.split(":")[1] for a in actors if a.count(":") >= 2}


def submitted_total(api: str) -> float:
    """The sum of ``essc_api_activations_submitted_total`` over its outcomes, as /metrics says."""
    body = requests.get(f"{api}/metrics", headers={"Connection": "close"}, timeout=30).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in body.splitlines()
               if line.startswith("essc_api_activations_submitted_total{"))


def cpus_of(pid: int) -> set[int]:
    return os.sched_getaffinity(pid)


def thread_cpus(pid: int) -> dict[int, frozenset[int]]:
    """The CPUs each thread of ``pid`` may run on (a thread that ended meanwhile is left out)."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out[int(task.name)] = frozenset(os.sched_getaffinity(int(task.name)))
        except ProcessLookupError:
            pass
    return out


needs_two_cpus = pytest.mark.skipif(not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
                                    reason="holding each process to a CPU needs Linux and two CPUs to choose from")


def test_processes_spread_over_the_cpus_they_may_use():
    assert [cpu_of(i, 2, {0, 1}) for i in range(2)] == [0, 1]
    assert [cpu_of(i, 2, {0, 1, 2, 3}) for i in range(2)] == [0, 2]  # not two neighbours
    assert [cpu_of(i, 4, {4, 5, 6, 7}) for i in range(4)] == [4, 5, 6, 7]  # the CPUs allowed, not 0..n
    assert [cpu_of(i, 3, {0, 1}) for i in range(3)] == [0, 0, 1]  # more processes than CPUs
    assert cpu_of(5, 2, {0, 1}) == 1  # a restarted process keeps its index, so its CPU


def test_pin_cpu_holds_this_process_to_its_cpu(monkeypatch):
    held = []
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    monkeypatch.setattr(os, "sched_setaffinity", lambda pid, cpus: held.append((pid, set(cpus))), raising=False)
    assert pin_cpu(3, 4) == 3  # auto: as many processes as CPUs, the service has them to itself
    assert pin_cpu(1, 2) is None  # auto: 2 processes of 4 CPUs share the machine: the kernel places them
    assert pin_cpu(1, 2, "on") == 2  # unless asked: spread
    assert pin_cpu(3, 4, "off") is None
    assert pin_cpu(0, 1, "on") is None  # one process: the kernel places it
    assert held == [(0, {3}), (0, {2})]
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3}, raising=False)
    assert pin_cpu(1, 2, "on") is None  # one CPU allowed: nothing to choose
    assert len(held) == 2


def test_a_process_the_system_does_not_let_hold_a_cpu_runs_where_the_kernel_puts_it(monkeypatch, caplog):
    def refuse(pid, cpus):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setattr(os, "sched_setaffinity", refuse, raising=False)
    with caplog.at_level("WARNING", logger="essc.service.processes"):
        assert pin_cpu(1, 2) is None  # not an error that ends the process (it would be restarted forever)
    assert "API process 1 could not be held to CPU 1" in caplog.text and "Operation not permitted" in caplog.text


def test_pinning_is_a_setting_that_refuses_what_it_does_not_know():
    assert ServiceConfig.from_env({}).api_pin_cpus == "auto"
    for word, setting in (("0", "off"), ("off", "off"), ("No", "off"), ("1", "on"), ("TRUE", "on"), (" on ", "on"),
                          ("Auto", "auto")):
        assert ServiceConfig.from_env({"ESSC_API_PIN_CPUS": word}).api_pin_cpus == setting, word
    with pytest.raises(ValueError, match=r"ESSC_API_PIN_CPUS='2': expected auto, on \(1, true, yes\) or off"):
        ServiceConfig.from_env({"ESSC_API_PIN_CPUS": "2"})


@needs_two_cpus
@pytest.mark.skipif(hasattr(os, "sched_getaffinity") and len(os.sched_getaffinity(0)) > 2,
                    reason="by default (auto) two processes keep a CPU each only where they are all there is")
def test_each_api_process_keeps_its_own_cpu_and_a_restarted_one_gets_it_again(served, mock):
    proc, api, store, log = served
    first, second = sorted(children(proc.pid))
    allowed = cpus_of(proc.pid)
    assert len(cpus_of(first)) == 1 and len(cpus_of(second)) == 1
    assert cpus_of(first) != cpus_of(second) and cpus_of(first) | cpus_of(second) <= allowed
    assert f"(CPU {min(cpus_of(first))})" in log_of(log)
    threads = thread_cpus(first)  # every thread of the process, not only the first
    assert len(threads) > 10 and set(threads.values()) == {frozenset(cpus_of(first))}, threads
    was = {pid: cpus_of(pid) for pid in (first, second)}
    os.kill(first, signal.SIGKILL)
    # the replacement says it listens once it holds its CPU and serves (before that, a new child
    # has its parent's CPUs)
    assert wait_until(lambda: log_of(log).count(" listening") == 3, timeout=30), log_of(log)
    (new,) = set(children(proc.pid)) - {first, second}
    assert cpus_of(new) == was[first]  # the restarted process took the dead one's place and CPU
    assert activate(api, mock.citizens("330100", "normal")[0])["status"] == states.ACTIVATED
    code, _ = signal_and_wait(proc)
    assert code == 0, log_of(log)


@needs_two_cpus
def test_the_kernel_places_the_processes_when_pinning_is_off(tmp_path, mock, mock_server):
    env = worker_env(tmp_path, mock_server.url, ESSC_API_PROCESSES=2, ESSC_API_PIN_CPUS="0")
    port = free_port()
    log = tmp_path / "serve.log"
    proc = start_serve(env, log, port)
    try:
        assert wait_until(lambda: log_of(log).count(" listening") == 2, timeout=30), log_of(log)
        assert "(CPU " not in log_of(log)
        assert all(cpus_of(pid) == cpus_of(proc.pid) for pid in children(proc.pid))
        code, _ = signal_and_wait(proc)
        assert code == 0, log_of(log)
    finally:
        if proc.poll() is None:
            kill9(proc)
        proc._essc_log.close()


def test_default_is_one_process_per_core_up_to_four():
    assert [default_processes(n) for n in (1, 2, 3, 4, 16)] == [1, 2, 3, 4, 4]


def test_each_process_guards_its_share_of_a_city_bulkhead(mock_server):
    assert Resilience(Policy(max_in_flight=32), share=2).guard("330100").limit == 16
    assert Resilience(share=2).guard("330100", 5).limit == 3  # rounded up: never 0
    with pytest.raises(ValueError, match="share"):
        Resilience(share=0)
    registry = Registry(Settings(base_url=mock_server.url, bulkhead_share=2)).setup()
    registry.adapter("330100")  # its plugin loads on first use
    assert registry.resilience_snapshot()["330100"]["limit"] == 16


def test_several_processes_need_real_city_endpoints(tmp_path, monkeypatch):
    monkeypatch.delenv("ESSC_CITY_BASE_URL", raising=False)
    monkeypatch.delenv("ESSC_CONFIG", raising=False)
    monkeypatch.setenv("ESSC_DATA_DIR", str(tmp_path))
    result = CliRunner().invoke(main, ["serve", "--processes", "2"])
    assert result.exit_code == 2
    assert "in-process mock" in result.output


def test_two_processes_share_the_port_and_the_database_and_stop_cleanly(served, mock):
    proc, api, store, log = served
    # each submission on a new connection, which the kernel gives either process: with the 7
    # normal citizens of one city, one process got them all in ~1 run of 64 (2 x 2^-7); with 21
    # of three cities, ~1 in a million
    people = [(city, citizen) for city in ("330100", "350100", "510100") for citizen in mock.citizens(city, "normal")]
    assert len(people) >= 21
    for city, citizen in people:
        assert activate(api, citizen, city)["status"] == states.ACTIVATED
    assert store.counts() == {states.ACTIVATED: len(people)}
    assert pids_in_audit(store) == {str(pid) for pid in children(proc.pid)}, "one process did all the work"
    for _ in range(4):  # whichever process answers the scrape counts what both did
        assert submitted_total(api) == len(people)
    kids = children(proc.pid)
    code, _ = signal_and_wait(proc)
    text_ = log_of(log)
    assert code == 0, text_
    assert text_.count("requests all answered") == 2, text_
    assert "(2 processes, exit 0)" in text_
    assert not any(alive(pid) for pid in kids)


def test_a_process_that_dies_is_started_again(served, mock):
    proc, api, store, log = served
    first, second = children(proc.pid)
    os.kill(first, signal.SIGKILL)
    assert wait_until(lambda: len(set(children(proc.pid)) - {first, second}) == 1, timeout=30), log_of(log)
    assert "exited with -9" in log_of(log)
    for citizen in mock.citizens("330100", "normal")[:4]:  # served as before
        assert activate(api, citizen)["status"] == states.ACTIVATED
    code, _ = signal_and_wait(proc)
    assert code == 0, log_of(log)


def test_a_signal_to_every_process_at_once_is_one_stop(served):
    """An init system that signals the whole group (systemd's default) must not end the
    processes at once: they obey the supervisor only."""
    proc, api, store, log = served
    kids = children(proc.pid)
    os.killpg(proc.pid, signal.SIGTERM)
    assert proc.wait(timeout=15) == 0, log_of(log)
    assert log_of(log).count("requests all answered") == 2, log_of(log)
    assert not any(alive(pid) for pid in kids)


def test_a_second_signal_ends_them_at_once(served, mock):
    proc, api, store, log = served
    mock.fault(city="330100", operation="read_card", kind="hang")  # a request stays in flight
    citizen = mock.citizens("330100", "normal")[0]
    kids = children(proc.pid)
    with requests.Session() as session:
        threading.Thread(target=lambda: _quietly(session.post, f"{api}/v1/activations", headers=AUTH, timeout=30,
                                                 json={"city": "330100", "id_number": citizen["id_number"],
                                                       "name": citizen["name"], "consent": True}),
                         daemon=True).start()
        assert wait_until(lambda: store.counts().get(states.RECEIVED, 0) == 1, timeout=30), log_of(log)
        proc.send_signal(signal.SIGTERM)
        assert wait_until(lambda: "stopping 2 API process(es)" in log_of(log), timeout=10), log_of(log)
        code, _ = signal_and_wait(proc)
    assert code == 128 + signal.SIGTERM, log_of(log)
    assert wait_until(lambda: not any(alive(pid) for pid in kids), timeout=10)


def test_children_stop_by_themselves_when_the_supervisor_is_killed(served, mock):
    proc, api, store, log = served
    kids = children(proc.pid)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    assert wait_until(lambda: not any(alive(pid) for pid in kids), timeout=15), log_of(log)
    assert log_of(log).count("requests all answered") == 2, log_of(log)


def _quietly(call, *args, **kwargs):
    try:
        call(*args, **kwargs)
    except requests.RequestException:
        pass  # the service stopped under this request


def test_waitress_queue_warnings_are_written_at_most_every_interval():
    """Under a burst waitress warns for every request waiting for a thread: one line per interval
    says it, with how many were left out."""
    import logging

    from essc.service.lifecycle import AtMostEvery

    now = [100.0]
    records = []
    logger = logging.getLogger("test.queue.burst")
    logger.propagate = False
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger.addHandler(handler)
    logger.addFilter(AtMostEvery(10.0, clock=lambda: now[0]))
    for depth in range(1, 6):
        logger.warning("Task queue depth is %d", depth)
    now[0] += 10.0
    logger.warning("Task queue depth is %d", 9)
    assert [r.getMessage() for r in records] == ["Task queue depth is 1",
                                                 "Task queue depth is 9 (4 such warnings left out)"]


def test_processes_share_a_city_bulkhead_through_memory():
    """Two processes' guards over one SharedInFlight (as two forked children see it): the city's
    limit holds for the sum of their calls, whichever process the load lands on; the calls of a
    process that died are forgotten; a city not in the shared memory keeps ceil(limit / N)."""
    import copy

    from essc.core.errors import UpstreamUnavailable
    from essc.service.processes import SharedInFlight

    shared = SharedInFlight(["330100"], 2)
    first, second = (Resilience(Policy(max_in_flight=3), share=2, peers=copy.copy(shared).of_process(i))
                     for i in (0, 1))
    a, b = first.guard("330100"), second.guard("330100")
    assert (a.limit, b.limit) == (3, 3)
    a.enter(), a.enter()
    b.enter()  # the third call in all: 2 in one process, 1 in the other
    for guard in (a, b):
        with pytest.raises(UpstreamUnavailable, match="bulkhead full"):
            guard.enter()
        assert guard.full() and guard.snapshot()["in_flight"] == 3
    a.leave(False, None)
    b.enter()  # the slot freed in one process is taken in the other
    assert shared.total("330100") == 3
    shared.clear(1)  # the second process died with its two calls
    assert shared.total("330100") == 2 - 1 and not a.full()
    assert first.guard("350100").limit == 2  # not shared: its share, ceil(3 / 2)


def test_a_breaker_one_process_opens_stops_the_others_calling_the_city():
    """Two processes' guards over one SharedInFlight: the city failed in one process (5 timeouts),
    so the other refuses its calls too (``circuit_open``, the time left of the cool-down), without
    a failure of its own and without counting an opening; after the cool-down each process sends
    ONE half-open probe; a probe that succeeds closes the breaker for every process; a city not in
    the shared memory keeps a breaker per process."""
    import copy

    from essc.core.errors import UpstreamUnavailable
    from essc.service.processes import SharedInFlight

    now = [100.0]
    shared = SharedInFlight(["330100"], 2)
    first, second = (Resilience(Policy(failures=5, cooldown_s=10.0), clock=lambda: now[0], share=2,
                                peers=copy.copy(shared).of_process(i)) for i in (0, 1))
    a, b = first.guard("330100"), second.guard("330100")
    timeout = UpstreamUnavailable("no answer", reason="timeout", city="330100")
    for _ in range(5):
        a.leave(a.enter(), timeout)
    assert a.snapshot()["breaker"] == "open" and a.snapshot()["opened"] == 1
    assert b.snapshot()["breaker"] == "open"  # seen from the other process
    now[0] += 4.0
    with pytest.raises(UpstreamUnavailable, match="circuit breaker open") as refused:
        b.enter()
    assert refused.value.details["reason"] == "circuit_open" and refused.value.retry_after == pytest.approx(6.0)
    assert b.snapshot()["opened"] == 0 and b.in_flight == 0
    now[0] += 6.5  # the cool-down is over: one probe per process, the others still refused
    probe_a, probe_b = a.enter(), b.enter()
    assert probe_a is True and probe_b is True
    for guard in (a, b):
        with pytest.raises(UpstreamUnavailable, match="circuit breaker open"):
            guard.enter()
    b.leave(probe_b, timeout)  # the other process's probe failed: open again there, for twice the cool-down
    assert b.snapshot()["retry_after"] == pytest.approx(20.0) and shared.open_until("330100") == pytest.approx(130.5)
    probe_b = None
    a.leave(probe_a, None)  # the city answered
    assert shared.open_until("330100") == 0.0 and a.snapshot()["breaker"] == "closed"
    assert b.snapshot()["breaker"] == "open"  # until its own cool-down ends: then its probe
    now[0] += 20.0
    probe_b = b.enter()
    assert probe_b is True
    b.leave(probe_b, None)
    assert b.snapshot()["breaker"] == "closed" and b.enter() is False
    for _ in range(5):  # a city loaded later: a breaker per process
        first.guard("350100").leave(first.guard("350100").enter(), timeout)
    assert first.guard("350100").snapshot()["breaker"] == "open"
    assert second.guard("350100").snapshot()["breaker"] == "closed" and second.guard("350100").enter() is False


def test_a_long_poll_sees_a_step_whichever_process_runs_it(served, mock):
    """A slow city: the submission answers 202 and its step goes on in the process that took it;
    long-polls on new connections (the kernel hands them to either process) all return with the
    step's transition - a process that does not run the step re-reads the row."""
    proc, api, store, log = served
    mock.fault(city="330100", operation="read_card", kind="latency", latency_ms=2500)
    citizen = mock.citizens("330100", "normal")[0]
    r = requests.post(f"{api}/v1/activations", headers={**AUTH, "Connection": "close"}, timeout=30,
                      json={"city": "330100", "id_number": citizen["id_number"], "name": citizen["name"],
                            "consent": True})
    assert r.status_code == 202, r.text
    url = f"{api}{r.headers['Location']}?wait=20"
    answers: list = []

    def poll():
        answers.append(requests.get(url, headers={**AUTH, "Connection": "close"}, timeout=30).json()["status"])

    polls = [threading.Thread(target=poll) for _ in range(6)]
    for t in polls:
        t.start()
    for t in polls:
        t.join(30)
    assert answers == [states.AWAITING_VERIFICATION] * 6, answers
