"""The two-step activation: ``POST /v1/activations``, ``POST /v1/activations/<id>/verification``,
``GET /v1/activations/<id>``.

Submission (consent + city + who): 201 ``awaiting_verification`` when the card record was
read, 202 while pending (retried by the queue), 200 with the final status (not opened,
abnormal card, already activated...). Never a credential.

Verification (face token + SMS code or password): 201 with the credential when the check
passed and the credential was issued in this request; 202 if the city could not issue it yet
(the channel reads it later); a typed error otherwise (``IDENTITY_MISMATCH`` with
``attempts_left``, ``IDENTITY_LOCKED`` with ``retry_after``...).

Reading: only the channel holding the activation sees it (credential included); any other
channel gets 404, exactly as for an id that does not exist.
"""
from __future__ import annotations

import re
import time

from flask import Blueprint, current_app, g, jsonify, request, url_for

from essc.core.errors import EsscError
from essc.core.naming import with_deprecated

from .. import states
from ..runtime import process_owner_prefix
from .auth import require_channel
from .errors import BadRequest, NotFound
from .validation import validated_body

bp = Blueprint("activations", __name__)

_ID = re.compile(r"^[0-9a-f]{32}$")
_AUDIT_FIELDS = ("at", "event", "status", "detail")  # not "actor": worker host names are internals
#: how often a long-poll re-reads an activation whose step another process may run (seconds)
REREAD_S = 1.0


def _submission_status(act: dict) -> int:
    if act["status"] == states.AWAITING_VERIFICATION:
        return 201
    return 200 if act["status"] in states.FINAL else 202


def _located(view: dict, status: int):
    response = jsonify(view)
    response.status_code = status
    response.headers["Location"] = url_for("activations.get_activation", act_id=view["id"])
    return response


def _own_activation_id(act_id: str) -> str:
    if not _ID.match(act_id):
        raise NotFound("no activation with this id")
    return act_id


@bp.post("/v1/activations")
@require_channel
def submit_activation():
    state = current_app.extensions["essc"]
    try:
        data = validated_body(request, "ActivationRequest")
        callback = data.get("callback_url")
        if callback is not None:
            channel = state.channels.channels.get(g.channel)
            if channel is None or not channel.hmac_secret:
                raise BadRequest("a callback is signed with the channel's HMAC secret: this channel has none",
                                 field="$.callback_url", rule="channel-secret")
        act = state.runtime.service.submit(city=data["city"], id_number=data["id_number"], name=data["name"],
                                           consent=data["consent"], channel=g.channel)
        if callback is not None:
            state.runtime.callbacks.register(act["id"], callback)
            state.runtime.announce(act["id"])  # it may have come to rest already
    except EsscError as err:
        state.metrics.count_submission(err.code.lower())
        raise
    state.metrics.count_submission(act["status"])
    return _located(state.runtime.service.view(act), _submission_status(act))


@bp.post("/v1/activations/<act_id>/verification")
@require_channel
def verify_activation(act_id: str):
    state = current_app.extensions["essc"]
    service = state.runtime.service
    data = validated_body(request, "VerificationRequest")
    try:
        act, credential = service.verify(_own_activation_id(act_id), channel=g.channel,
                                         face_token=data["face_token"], sms_code=data.get("sms_code"),
                                         password=data.get("password"))
    except EsscError as err:
        state.metrics.count_verification(err.code.lower())
        raise
    state.metrics.count_verification(act["status"])
    view = service.view(act)
    if credential is not None:
        view["credential"] = with_deprecated("credential", credential)  # 1.0 names too, for channels
        return _located(view, 201)
    return _located(view, 200 if act["status"] in states.FINAL else 202)


def _wait_seconds(cap: float) -> float:
    """The ``wait`` query parameter: seconds a long-poll may wait (0 when absent)."""
    raw = request.args.get("wait")
    if raw is None:
        return 0.0
    try:
        wait = float(raw)
    except ValueError:
        wait = -1.0
    if not 0 <= wait <= cap or wait != wait:
        raise BadRequest(f"wait must be a number of seconds between 0 and {cap:g}", field="wait", rule="range")
    return wait


def _in_motion(act: dict) -> bool:
    """Is the activation about to change by itself (a city step queued or running)?"""
    if act["status"] in states.RUNNABLE:
        return True
    return act["status"] == states.AWAITING_VERIFICATION and (act["lease_until"] or 0) > time.time()


@bp.get("/v1/activations/<act_id>")
@require_channel
def get_activation(act_id: str):
    """The activation; with ``?wait=S`` a long-poll: while a city step is queued or running, the
    answer waits (at most S seconds, capped by ``max_wait_s``) for its next transition."""
    runtime = current_app.extensions["essc"].runtime
    wait = _wait_seconds(runtime.config.max_wait_s)
    changes, act_id = runtime.store.changes, _own_activation_id(act_id)
    seen = changes.version(act_id)
    act = runtime.store.get(act_id)
    if act is None or act["channel"] != g.channel:
        raise NotFound("no activation with this id")
    deadline = time.monotonic() + wait
    start = (act["status"], act["error"])  # a claim changes neither: only a transition ends the wait
    mine = process_owner_prefix()
    while (act["status"], act["error"]) == start and _in_motion(act) and time.monotonic() < deadline:
        # a step this process runs wakes the wait with its transition (an event); a step queued for
        # any worker, or run by another process, is seen by re-reading the row every REREAD_S
        local = (act["lease_owner"] or "").startswith(mine)
        left = deadline - time.monotonic()
        changes.wait(act_id, seen, left if local else min(left, REREAD_S))
        seen = changes.version(act_id)
        act = runtime.store.get(act_id)
    view = runtime.service.view(act, credential=True)
    view["audit"] = [{k: event.get(k) for k in _AUDIT_FIELDS} for event in runtime.store.audit(act_id)]
    return jsonify(view)
