"""The OpenID Connect provider's routes (essc.service.oidc): discovery, JWKS, the authorization
page (which shows the scan-login code and polls), token and userinfo."""
from __future__ import annotations

from urllib.parse import urlencode

from authlib.oauth2 import OAuth2Error
from flask import Blueprint, current_app, jsonify, render_template_string, request

from ..login import CONFIRMED, DELIVERED, EXPIRED
from ..oidc import PAGE_PARAMS, PortalUser
from ..use_errors import LoginSessionNotFound
from .responses import no_store

bp = Blueprint("oidc", __name__)

#: how often the authorization page reloads itself while it waits for the citizen (seconds)
POLL_S = 2

PAGE = """<!doctype html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="{{ poll_s }};url={{ poll_url }}">
<title>电子社保卡扫码登录 · e-SSC login</title>
<style>body{font-family:sans-serif;max-width:28rem;margin:2rem auto;text-align:center}
code{display:block;font-size:.9rem;word-break:break-all;padding:1rem;border:1px solid #999}</style>
</head>
<body>
<h1>电子社保卡扫码登录</h1>
<p>{{ portal }}</p>
<p>请使用电子社保卡渠道扫描并确认登录 · Scan and confirm this login code in your e-SSC app:</p>
<code id="login-code" data-login-code="{{ login_code }}">{{ login_code }}</code>
<p id="status" data-status="pending">等待确认 · waiting for your confirmation (valid {{ ttl }} s)</p>
<p><a id="poll" href="{{ poll_url }}">刷新 · refresh</a></p>
</body>
</html>
"""


def _provider():
    return current_app.extensions["essc"].oidc


def _page(grant, session_id: str, code: str, ttl: float):
    args = [(k, v) for k, values in request.args.lists() for v in values if k not in PAGE_PARAMS]
    poll_url = request.path + "?" + urlencode(args + [("login_session", session_id), ("login_code", code)])
    party = grant.client.party
    html = render_template_string(PAGE, poll_s=POLL_S, poll_url=poll_url, login_code=code, ttl=int(ttl),
                                  portal=party.description or party.name)
    return html, 200, {"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store"}


def _not_ascii(*multidicts) -> str | None:
    """The first parameter whose name or value is not printable ASCII (OAuth 2.0 parameters are
    ASCII; Authlib cannot even word an error about one that is not: it raises ValueError)."""
    for params in multidicts:
        for key, values in params.lists():
            if not all(v.isascii() and v.isprintable() for v in [key, *values]):
                return key if key.isascii() and key.isprintable() else "?"
    return None


def _oauth_error(description: str, status: int = 400):
    return no_store({"error": "invalid_request", "error_description": description}, status)


@bp.get("/.well-known/openid-configuration")
def discovery():
    return jsonify(_provider().discovery())


@bp.get("/oidc/jwks.json")
def jwks():
    return jsonify(_provider().jwks())


@bp.get("/oidc/authorize")
def authorize():
    """Validate the portal's request (client, exact redirect_uri, scope, nonce, PKCE S256), then
    show the scan-login code; once the citizen confirmed it, redirect with an authorization code."""
    state = current_app.extensions["essc"]
    provider = state.oidc
    bad = _not_ascii(request.args)
    if bad is not None:
        return _oauth_error(f"parameter {bad} must be printable ASCII")
    try:
        grant = provider.server.get_consent_grant(end_user=None)
    except OAuth2Error as error:  # to the portal when its redirect_uri was validated, else 400 here
        return provider.server.handle_error_response(None, error)
    request_hash = provider.request_hash(request.args)
    session_id, code = request.args.get("login_session"), request.args.get("login_code")
    if not session_id or not code:
        opened = state.logins.open(grant.client.party, request_hash=request_hash)
        return _page(grant, opened["session_id"], opened["login_code"], opened["ttl_s"])
    try:
        status, act, confirmed_at = state.logins.take(session_id, code, grant.client.client_id, request_hash)
    except LoginSessionNotFound:
        return _oauth_error("no login session for this authorization request: start again")
    if status == CONFIRMED and act is not None:
        user = PortalUser(act["id"], grant.client.client_id, confirmed_at)
        return provider.server.create_authorization_response(grant=grant, grant_user=user)
    if status == EXPIRED:  # to the portal: access_denied (the citizen did not confirm in time)
        return provider.server.create_authorization_response(grant=grant, grant_user=None)
    if status == DELIVERED:
        return _oauth_error("this login was completed already: start again")
    return _page(grant, session_id, code, state.logins.ttl_s)


@bp.post("/oidc/token")
def token():
    bad = _not_ascii(request.args, request.form)
    if bad is not None:
        return _oauth_error(f"parameter {bad} must be printable ASCII")
    return _provider().server.create_token_response()


@bp.route("/oidc/userinfo", methods=["GET", "POST"])
def userinfo():
    return _provider().server.create_endpoint_response("userinfo")
