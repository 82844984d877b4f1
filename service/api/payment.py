"""Payment and the e-SSC password (the channel holding the activation): ``POST
/v1/activations/<id>/payment`` (face + e-SSC password: sign level 2, the bank account named
masked) and ``POST /v1/activations/<id>/password`` (face + SMS code: a new password set at the
city). See essc.service.payment."""
from __future__ import annotations

from flask import Blueprint, current_app, g, request

from ..payment import enable_payment, reset_password
from .activations import _own_activation_id
from .auth import require_channel
from .responses import no_store
from .validation import validated_body

bp = Blueprint("payment", __name__)


@bp.post("/v1/activations/<act_id>/payment")
@require_channel
def enable(act_id: str):
    state = current_app.extensions["essc"]
    data = validated_body(request, "PaymentRequest")
    answer = enable_payment(state.runtime.service, _own_activation_id(act_id), g.channel,
                            face_token=data["face_token"], password=data["password"])
    return no_store(answer)


@bp.post("/v1/activations/<act_id>/password")
@require_channel
def reset(act_id: str):
    state = current_app.extensions["essc"]
    data = validated_body(request, "PasswordResetRequest")
    answer = reset_password(state.runtime.service, _own_activation_id(act_id), g.channel,
                            face_token=data["face_token"], sms_code=data["sms_code"],
                            new_password=data["new_password"])
    return no_store(answer)
