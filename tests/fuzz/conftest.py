"""The fuzz suite (``tox -e fuzz``): schemathesis against the served OpenAPI document.

Collected only when ``ESSC_FUZZ=1`` (the fuzz env sets it), so the default ``tests`` env never
runs it. When it runs, it must have sent requests: a session that ran no example fails.

The app is built as tests/service/conftest.py builds it: the mock of the city systems
in-process (a waitress thread, tests/conftest.py), a Runtime (registry + SQLite store + SQLite queue) in a
temporary folder, the packaged demo channel.
"""
import os
from collections import Counter

import pytest

ENABLED = os.environ.get("ESSC_FUZZ") == "1"
collect_ignore_glob = [] if ENABLED else ["test_*.py"]

#: (operation, auth scheme) -> requests sent; (operation, status) -> responses; filled by the tests
SENT: Counter = Counter()
STATUSES: Counter = Counter()


@pytest.fixture
def service_config(tmp_path):  # the runtime's (tests/conftest.py); city steps within the answer budget
    from essc.service.config import ServiceConfig

    return ServiceConfig(data_dir=tmp_path / "data", retry_base_s=0.05, retry_cap_s=2.0, lease_s=10.0,
                         sweep_interval_s=0.2)


@pytest.fixture
def app(runtime):
    from essc.service.api import create_app

    # the packaged demo channel (demo-key / demo-secret) and demo relying parties; the failure throttle counts but never
    # trips: the negative cases that drop credentials must not turn the valid ones into 429s
    app = create_app(runtime, {"TESTING": True, "AUTH_FAILURE_LIMIT": 1_000_000})
    state = app.extensions["essc"]
    app.wsgi_app = SignAsSent(app.wsgi_app, state.channels, state.relying_parties)
    return app


class SignAsSent:
    """The channel's signer at the wire: a request marked ``X-Fuzz-Sign`` is signed over the
    method, the request target and the body exactly as they reach the server (schemathesis
    encodes generated query parameters - odd keys, nulls - its own way; the client side cannot
    know the bytes). The server's check runs unchanged on the result."""

    def __init__(self, app, channels, parties):
        self.app, self.channels, self.parties = app, channels, parties

    def __call__(self, environ, start_response):
        import io

        from essc.service.channels import request_target, sign

        marked = environ.pop("HTTP_X_FUZZ_SIGN", None)
        caller = environ.get("HTTP_X_CHANNEL") or environ.get("HTTP_X_RELYING_PARTY")
        parts = [caller, environ.get("HTTP_X_TIMESTAMP"), environ.get("HTTP_X_NONCE")]
        entry = self.channels.channels.get(caller) or self.parties.channels.get(caller)
        if marked and entry is not None and all(parts):  # a negative case that dropped a header stays as it is
            body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
            environ["wsgi.input"] = io.BytesIO(body)
            secret = entry.hmac_secret
            environ["HTTP_X_SIGNATURE"] = sign(secret, environ["REQUEST_METHOD"],
                                               request_target(environ).decode("latin-1"),
                                               environ["HTTP_X_TIMESTAMP"], environ["HTTP_X_NONCE"], body)
        return self.app(environ, start_response)


def pytest_terminal_summary(terminalreporter):
    if not ENABLED:
        return
    terminalreporter.section("fuzz: requests sent per operation and auth scheme")
    for (operation, scheme), n in sorted(SENT.items()):
        terminalreporter.write_line(f"{n:5d}  {operation}  [{scheme}]")
    terminalreporter.write_line(f"{sum(SENT.values()):5d}  in all")
    terminalreporter.section("fuzz: responses per operation and status")
    for (operation, status), n in sorted(STATUSES.items()):
        terminalreporter.write_line(f"{n:5d}  {operation}  {status}")


def pytest_sessionfinish(session, exitstatus):
    if ENABLED and not session.config.option.collectonly and sum(SENT.values()) == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        print("\nfuzz: no request was sent (0 examples ran): failing")
