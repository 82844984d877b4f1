"""Scan login for portals (essc.service.login): ``POST /v1/login-sessions`` and
``GET /v1/login-sessions/<id>`` (the portal, a relying party), ``POST
/v1/login-sessions/<code>/confirm`` (the citizen's channel)."""
from __future__ import annotations

import re

from flask import Blueprint, current_app, g, request

from ..use_errors import LoginSessionNotFound
from .auth import require_channel, require_relying_party
from .responses import no_store
from .validation import validated_body

bp = Blueprint("login", __name__)

_ID = re.compile(r"^[0-9a-f]{32}$")
_CODE = re.compile(r"^essl1\.[A-Za-z0-9_-]{43}$")


@bp.post("/v1/login-sessions")
@require_relying_party
def open_login_session():
    return no_store(current_app.extensions["essc"].logins.open(g.relying_party), 201)


@bp.get("/v1/login-sessions/<session_id>")
@require_relying_party
def poll_login_session(session_id: str):
    if not _ID.match(session_id):
        raise LoginSessionNotFound("no login session with this id for this portal")
    return no_store(current_app.extensions["essc"].logins.poll(session_id, g.relying_party))


@bp.post("/v1/login-sessions/<code>/confirm")
@require_channel
def confirm_login_session(code: str):
    state = current_app.extensions["essc"]
    data = validated_body(request, "LoginConfirmation")
    if not _CODE.match(code):
        raise LoginSessionNotFound("no login session with this code")
    answer = state.logins.confirm(code, channel=g.channel, activation_id=data["activation_id"],
                                  face_token=data["face_token"], sms_code=data.get("sms_code"),
                                  password=data.get("password"), parties=state.relying_parties)
    return no_store(answer)
