"""``POST /v1/launch-tickets``: a channel's backend asks for a short-lived, single-use launch of
the citizen's pages (docs/launch.md) instead of signing a launch URL itself."""
from __future__ import annotations

from flask import Blueprint, current_app, g, request, url_for

from essc.core.idnumber import validate_id_number

from ..names import check_name
from ..pages.launch import DEFAULT_TTL_S, return_url_allowed, seal_ticket
from .auth import require_channel
from .errors import BadRequest
from .responses import no_store
from .validation import validated_body

bp = Blueprint("launch_tickets", __name__)


@bp.post("/v1/launch-tickets")
@require_channel
def create_launch_ticket():
    state = current_app.extensions["essc"]
    data = validated_body(request, "LaunchTicketRequest")
    channel = state.channels.channels[g.channel]
    if not channel.hmac_secret:
        raise BadRequest("the citizen's return is signed with the channel's HMAC secret: this channel has none",
                         field="$", rule="channel-secret")
    if not return_url_allowed(data["return_url"], channel.return_urls):
        raise BadRequest("the return URL is not under one of the channel's return_urls", field="$.return_url",
                         rule="return-urls")
    id_number = validate_id_number(data["id_number"], field="$.id_number")
    name = check_name(data["name"], field="$.name")
    ticket, expires = seal_ticket(state.runtime.service.sealer, g.channel, id_number=id_number, name=name,
                                  return_url=data["return_url"], ttl_s=int(data.get("ttl_s", DEFAULT_TTL_S)))
    return no_store({"ticket": ticket, "launch_url": url_for("h5.launch", ticket=ticket, _external=True),
                     "expires_at": expires}, 201)
