"""Medical settlement by a relying party (a hospital or pharmacy): ``POST /v1/settlements``
(scan the citizen's code, pre-settle the bill at the citizen's city: fund share and self-pay),
``GET /v1/settlements/<id>``, ``POST /v1/settlements/<id>/confirm`` and ``.../reverse``. Only the
party that created a settlement sees it (any other: 404). See essc.service.settlements.

Answers: the settlement (``SettlementView``): **201** pre-settled by this request, **200** as it
stands (a replay of the idempotency key, a confirm, a reverse, a read), **202** while a leg is
pending at the city (the queue retries it; read it again). When the platform failed or reversed
the bill, the request answers why - the typed error (``PAYMENT_NOT_ENABLED``,
``CARD_STATUS_ABNORMAL``, ``SETTLEMENT_ABORTED``...) with ``details.settlement_id`` and
``details.settlement_state`` (a read always answers the settlement, the error in it).
"""
from __future__ import annotations

import re

from flask import Blueprint, current_app, g, jsonify, request, url_for

from .. import settlement_store as st
from .auth import require_relying_party
from .errors import NotFound
from .validation import validated_body

bp = Blueprint("settlements", __name__)

_ID = re.compile(r"^[0-9a-f]{32}$")
_EVENT_FIELDS = ("at", "event", "state", "detail")


def _id(sid: str) -> str:
    if not _ID.match(sid):
        raise NotFound("no settlement with this id")
    return sid


def _answer(row: dict, status: int | None = None, *, replayed: bool = False):
    settlements = current_app.extensions["essc"].runtime.settlements
    failure = settlements.failure(row)
    if failure is not None:
        raise failure
    response = jsonify(settlements.view(row))
    response.status_code = 202 if row["state"] in st.LEGS else (status or 200)
    response.headers["Location"] = url_for("settlements.get_settlement", sid=row["id"])
    response.headers["Cache-Control"] = "no-store"
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


@bp.post("/v1/settlements")
@require_relying_party
def create_settlement():
    state = current_app.extensions["essc"]
    data = validated_body(request, "SettlementRequest")
    row, created = state.runtime.settlements.create(g.relying_party, data, state.qrcodes)
    return _answer(row, 201 if created and row["state"] == st.PRE_SETTLED else 200, replayed=not created)


@bp.get("/v1/settlements/<sid>")
@require_relying_party
def get_settlement(sid: str):
    settlements = current_app.extensions["essc"].runtime.settlements
    row = settlements.get(g.relying_party, _id(sid))
    view = settlements.view(row)
    view["audit"] = [{k: event.get(k) for k in _EVENT_FIELDS} for event in settlements.store.events(row["id"])]
    response = jsonify(view)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/v1/settlements/<sid>/confirm")
@require_relying_party
def confirm_settlement(sid: str):
    row = current_app.extensions["essc"].runtime.settlements.confirm(g.relying_party, _id(sid))
    return _answer(row)


@bp.post("/v1/settlements/<sid>/reverse")
@require_relying_party
def reverse_settlement(sid: str):
    settlements = current_app.extensions["essc"].runtime.settlements
    row = settlements.reverse(g.relying_party, _id(sid))
    response = jsonify(settlements.view(row))  # a reversal answers the settlement, whatever undid it
    response.status_code = 202 if row["state"] in st.LEGS else 200
    response.headers["Cache-Control"] = "no-store"
    return response
