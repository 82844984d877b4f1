"""The e-SSC in use, codes and bindings: ``POST /v1/activations/<id>/qrcode`` (the channel
holding the activation: a fresh dynamic code), ``POST /v1/qrcode/verify`` (a relying party:
whose code is it?), ``DELETE /v1/activations/<id>`` (the channel unlinks its binding).
See essc.service.qrcodes and essc.service.bindings."""
from __future__ import annotations

from flask import Blueprint, current_app, g, jsonify, request

from ..bindings import unlink
from .activations import _own_activation_id
from .auth import require_channel, require_relying_party
from .responses import no_store
from .validation import validated_body

bp = Blueprint("qrcode", __name__)


@bp.post("/v1/activations/<act_id>/qrcode")
@require_channel
def issue_qrcode(act_id: str):
    state = current_app.extensions["essc"]
    return no_store(state.qrcodes.issue(_own_activation_id(act_id), g.channel), 201)


@bp.post("/v1/qrcode/verify")
@require_relying_party
def verify_qrcode():
    state = current_app.extensions["essc"]
    data = validated_body(request, "QrCodeVerifyRequest")
    verified = state.qrcodes.verify(data["qrcode"], data["busi_type"], g.relying_party)
    return no_store(verified.view)


@bp.delete("/v1/activations/<act_id>")
@require_channel
def unlink_activation(act_id: str):
    state = current_app.extensions["essc"]
    act = unlink(state.runtime, state.qrcodes, _own_activation_id(act_id), g.channel)
    return jsonify(state.runtime.service.view(act))
