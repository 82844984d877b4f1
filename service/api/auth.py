"""Authentication of the API views: channels and relying parties (essc.service.channels for the
scheme, essc.service.relying for relying parties, essc.service.nonces for replay protection,
essc.service.throttle for throttling)."""
from __future__ import annotations

import functools

from flask import current_app, g, request

from essc.core.masking import get_logger

from ..channels import NAME, AuthFailure, request_target
from .errors import TooManyRequests, Unauthorized

log = get_logger("essc.service.api.auth")


def authenticate(principals):
    """Authenticate the request as one of ``principals`` (essc.service.channels.Channels or a
    subclass: essc.service.relying.RelyingParties) and return its entry.

    A name (in ``principals.header``) or client address with too many recent failures gets
    429 + Retry-After before anything else (no credential is checked). The raw body is read
    (and cached for the view) because a signature covers it; a body above MAX_CONTENT_LENGTH
    is refused here with 413. A failure is counted by the throttle, a success never is."""
    state = current_app.extensions["essc"]
    throttle = getattr(state, "throttle", None)
    name = (request.headers.get(principals.header) or "").strip()
    address = request.remote_addr or ""
    shown = name if NAME.match(name) else "-"  # names only; never the address
    # the route, not the path: a path may hold a code (/v1/login-sessions/<code>/confirm)
    where = request.url_rule.rule if request.url_rule is not None else request.path
    if throttle is not None:
        wait = throttle.retry_after(name, address)
        if wait is not None:
            log.warning("throttled %s %s (%s %s): too many failed authentications",
                        request.method, where, principals.kind, shown)
            raise TooManyRequests(f"too many failed authentications from this {principals.kind} or address",
                                  retry_after=wait, rule="throttle")
    body = request.get_data(cache=True)
    try:
        entry = principals.authenticate(request.headers, body, method=request.method,
                                        target=request_target(request.environ),
                                        nonces=getattr(state, "nonces", None))
    except AuthFailure as failure:
        if throttle is not None:
            throttle.failed(name, address)
        log.info("refused %s %s (%s %s): %s", request.method, where, principals.kind, shown, failure.reason)
        raise Unauthorized(failure.reason, **failure.details) from None
    return entry


def require_channel(view):
    """Authenticate the calling channel before ``view``; ``g.channel`` is its name
    (see :func:`authenticate`)."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        g.channel = authenticate(current_app.extensions["essc"].channels).name
        return view(*args, **kwargs)

    return wrapper


def require_relying_party(view):
    """Authenticate the calling relying party before ``view``; ``g.relying_party`` is its
    essc.service.relying.RelyingParty (busi_types, scope, kind). Same scheme, nonces and
    throttle as channels, with ``X-Relying-Party`` naming the party."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        g.relying_party = authenticate(current_app.extensions["essc"].relying_parties)
        return view(*args, **kwargs)

    return wrapper
