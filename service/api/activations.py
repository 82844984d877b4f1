"""``POST /v1/activations`` and ``GET /v1/activations/<id>``.

Status codes (documented in schemas/openapi.json): 201 activated by this request, 202 not
final yet, 200 final - an activation that already existed and is activated (the same
credential again) or a final failure of the flow, whose typed error object is under
``"error"``. A request the service refuses (invalid input...) gets the error's HTTP status.
"""
from __future__ import annotations

import re
import time

from flask import Blueprint, current_app, g, jsonify, request, url_for

from essc.core.errors import EsscError

from .. import states
from .auth import require_channel
from .errors import NotFound
from .validation import json_body, validate

bp = Blueprint("activations", __name__)

_ID = re.compile(r"^[0-9a-f]{32}$")
_AUDIT_FIELDS = ("at", "event", "status", "detail")  # not "actor": worker host names are internals


def _status_code(act: dict, started: float) -> int:
    if act["status"] == states.ACTIVATED:
        return 201 if act["updated_at"] >= started else 200  # activated now, or already before
    return 200 if act["status"] in states.FINAL else 202


@bp.post("/v1/activations")
@require_channel
def submit_activation():
    state = current_app.extensions["essc"]
    try:
        data = json_body(request)
        validate("ActivationRequest", data)
        verification = data["verification"]
        started = time.time()
        act = state.runtime.service.submit(
            city=data["city"], id_number=data["id_number"], name=data["name"], consent=data["consent"],
            channel=g.channel, face_token=verification["face_token"], sms_code=verification.get("sms_code"),
            password=verification.get("password"))
    except EsscError as err:
        state.metrics.count_submission(err.code.lower())
        raise
    state.metrics.count_submission(act["status"])
    response = jsonify(state.runtime.service.view(act))
    response.status_code = _status_code(act, started)
    response.headers["Location"] = url_for("activations.get_activation", act_id=act["id"])
    return response


@bp.get("/v1/activations/<act_id>")
@require_channel
def get_activation(act_id: str):
    runtime = current_app.extensions["essc"].runtime
    act = runtime.store.get(act_id) if _ID.match(act_id) else None
    if act is None:
        raise NotFound("no activation with this id")
    view = runtime.service.view(act)
    view["audit"] = [{k: event.get(k) for k in _AUDIT_FIELDS} for event in runtime.store.audit(act_id)]
    return jsonify(view)
