"""The mock city systems: one Flask app that plays every city of docs/mock.md in the four
wire dialects of docs/dialects.md, with an admin API for modes, clock, faults and journal.

``create_app(config)`` builds the app; :mod:`essc.mockserver.serve` runs it (waitress).
"""
from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from typing import Any

from flask import Flask

__all__ = ["DEFAULTS", "DEFAULT_SECRETS", "create_app"]

#: Mock-wide demo credentials per dialect (docs/dialects.md); plugins take them as defaults.
DEFAULT_SECRETS: dict[str, dict[str, str]] = {
    "rest-json": {"token": "mock-rest-token"},
    "pinyin-form": {"appid": "essc-mock", "secret": "mock-hmac-secret"},
    "xml-envelope": {"sender_id": "essc-mock", "key": "mock-xml-key"},
    "gm-json": {"app_id": "essc-mock", "sm4_key": "essc-mock-sm4key", "sm3_secret": "mock-gm-secret"},
}

DEFAULTS: dict[str, Any] = {
    "SEED": 20261125,
    "CITIZENS_PER_CITY": 12,
    "CLOCK_MODE": "realtime",  # or "frozen"
    "CITIES_FILE": None,  # None = the packaged cities.json
    "HANG_S_DEFAULT": 30,
    "JOURNAL_MAX": 100_000,  # the journal keeps the newest entries
    "SECRETS": DEFAULT_SECRETS,
}


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """The mock app: DEFAULTS, then ``config`` (``SECRETS`` merge per dialect), then blueprints."""
    # An explicit instance path: Flask cannot find one for the namespace package ``essc`` of an
    # editable install (the mock keeps nothing there anyway).
    app = Flask(__name__, instance_path=os.path.join(os.path.dirname(os.path.abspath(__file__)), "instance"))
    app.config.from_mapping(copy.deepcopy(DEFAULTS))
    config = dict(config or {})
    secrets = copy.deepcopy(DEFAULT_SECRETS)
    for dialect, values in (config.pop("SECRETS", None) or {}).items():
        secrets.setdefault(dialect, {}).update(values)
    app.config.from_mapping(config)
    app.config["SECRETS"] = secrets
    app.json.ensure_ascii = False  # Chinese names and messages stay readable

    from . import admin
    from .dialects import register_dialects
    from .state import STATE_KEY, MockState

    app.extensions[STATE_KEY] = MockState(app.config)
    app.register_blueprint(admin.bp)
    register_dialects(app)
    return app
