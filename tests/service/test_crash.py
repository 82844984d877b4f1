"""kill -9 a worker in the middle of activations: after a restart every pending activation
resumes, none is lost and none gets two credentials."""
import pytest

from essc.core.settings import Settings
from essc.service import states
from essc.service.config import ServiceConfig
from essc.service.runtime import Runtime

from .conftest import DEMO
from .workers import kill9, start_worker, stop, unsettled, wait_until, worker_env

DELAYED = ("110000", "310000", "650100")


@pytest.fixture
def crash_setup(tmp_path, mock, mock_server):
    env = worker_env(tmp_path, mock_server.url)
    config = ServiceConfig.from_env(env=env)
    rt = Runtime(config, settings=Settings(base_url=mock_server.url))
    yield rt, env
    rt.store.engine.dispose()


def test_kill_9_worker_mid_activation_then_restart(crash_setup, mock, tmp_path):
    rt, env = crash_setup
    people = []
    for city in DELAYED:
        mock.set_city(city, mode="delayed", sync_delay_s=600)
        for c in mock.citizens(city, "normal"):
            people.append((city, c))
    # every record is not synced yet: all activations wait in the database and the queue
    for city, c in people:
        act = rt.service.submit(city=city, id_number=c["id_number"], name=c["name"], consent=True, channel="test",
                                **DEMO)
        assert act["status"] == states.PENDING_SYNC
    total = len(people)
    assert total >= 15
    # the city's sign step is slow: the worker will be killed while holding activations
    for city in DELAYED:
        mock.fault(city=city, operation="activate", kind="latency", latency_ms=800)
    mock.advance(600)

    first = start_worker(env, tmp_path / "worker1.log")
    try:
        mid = wait_until(lambda: rt.store.counts().get(states.VERIFIED, 0) > 0, timeout=30, interval=0.02)
        assert mid, "the worker never reached the sign step"
    finally:
        kill9(first)
    before = rt.store.counts()
    assert before.get(states.ACTIVATED, 0) < total, f"nothing was left mid-way: {before}"

    second = start_worker(env, tmp_path / "worker2.log")
    try:
        wait_until(lambda: unsettled(rt.store) == 0, timeout=60, interval=0.2)
    finally:
        stop(second)
    after = rt.store.counts()
    assert after == {states.ACTIVATED: total}, f"lost or stuck activations: {after} (before restart: {before})"
    rows = [rt.store.find(rt.service.sealer.citizen_key(c["id_number"]), city) for city, c in people]
    sign_nos = [r["credential"]["signNo"] for r in rows]
    assert len(set(sign_nos)) == total, "two citizens share a credential"
    # the audit trail shows the crash: someone's lease expired and another run finished the job
    resumed = [r for r in rows if r["runs"] >= 3]
    assert resumed, "no activation was resumed after the crash"


def free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_kill_9_service_with_requests_in_flight_then_restart(crash_setup, mock, tmp_path):
    """`essc serve` (API + in-process workers) killed while activations are mid-way."""
    import threading

    import requests

    from .workers import start_essc

    rt, env = crash_setup
    people = [("370200", c) for c in mock.citizens("370200", "normal")]
    mock.fault(city="370200", operation="activate", kind="latency", latency_ms=1500)
    port = free_port()
    api = f"http://127.0.0.1:{port}"
    first = start_essc(env, tmp_path / "serve1.log", "serve", "--port", str(port))
    assert wait_until(lambda: _up(api), timeout=30), (tmp_path / "serve1.log").read_text()

    def post(c):
        try:
            requests.post(f"{api}/v1/activations", timeout=10, headers={"X-Channel": "demo", "X-Api-Key": "demo-key"},
                          json={"city": "370200", "id_number": c["id_number"], "name": c["name"], "consent": True,
                                "verification": {"face_token": "live-crash", "sms_code": "123456"}})
        except requests.RequestException:
            pass  # the service dies under this request: that is the point

    threads = [threading.Thread(target=post, args=(c,)) for _, c in people]
    for t in threads:
        t.start()
    try:
        mid = wait_until(lambda: rt.store.counts().get(states.VERIFIED, 0) >= 2, timeout=30, interval=0.02)
        assert mid, f"no activation reached the sign step: {rt.store.counts()}"
    finally:
        kill9(first)
    for t in threads:
        t.join(timeout=15)
    before = rt.store.counts()
    assert before.get(states.ACTIVATED, 0) < len(people), before

    second = start_essc(env, tmp_path / "serve2.log", "serve", "--port", str(port))
    try:
        wait_until(lambda: unsettled(rt.store) == 0, timeout=60, interval=0.2)
    finally:
        stop(second)
    after = rt.store.counts()
    assert after == {states.ACTIVATED: len(people)}, f"lost or stuck: {after} (before restart: {before})"
    rows = [rt.store.find(rt.service.sealer.citizen_key(c["id_number"]), city) for city, c in people]
    assert len({r["credential"]["signNo"] for r in rows}) == len(people)


def _up(api):
    import requests

    try:
        return requests.get(f"{api}/healthz", timeout=1).status_code == 200
    except requests.RequestException:
        return False
