"""The mock city systems: one Flask app that plays every city of docs/mock.md in the four
wire dialects of docs/dialects.md, with an admin API for modes, clock, faults and journal.

``create_app(config)`` builds the app; :mod:`essc.mockserver.serve` runs it (waitress).

Abuse limits (docs/mock.md "Limits"): request bodies above ``MAX_BODY_BYTES`` get the
dialect's own protocol error without being read, and the journal keeps the newest
``JOURNAL_MAX`` entries. Both can also come from the environment of ``essc mock``
(``ESSC_MOCK_MAX_BODY_BYTES``, ``ESSC_MOCK_JOURNAL_MAX``); an explicit config wins.
"""
from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from typing import Any

from flask import Flask
from flask.json.provider import DefaultJSONProvider

__all__ = ["DEFAULTS", "DEFAULT_SECRETS", "LIMIT_ENV", "create_app"]

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
    "JOURNAL_MAX": 10_000,  # a ring: the journal keeps the newest entries
    "MAX_BODY_BYTES": 256 * 1024,  # larger request bodies get the dialect's protocol error, unread
    "SECRETS": DEFAULT_SECRETS,
    #: play rest-json, pinyin-form and xml-envelope from their dialect specs instead of the
    #: hand-written modules (env ESSC_MOCK_SPEC_CITY_SIDES=1)
    "SPEC_CITY_SIDES": False,
}

#: Limits that the environment may set (for ``essc mock``): config key -> variable.
LIMIT_ENV = {"MAX_BODY_BYTES": "ESSC_MOCK_MAX_BODY_BYTES", "JOURNAL_MAX": "ESSC_MOCK_JOURNAL_MAX"}


class _JSONProvider(DefaultJSONProvider):
    """Flask's JSON, except that JSON nested too deeply for the parser is invalid JSON (a
    ``ValueError``, which ``request.get_json(silent=True)`` turns into ``None``), not a
    ``RecursionError`` that would end as a 500; and answers never fail to encode."""

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        """As Flask's, but a lone surrogate taken from a request (``"\\ud800"`` in JSON) and
        echoed in an answer is written escaped: it cannot be encoded as UTF-8 raw."""
        text = super().dumps(obj, **kwargs)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            text = super().dumps(obj, **{**kwargs, "ensure_ascii": True})
        return text

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        try:
            return super().loads(s, **kwargs)
        except RecursionError:
            raise ValueError("JSON nested too deeply") from None


def _limits(config: dict[str, Any]) -> None:
    """Take each limit from ``config``, else the environment, else DEFAULTS; check it."""
    for key, variable in LIMIT_ENV.items():
        value: Any = config.get(key)
        source = f"config {key}"
        if value is None and os.environ.get(variable, "").strip():
            value, source = os.environ[variable].strip(), variable
            try:
                value = int(value)
            except ValueError:
                raise ValueError(f"{source} must be an integer >= 1, not {value!r}") from None
        if value is None:
            value = DEFAULTS[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{source} must be an integer >= 1, not {value!r}")
        config[key] = value


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
    _limits(config)
    if "SPEC_CITY_SIDES" not in config and os.environ.get("ESSC_MOCK_SPEC_CITY_SIDES", "").strip() in ("1", "true"):
        config["SPEC_CITY_SIDES"] = True
    app.config.from_mapping(config)
    app.config["SECRETS"] = secrets
    # werkzeug's own bound on streamed bodies, behind the dialects' check (dialects/__init__.py)
    app.config["MAX_CONTENT_LENGTH"] = app.config["MAX_BODY_BYTES"]
    app.json = _JSONProvider(app)
    app.json.ensure_ascii = False  # Chinese names and messages stay readable

    from . import admin
    from .dialects import register_dialects
    from .state import STATE_KEY, MockState

    app.extensions[STATE_KEY] = MockState(app.config)
    app.register_blueprint(admin.bp)
    register_dialects(app)
    return app
