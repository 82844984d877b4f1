"""Wiring of the pages into the service's Flask app (called by essc.service.api.create_app).

The session is a signed cookie per area (essc.service.pages.cookies) keyed by a secret
derived from the service secret (every API process of a deployment derives the same one);
``PAGES_SESSION_MINUTES`` (default 30) bounds a page session. CSRF (Flask-WTF) is checked
by the page blueprints only: the JSON API's callers sign their requests.
"""
from __future__ import annotations

import hashlib
from datetime import timedelta

from flask import Blueprint, Flask

from . import h5
from .common import csrf
from .cookies import AreaSessionInterface

#: routes of the pages that answer JSON (documented in schemas/openapi.json); the others are pages
JSON_ENDPOINTS = frozenset({"h5.activation_state"})
PAGE_BLUEPRINTS = ("h5", "console", "pages")

assets = Blueprint("pages", __name__, static_folder="static", static_url_path="/static/essc")


def init_pages(app: Flask, runtime) -> None:
    """Register the citizen's pages (``/h5``) and their assets on the service's app."""
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
    app.register_blueprint(h5.bp)
    app.register_blueprint(assets)


def page_routes(app: Flask) -> set[str]:
    """The URL rules of the pages that answer HTML (or static files): not part of the JSON API."""
    return {rule.rule for rule in app.url_map.iter_rules()
            if rule.endpoint.split(".")[0] in PAGE_BLUEPRINTS and rule.endpoint not in JSON_ENDPOINTS}
