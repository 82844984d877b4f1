"""Channel authentication of the API views (see essc.service.channels for the scheme)."""
from __future__ import annotations

import functools

from flask import current_app, g, request

from essc.core.masking import get_logger

from ..channels import AuthFailure
from .errors import Unauthorized

log = get_logger("essc.service.api.auth")


def require_channel(view):
    """Authenticate the calling channel before ``view``; ``g.channel`` is its name.

    The raw body is read (and cached for the view) because a signature covers it; a body
    above MAX_CONTENT_LENGTH is refused here with 413 before anything else happens."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        state = current_app.extensions["essc"]
        body = request.get_data(cache=True)
        try:
            channel = state.channels.authenticate(request.headers, body)
        except AuthFailure as failure:
            log.info("refused %s %s: %s", request.method, request.path, failure.reason)
            raise Unauthorized(failure.reason, **failure.details) from None
        g.channel = channel.name
        return view(*args, **kwargs)

    return wrapper
