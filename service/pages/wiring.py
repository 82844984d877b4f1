"""Wiring of the pages into the service's Flask app (called by essc.service.api.create_app).

The session is a signed cookie per area (essc.service.pages.cookies) keyed by a secret
derived from the service secret (every API process of a deployment derives the same one);
``PAGES_SESSION_MINUTES`` (default 30) bounds a page session. CSRF (Flask-WTF) is checked
by the page blueprints only: the JSON API's callers sign their requests.
"""
from __future__ import annotations

import hashlib
import os
from datetime import timedelta

from flask import Blueprint, Flask

from ..nonces import REDIS_SCHEMES
from ..throttle import FailureThrottle, RedisCounters
from . import console, h5
from .common import csrf
from .cookies import AreaSessionInterface
from .dashboard import HealthBoard
from .operators import Operators

#: routes of the pages that answer JSON (documented in schemas/openapi.json); the others are pages
JSON_ENDPOINTS = frozenset({"h5.activation_state", "h5.qrcode_json"})
PAGE_BLUEPRINTS = ("h5", "console", "pages")

assets = Blueprint("pages", __name__, static_folder="static", static_url_path="/static/essc")


def init_pages(app: Flask, runtime) -> None:
    """Register the citizen's pages (``/h5``), the operator console (``/console``) and their
    assets on the service's app. Config keys: ``OPERATORS`` (a ready Operators, else the file
    ``runtime.config.operators_file``, else the packaged demo operator), ``CONSOLE_REPORT_DIR``
    (else ``runtime.config.contract_report_dir``), ``CONSOLE_LOGIN_LIMIT`` (else
    ``ESSC_CONSOLE_LOGIN_LIMIT``, 5; negative: off) / ``CONSOLE_LOGIN_WINDOW_S`` (else
    ``ESSC_CONSOLE_LOGIN_WINDOW_S``, 300), ``CONSOLE_SESSION_HOURS`` (8)."""
    secret = runtime.config.resolved_secret()
    app.secret_key = hashlib.sha256(("essc-pages-session:" + secret).encode()).hexdigest()
    app.config.setdefault("PAGES_SESSION_MINUTES", 30)
    app.config["PERMANENT_SESSION_LIFETIME"] = timedelta(minutes=float(app.config["PAGES_SESSION_MINUTES"]))
    app.config.setdefault("SESSION_COOKIE_SAMESITE", "Lax")
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    app.config.setdefault("WTF_CSRF_CHECK_DEFAULT", False)  # the page blueprints check it themselves
    app.config.setdefault("WTF_CSRF_TIME_LIMIT", None)  # valid as long as the page session
    app.session_interface = AreaSessionInterface()
    csrf.init_app(app)
    app.config.setdefault("CONSOLE_SESSION_HOURS", 8)
    app.extensions["essc_console"] = console.ConsoleState(
        operators=app.config.get("OPERATORS") or Operators.load(runtime.config.operators_file),
        throttle=_login_throttle(runtime, app.config), health=HealthBoard(),
        report_dir=app.config.get("CONSOLE_REPORT_DIR") or runtime.config.contract_report_dir)
    app.register_blueprint(h5.bp)
    app.register_blueprint(console.bp)
    app.register_blueprint(assets)


def _login_throttle(runtime, config) -> FailureThrottle | None:
    """Failed console logins per operator name and address (Redis counters when the queue is Redis,
    so that every API process counts alike)."""
    limit = int(config.get("CONSOLE_LOGIN_LIMIT") or os.environ.get("ESSC_CONSOLE_LOGIN_LIMIT") or 5)
    if limit <= 0:
        return None
    window = float(config.get("CONSOLE_LOGIN_WINDOW_S") or os.environ.get("ESSC_CONSOLE_LOGIN_WINDOW_S") or 300)
    url = runtime.config.queue_url
    if url and str(url).startswith(REDIS_SCHEMES):
        counters = RedisCounters(str(url), prefix=f"{runtime.config.queue_name}:consolefail:")
        return FailureThrottle(limit, window, counters, key_secret=runtime.config.resolved_secret().encode())
    return FailureThrottle(limit, window)


def page_routes(app: Flask) -> set[str]:
    """The URL rules of the pages that answer HTML (or static files): not part of the JSON API."""
    return {rule.rule for rule in app.url_map.iter_rules()
            if rule.endpoint.split(".")[0] in PAGE_BLUEPRINTS and rule.endpoint not in JSON_ENDPOINTS}
