"""Browser tests: Debian's Chromium, headless, driven by Playwright for Python.

Playwright talks to the system Chromium (``/usr/bin/chromium``, or ``ESSC_CHROMIUM``); it
never downloads a browser. Without Chromium the tests are skipped with the reason - except
when ``ESSC_BROWSER=1`` (set by .ci/run), where a missing browser FAILS them, so that CI can
never pass by skipping them.

The service runs for real: ``create_app(runtime)`` on waitress in a thread (listening before
the fixture returns), queue workers started, the mock city systems in-process with a frozen
clock that a test advances. Every test leaves a screenshot named after it in
``$ESSC_ARTIFACTS/browser`` (default: the system's temporary folder); with
``ESSC_SCREENSHOTS=docs/screenshots`` the README's screenshots are written there too.
"""
from __future__ import annotations

import os
import re
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest
from waitress import wasyncore
from waitress.server import create_server

from essc.mockserver.client import MockAdmin
from essc.service.api import create_app
from essc.service.channels import Channel, Channels
from essc.service.config import ServiceConfig
from essc.service.pages.launch import build_launch_url
from essc.service.runtime import Runtime

CHROMIUM = os.environ.get("ESSC_CHROMIUM", "/usr/bin/chromium")
CHANNEL, SECRET = "browser-test", "browser-test-secret"
RETURN = "https://channel.example/essc/return"
ARTIFACTS = Path(os.environ.get("ESSC_ARTIFACTS") or tempfile.gettempdir()) / "browser"
SCREENSHOTS = os.environ.get("ESSC_SCREENSHOTS")
MOBILE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 1, "locale": "zh-CN",
          "is_mobile": True, "has_touch": True}
DESKTOP = {"viewport": {"width": 1280, "height": 900}, "device_scale_factor": 1, "locale": "zh-CN"}


def pytest_configure(config):
    config.addinivalue_line("markers", "desktop: the browser test runs in a desktop-sized window")
    config.addinivalue_line("markers", "nojs: the browser test runs with JavaScript disabled")


def pytest_report_header(config):
    return f"browser: {CHROMIUM} (screenshots in {ARTIFACTS})"


@pytest.fixture(scope="session")
def chromium_path():
    if shutil.which(CHROMIUM) is None:
        reason = (f"Chromium not found at {CHROMIUM} (apt-get install chromium fonts-noto-cjk; "
                  "ESSC_CHROMIUM names another path)")
        if os.environ.get("ESSC_BROWSER") == "1":
            pytest.fail(f"ESSC_BROWSER=1 but {reason}", pytrace=False)
        pytest.skip(f"{reason}; set ESSC_BROWSER=1 to make this a failure")
    return CHROMIUM


@pytest.fixture(scope="session")
def browser(chromium_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=chromium_path, headless=True)
        yield chromium
        chromium.close()


class LiveServer:
    """A WSGI app on waitress in a thread: listening once constructed (the socket is bound and
    listens in create_server), stopped by :meth:`stop`."""

    def __init__(self, app, threads: int = 8) -> None:
        self._map: dict = {}
        self._server = create_server(app, host="127.0.0.1", port=0, threads=threads, map=self._map,
                                     ident="essc-browser-test")
        self.url = f"http://127.0.0.1:{self._server.effective_port}"
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="essc-live", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stopping.is_set():
            wasyncore.loop(timeout=0.5, map=self._map, use_poll=True, count=1)

    def stop(self) -> None:
        self._server.task_dispatcher.shutdown(cancel_pending=True, timeout=5)
        self._stopping.set()
        self._server.pull_trigger()
        self._thread.join(5)
        wasyncore.close_all(self._map)


@dataclass
class Live:
    url: str
    runtime: Runtime
    mock: MockAdmin
    app: object
    report_dir: Path

    def launch_url(self, citizen: dict, **kwargs) -> str:
        return build_launch_url(self.url, kwargs.pop("channel", CHANNEL), kwargs.pop("secret", SECRET),
                                id_number=citizen["id_number"], name=citizen["name"],
                                return_url=kwargs.pop("return_url", RETURN), **kwargs)


def channels() -> Channels:
    return Channels({CHANNEL: Channel(CHANNEL, api_key="browser-key", hmac_secret=SECRET, return_urls=(
        "https://channel.example/essc/",))})


@pytest.fixture
def live(tmp_path, registry, mock):
    # a real answer budget (city steps in the flow pool) and workers: the pages see 202s, pending
    # activations retried by the queue (every <= 1 s) and transitions made by other threads
    config = ServiceConfig(data_dir=tmp_path / "data", answer_budget_s=0.5, flow_threads=8, workers=2,
                           retry_base_s=0.2, retry_cap_s=1.0, lease_s=10.0, sweep_interval_s=0.2)
    runtime = Runtime(config, registry=registry)
    runtime.start_workers()
    app = create_app(runtime, {"CHANNELS": channels(), "PAGES_DEMO_HINTS": True,
                               "CONSOLE_REPORT_DIR": tmp_path / "contract-report"})
    server = LiveServer(app)
    yield Live(server.url, runtime, mock, app, tmp_path / "contract-report")
    server.stop()
    runtime.stop_workers()
    runtime.close()
    runtime.store.engine.dispose()


def _artifact_name(node) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", node.name)


@pytest.fixture
def page(browser, request):
    """A phone-sized page (a desktop one for tests marked ``desktop``, without JavaScript for
    tests marked ``nojs``); its screenshot is saved
    when the test ends (pass or fail). The channel's return URL is answered by a stand-in page."""
    options = dict(DESKTOP if request.node.get_closest_marker("desktop") else MOBILE)
    if request.node.get_closest_marker("nojs"):
        options["java_script_enabled"] = False
    context = browser.new_context(**options)
    context.set_default_timeout(15_000)
    tab = context.new_page()
    tab.route("https://channel.example/**", lambda route: route.fulfill(
        status=200, content_type="text/html; charset=utf-8",
        body="<!doctype html><html lang=zh-CN><title>渠道 App</title><h1>已回到渠道 App</h1></html>"))
    yield tab
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        tab.screenshot(path=str(ARTIFACTS / f"{_artifact_name(request.node)}.png"), full_page=True)
    finally:
        context.close()


def shot(page, name: str, full_page: bool = False) -> Path:
    """Save a named screenshot (an artifact; also a README screenshot with ESSC_SCREENSHOTS)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, Path(SCREENSHOTS) / f"{name}.png")
    return path
