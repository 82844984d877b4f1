"""kill -9 a worker or the whole service in the middle of activations: after a restart
nothing acknowledged is lost, every citizen ends activated exactly once and nobody gets
two credentials. The tests assert only on what the service acknowledged; what it did not
acknowledge the test's channel asks again for, as a real channel does."""
import threading

import pytest
import requests
from sqlalchemy import text

from essc.core.settings import Settings
from essc.service import states
from essc.service.config import ServiceConfig
from essc.service.runtime import Runtime

from .conftest import DEMO
from .workers import kill9, start_essc, start_worker, stop, unsettled, wait_until, worker_env

pytestmark = pytest.mark.slow  # processes killed and restarted: tens of seconds

DELAYED = ("110000", "310000", "650100")
AUTH = {"X-Channel": "demo", "X-Api-Key": "demo-key"}


@pytest.fixture
def crash_setup(tmp_path, mock, mock_server):
    env = worker_env(tmp_path, mock_server.url)
    config = ServiceConfig.from_env(env=env)
    rt = Runtime(config, settings=Settings(base_url=mock_server.url))
    yield rt, env
    rt.store.engine.dispose()


def held(store) -> int:
    """Activations a worker holds right now (claimed, lease running)."""
    with store.engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM activations WHERE lease_owner IS NOT NULL")).scalar()


def test_kill_9_worker_mid_card_read_then_restart(crash_setup, mock, tmp_path):
    rt, env = crash_setup
    people = [(city, c) for city in DELAYED for c in mock.citizens(city, "normal")]
    for city, _ in people:
        mock.set_city(city, mode="delayed", sync_delay_s=600)
    # every record is not synced yet: all activations wait in the database and the queue
    acts = {}
    for city, c in people:
        act = rt.service.submit(city=city, id_number=c["id_number"], name=c["name"], consent=True, channel="test")
        assert act["status"] == states.PENDING_SYNC
        acts[(city, c["id_number"])] = act["id"]
    total = len(people)
    assert total >= 15
    # the city's card read is slow: the worker is killed while holding activations
    for city in DELAYED:
        mock.fault(city=city, operation="read_card", kind="latency", latency_ms=800)
    mock.advance(600)

    first = start_worker(env, tmp_path / "worker1.log")
    try:
        assert wait_until(lambda: held(rt.store) > 0, timeout=30, interval=0.02), "the worker never claimed any"
    finally:
        kill9(first)
    before = rt.store.counts()
    assert before.get(states.AWAITING_VERIFICATION, 0) < total, f"nothing was left mid-way: {before}"

    second = start_worker(env, tmp_path / "worker2.log")
    try:
        assert wait_until(lambda: unsettled(rt.store) == 0, timeout=60, interval=0.2), rt.store.counts()
    finally:
        stop(second)
    assert rt.store.counts() == {states.AWAITING_VERIFICATION: total}, f"lost or stuck (before: {before})"
    sign_nos = set()
    for act_id in acts.values():  # the channel verifies each citizen: one credential each
        act, credential = rt.service.verify(act_id, channel="test", **DEMO)
        assert act["status"] == states.ACTIVATED, act
        sign_nos.add(credential["sign_no"])
    assert len(sign_nos) == total, "two citizens share a credential"
    resumed = [a for a in acts.values() if rt.store.get(a)["runs"] >= 3]
    assert resumed, "no activation was resumed after the crash"


def free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Channel:
    """A channel's backend: submits, verifies, and remembers only what the service acknowledged."""

    def __init__(self, api):
        self.api = api
        self.location = {}  # id number -> activation URL, once a submission was acknowledged
        self.credential = {}  # id number -> credential, once a verification acknowledged it

    def activate(self, c):
        """One citizen's whole activation; stops silently where the service stops answering."""
        try:
            if c["id_number"] not in self.location:
                r = requests.post(f"{self.api}/v1/activations", timeout=10, headers=AUTH,
                                  json={"city": "370200", "id_number": c["id_number"], "name": c["name"],
                                        "consent": True})
                assert r.status_code in (200, 201, 202), r.text
                self.location[c["id_number"]] = self.api + r.headers["Location"]
            url = self.location[c["id_number"]]
            view = requests.get(url, timeout=10, headers=AUTH).json()
            if view["status"] == states.ACTIVATED:  # the service finished it: the channel reads it
                self.credential[c["id_number"]] = view["credential"]
            elif view["status"] == states.AWAITING_VERIFICATION:
                r = requests.post(url + "/verification", timeout=10, headers=AUTH, json=DEMO)
                if r.status_code == 201:
                    self.credential[c["id_number"]] = r.json()["credential"]
        except requests.RequestException:
            pass  # the service died under this request: nothing acknowledged


def test_kill_9_service_with_requests_in_flight_then_restart(crash_setup, mock, tmp_path):
    """`essc serve` (API + in-process workers) killed while verifications are mid-way."""
    rt, env = crash_setup
    people = mock.citizens("370200", "normal")
    mock.fault(city="370200", operation="activate", kind="latency", latency_ms=1500)
    port = free_port()
    api = f"http://127.0.0.1:{port}"
    channel = Channel(api)
    first = start_essc(env, tmp_path / "serve1.log", "serve", "--port", str(port))
    assert wait_until(lambda: _up(api), timeout=30), (tmp_path / "serve1.log").read_text()

    threads = [threading.Thread(target=channel.activate, args=(c,)) for c in people]
    for t in threads:
        t.start()
    try:
        mid = wait_until(lambda: rt.store.counts().get(states.VERIFIED, 0) >= 2, timeout=30, interval=0.02)
        assert mid, f"no activation reached the sign step: {rt.store.counts()}"
    finally:
        kill9(first)
    for t in threads:
        t.join(timeout=30)
    acknowledged = dict(channel.credential)
    assert len(acknowledged) < len(people), "the service was killed after everything was done"

    second = start_essc(env, tmp_path / "serve2.log", "serve", "--port", str(port))
    try:
        assert wait_until(lambda: _up(api), timeout=30), (tmp_path / "serve2.log").read_text()
        # the channel follows up on what was not acknowledged: the verified ones the service
        # finishes by itself; the others the citizen submits or verifies again
        for _ in range(3):
            assert wait_until(lambda: unsettled(rt.store) == 0, timeout=60, interval=0.2), rt.store.counts()
            for c in people:
                if c["id_number"] not in channel.credential:
                    channel.activate(c)
    finally:
        stop(second)
    assert rt.store.counts() == {states.ACTIVATED: len(people)}, rt.store.counts()
    assert set(channel.credential) == {c["id_number"] for c in people}
    for id_number, credential in acknowledged.items():  # what was acknowledged before the crash holds
        assert channel.credential[id_number] == credential
    assert len({c["sign_no"] for c in channel.credential.values()}) == len(people)


def _up(api):
    try:
        return requests.get(f"{api}/healthz", timeout=1).status_code == 200
    except requests.RequestException:
        return False
