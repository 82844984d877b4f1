"""The page sessions: Flask's signed cookie session, one cookie per area.

The citizen's pages (``/h5``) and the operator console (``/console``) each get their own
cookie (``essc_h5`` on path ``/h5``, ``essc_console`` on path ``/console``), so that logging in
as an operator and activating as a citizen in the same browser never mix. Cookies are
HttpOnly, SameSite=Lax, signed with a key derived from the service secret, and Secure when
the request came over https (``request.is_secure``; behind a TLS-terminating proxy, set
``SESSION_COOKIE_SECURE`` or make the proxy's scheme visible, e.g. werkzeug's ProxyFix).
The cookie is signed, not encrypted: personal data in it is sealed first (the views do).
"""
from __future__ import annotations

from flask import Flask, request
from flask.sessions import SecureCookieSessionInterface

AREAS = {"/h5": "essc_h5", "/console": "essc_console"}


def _area() -> str | None:
    path = request.path
    for prefix in AREAS:
        if path == prefix or path.startswith(prefix + "/"):
            return prefix
    return None


class AreaSessionInterface(SecureCookieSessionInterface):
    """One signed cookie per area (see the module doc); no session outside the areas."""

    salt = "essc-pages-session"

    def get_cookie_name(self, app: Flask) -> str:
        area = _area()
        return AREAS[area] if area else app.config["SESSION_COOKIE_NAME"]

    def get_cookie_path(self, app: Flask) -> str:
        return _area() or super().get_cookie_path(app)

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config["SESSION_COOKIE_SECURE"]) or request.is_secure

    def get_cookie_samesite(self, app: Flask) -> str:
        return app.config["SESSION_COOKIE_SAMESITE"] or "Lax"

    def open_session(self, app, request):
        if _area() is None:  # the JSON API never has a session
            return self.null_session_class()
        return super().open_session(app, request)
