"""Real HTTP: waitress in a thread (start_in_thread), drop and hang faults, concurrency."""
from __future__ import annotations

import threading
import time

import pytest
import requests
from werkzeug.serving import make_server

from essc.mockserver import create_app
from essc.mockserver.serve import start_in_thread

REST = {"Authorization": "Bearer mock-rest-token"}
BROKEN = (requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError)


def get(url: str, timeout: float = 5.0) -> requests.Response:
    with requests.Session() as session:
        session.trust_env = False
        return session.get(f"{url}/rest/v1/health?cityCode=330100", headers=REST, timeout=timeout)


def post_fault(url: str, **rule) -> None:
    with requests.Session() as session:
        session.trust_env = False
        assert session.post(f"{url}/__admin/faults", json=rule, timeout=5).status_code == 201


@pytest.fixture
def werkzeug_server(app):
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_live_server_answers(live):
    assert live.url.startswith("http://127.0.0.1:") and not live.url.endswith(":0")
    resp = get(live.url)
    assert (resp.status_code, resp.json()) == (200, {"status": "UP"})


@pytest.mark.parametrize("server", ["waitress", "werkzeug"])
def test_drop_breaks_the_connection(request, server):
    url = request.getfixturevalue("live").url if server == "waitress" else request.getfixturevalue("werkzeug_server")
    post_fault(url, kind="drop", attempts=[1])
    with pytest.raises(BROKEN):
        get(url)
    assert get(url).status_code == 200  # the next attempt is fine


def test_a_hanging_request_does_not_block_others(live):
    post_fault(live.url, kind="hang", hang_s=2, attempts=[1])
    outcome: dict[str, object] = {}

    def hang() -> None:
        started = time.perf_counter()
        try:
            get(live.url, timeout=10)
            outcome["result"] = "answered"
        except BROKEN:
            outcome["result"] = "broken"
        outcome["seconds"] = time.perf_counter() - started

    hanging = threading.Thread(target=hang)
    hanging.start()
    time.sleep(0.2)
    started = time.perf_counter()
    assert get(live.url, timeout=5).status_code == 200
    assert time.perf_counter() - started < 1.0
    assert hanging.is_alive()
    hanging.join(10)
    assert outcome["result"] == "broken" and 1.8 <= outcome["seconds"] < 5


def test_a_hang_outlasting_the_client_is_a_timeout(live):
    post_fault(live.url, kind="hang", hang_s=3, attempts=[1])
    with pytest.raises(requests.exceptions.ReadTimeout):
        get(live.url, timeout=0.5)


def test_reset_releases_hung_requests(live):
    post_fault(live.url, kind="hang", hang_s=20, attempts=[1])
    errors: list[BaseException] = []

    def hang() -> None:
        try:
            get(live.url, timeout=15)
        except BROKEN as err:
            errors.append(err)

    hanging = threading.Thread(target=hang)
    started = time.perf_counter()
    hanging.start()
    time.sleep(0.3)
    with requests.Session() as session:
        session.trust_env = False
        assert session.post(f"{live.url}/__admin/reset", timeout=5).status_code == 200
    hanging.join(10)
    assert not hanging.is_alive() and len(errors) == 1
    assert time.perf_counter() - started < 5
    with requests.Session() as session:
        session.trust_env = False
        assert session.get(f"{live.url}/__admin/journal", timeout=5).json() == []  # not journaled after reset


def test_stop_releases_hung_requests_and_closes_the_port():
    server = start_in_thread(create_app({"CLOCK_MODE": "frozen"}))
    post_fault(server.url, kind="hang", hang_s=30)
    errors: list[BaseException] = []

    def hang() -> None:
        try:
            get(server.url, timeout=15)
        except BROKEN as err:
            errors.append(err)

    hanging = threading.Thread(target=hang)
    hanging.start()
    time.sleep(0.3)
    started = time.perf_counter()
    server.stop()
    hanging.join(10)
    assert time.perf_counter() - started < 5 and len(errors) == 1
    with pytest.raises(requests.exceptions.ConnectionError):
        get(server.url, timeout=2)
    server.stop()  # idempotent
