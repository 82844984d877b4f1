"""Channel authentication of the API views (see essc.service.channels for the scheme,
essc.service.nonces for replay protection, essc.service.throttle for throttling)."""
from __future__ import annotations

import functools

from flask import current_app, g, request

from essc.core.masking import get_logger

from ..channels import NAME, AuthFailure, request_target
from .errors import TooManyRequests, Unauthorized

log = get_logger("essc.service.api.auth")


def require_channel(view):
    """Authenticate the calling channel before ``view``; ``g.channel`` is its name.

    A channel name or client address with too many recent failures gets 429 + Retry-After
    before anything else (no credential is checked). The raw body is read (and cached for
    the view) because a signature covers it; a body above MAX_CONTENT_LENGTH is refused here
    with 413. A failure is counted by the throttle, a success never is."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        state = current_app.extensions["essc"]
        throttle = getattr(state, "throttle", None)
        name = (request.headers.get("X-Channel") or "").strip()
        address = request.remote_addr or ""
        shown = name if NAME.match(name) else "-"  # channel names only; never the address
        if throttle is not None:
            wait = throttle.retry_after(name, address)
            if wait is not None:
                log.warning("throttled %s %s (channel %s): too many failed authentications",
                            request.method, request.path, shown)
                raise TooManyRequests("too many failed authentications from this channel or address",
                                      retry_after=wait, rule="throttle")
        body = request.get_data(cache=True)
        try:
            channel = state.channels.authenticate(request.headers, body, method=request.method,
                                                  target=request_target(request.environ),
                                                  nonces=getattr(state, "nonces", None))
        except AuthFailure as failure:
            if throttle is not None:
                throttle.failed(name, address)
            log.info("refused %s %s (channel %s): %s", request.method, request.path, shown, failure.reason)
            raise Unauthorized(failure.reason, **failure.details) from None
        g.channel = channel.name
        return view(*args, **kwargs)

    return wrapper
