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


def test_a_lost_answer_is_carried_out_and_then_the_connection_breaks(live):
    post_fault(live.url, kind="lost_answer", attempts=[1])
    with pytest.raises(BROKEN):
        get(live.url)
    with requests.Session() as session:
        session.trust_env = False
        journal = session.get(f"{live.url}/__admin/journal", timeout=5).json()
    entry = [e for e in journal if e["operation"] == "health"][-1]
    assert (entry["fault"], entry["outcome"], entry["status"]) == ("lost_answer", "ok", 200)  # carried out
    assert get(live.url).status_code == 200


def attempts(server, operation: str = "health", city: str = "330100") -> int:
    """How many requests of (city, operation) the mock has counted: a request is hanging (or
    being answered) once its attempt is counted."""
    return server.app.extensions["essc_mock"].attempts(city, operation)


def reset(url: str) -> None:
    with requests.Session() as session:
        session.trust_env = False
        assert session.post(f"{url}/__admin/reset", timeout=10).status_code == 200


def test_a_hanging_request_does_not_block_others(live, wait_for):
    post_fault(live.url, kind="hang", hang_s=60, attempts=[1])
    outcome: dict[str, object] = {}

    def hang() -> None:
        try:
            get(live.url, timeout=60)
            outcome["result"] = "answered"
        except BROKEN:
            outcome["result"] = "broken"

    hanging = threading.Thread(target=hang)
    hanging.start()
    wait_for(lambda: attempts(live) == 1, what="the first request reached the mock")
    # answered while the first one still hangs (it hangs for 60 s unless released)
    assert get(live.url, timeout=30).status_code == 200
    assert hanging.is_alive() and "result" not in outcome
    reset(live.url)
    hanging.join(30)
    assert not hanging.is_alive() and outcome["result"] == "broken"


def test_a_hang_ends_after_hang_s(live):
    post_fault(live.url, kind="hang", hang_s=1, attempts=[1])
    started = time.monotonic()
    with pytest.raises(BROKEN):
        get(live.url, timeout=30)
    assert time.monotonic() - started >= 0.9  # a lower bound only: a busy machine is slower, never faster


def test_a_hang_outlasting_the_client_is_a_timeout(live):
    post_fault(live.url, kind="hang", hang_s=60, attempts=[1])
    with pytest.raises(requests.exceptions.ReadTimeout):
        get(live.url, timeout=0.5)
    # released by the fixture's stop()


def test_reset_releases_hung_requests(live, wait_for):
    post_fault(live.url, kind="hang", hang_s=60, attempts=[1])
    errors: list[BaseException] = []

    def hang() -> None:
        try:
            get(live.url, timeout=50)
        except BROKEN as err:
            errors.append(err)

    hanging = threading.Thread(target=hang)
    hanging.start()
    wait_for(lambda: attempts(live) == 1, what="the request reached the mock")
    reset(live.url)
    hanging.join(30)  # released by the reset, long before its 60 s hang or 50 s timeout
    assert not hanging.is_alive() and len(errors) == 1
    with requests.Session() as session:
        session.trust_env = False
        assert session.get(f"{live.url}/__admin/journal", timeout=5).json() == []  # not journaled after reset


def test_stop_releases_hung_requests_and_closes_the_port(wait_for):
    server = start_in_thread(create_app({"CLOCK_MODE": "frozen"}))
    post_fault(server.url, kind="hang", hang_s=60)
    errors: list[BaseException] = []

    def hang() -> None:
        try:
            get(server.url, timeout=50)
        except BROKEN as err:
            errors.append(err)

    hanging = threading.Thread(target=hang)
    hanging.start()
    wait_for(lambda: attempts(server) == 1, what="the request reached the mock")
    server.stop()
    hanging.join(30)  # released by stop(), long before its 60 s hang or 50 s timeout
    assert not hanging.is_alive() and len(errors) == 1
    with pytest.raises(requests.exceptions.ConnectionError):
        get(server.url, timeout=2)
    server.stop()  # idempotent
