"""The HTTP API of the activation service (Flask app factory).

    from essc.service.runtime import Runtime
    from essc.service.api import create_app

    app = create_app(Runtime())                 # WSGI app, e.g. waitress.serve(app)

Routes (schemas/openapi.json is the reference): ``POST /v1/activations``,
``GET /v1/activations/<id>``, ``DELETE /v1/activations/<id>``, ``POST
/v1/activations/<id>/qrcode``, ``POST /v1/activations/<id>/payment``, ``POST
/v1/activations/<id>/password``, ``GET /v1/adapters`` (channel credentials required);
``POST /v1/login-sessions/<code>/confirm`` (channel); ``POST /v1/qrcode/verify``,
``POST /v1/login-sessions``, ``GET /v1/login-sessions/<id>``, ``POST /v1/settlements``,
``GET /v1/settlements/<id>``, ``POST /v1/settlements/<id>/confirm``, ``POST
/v1/settlements/<id>/reverse`` (relying-party credentials);
``GET /v1/cities?q=``, ``GET /healthz``, ``GET /metrics``, ``GET /v1/openapi.json`` (public);
the OpenID Connect provider: ``GET /.well-known/openid-configuration``, ``GET /oidc/jwks.json``,
``GET /oidc/authorize``, ``POST /oidc/token``, ``GET|POST /oidc/userinfo``.

``config`` keys (all optional):

* ``CHANNELS`` - a ready :class:`essc.service.channels.Channels` (wins over the file);
* ``CHANNELS_FILE`` - path of the channels TOML file; default ``runtime.config.channels_file``,
  else the packaged demo-only ``service/channels.default.toml``;
* ``RELYING_PARTIES`` - a ready :class:`essc.service.relying.RelyingParties` (wins over the
  ``[relying_parties.*]`` tables of the channels file);
* ``AUTH_MAX_SKEW_S`` - allowed clock skew of signed requests, seconds (default 300);
* ``NONCE_STORE`` / ``NONCE_URL`` - a ready nonce store / a Redis URL for the nonces of signed
  requests (default: the Redis ``queue_url``, else the service database; essc.service.nonces);
* ``AUTH_THROTTLE`` / ``AUTH_FAILURE_LIMIT`` / ``AUTH_FAILURE_WINDOW_S`` - a ready throttle
  (False: none) / failed authentications per channel name or address (default 10, 0: off) /
  per window in seconds (default 60) before 429 (essc.service.throttle);
* ``MAX_CONTENT_LENGTH`` - largest request body in bytes (default 64 KiB; larger gets 413);
* ``PAGES_SESSION_MINUTES`` / ``PAGES_DEMO_HINTS`` - the citizen's pages and the console
  (essc.service.pages): page session length / show the mock's codes on the identity step;
* any other Flask setting (``TESTING``...).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Flask

__all__ = ["create_app", "ApiState", "MAX_BODY"]

MAX_BODY = 64 * 1024


@dataclass
class ApiState:
    """What the views need; ``app.extensions["essc"]``."""

    runtime: Any  # essc.service.runtime.Runtime
    channels: Any  # essc.service.channels.Channels
    cities: Any  # essc.service.cities.CityDirectory: the country's cities, their status, search
    metrics: Any  # essc.service.metrics.ApiMetrics
    nonces: Any = None  # essc.service.nonces store: nonces of accepted signatures
    throttle: Any = None  # essc.service.throttle.FailureThrottle, None when disabled
    relying_parties: Any = None  # essc.service.relying.RelyingParties
    qrcodes: Any = None  # essc.service.qrcodes.QrCodes: the citizen's dynamic codes
    logins: Any = None  # essc.service.login.LoginSessions: portals' scan logins
    oidc: Any = None  # essc.service.oidc.Provider: the OpenID Connect provider over the scan login


def create_app(runtime, config: dict | None = None) -> Flask:
    """Build the API application around ``runtime`` (an essc.service.runtime.Runtime)."""
    from ..channels import MAX_SKEW_S, Channels
    from ..cities import CityDirectory
    from ..login import LoginSessions
    from ..metrics import ApiMetrics
    from ..nonces import build_nonce_store
    from ..oidc import Provider
    from ..pages import init_pages
    from ..qrcodes import QrCodes
    from ..relying import RelyingParties
    from ..throttle import build_throttle
    from . import activations, launch_tickets, login, oidc, payment, public, qrcode, settlements
    from .errors import register_error_handlers
    from .validation import component_validator

    # explicit paths: Flask cannot find an instance folder of an editable namespace package
    here = Path(__file__).resolve().parent
    app = Flask(__name__, root_path=str(here), instance_path=str(here / "instance"))
    app.config.update(MAX_CONTENT_LENGTH=MAX_BODY, AUTH_MAX_SKEW_S=MAX_SKEW_S, CHANNELS=None, CHANNELS_FILE=None,
                      RELYING_PARTIES=None)
    app.config.update(config or {})
    app.json.ensure_ascii = False  # type: ignore[attr-defined]  # DefaultJSONProvider's; 杭州, not \u676d\u5dde

    channels = app.config["CHANNELS"] or Channels.load(
        app.config["CHANNELS_FILE"] or runtime.config.channels_file, max_skew_s=app.config["AUTH_MAX_SKEW_S"])
    parties = app.config["RELYING_PARTIES"] or RelyingParties.load(
        app.config["CHANNELS_FILE"] or runtime.config.channels_file, max_skew_s=app.config["AUTH_MAX_SKEW_S"],
        channels=channels)
    component_validator("ActivationRequest")  # a broken OpenAPI document fails at start-up, not per request
    runtime.callbacks.channels = channels  # callbacks are signed with the secrets this API knows
    app.extensions["essc"] = ApiState(runtime=runtime, channels=channels,
                                      cities=CityDirectory(runtime.registry), metrics=ApiMetrics(runtime),
                                      nonces=build_nonce_store(runtime, app.config),
                                      throttle=build_throttle(runtime, app.config),
                                      relying_parties=parties, qrcodes=QrCodes(runtime),
                                      logins=LoginSessions(runtime))
    state = app.extensions["essc"]
    state.oidc = Provider(app, runtime, parties, state.logins)

    app.register_blueprint(activations.bp)
    app.register_blueprint(public.bp)
    app.register_blueprint(qrcode.bp)
    app.register_blueprint(launch_tickets.bp)
    app.register_blueprint(login.bp)
    app.register_blueprint(oidc.bp)
    app.register_blueprint(payment.bp)
    app.register_blueprint(settlements.bp)
    register_error_handlers(app)
    init_pages(app, runtime)
    return app
