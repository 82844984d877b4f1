"""Launching the citizen's pages from a channel, and sending the citizen back (docs/launch.md).

A channel's backend builds a **signed launch URL** with :func:`build_launch_url` (its own
``hmac_secret``, never sent): the citizen's ID number and name travel **sealed** (Fernet,
AES-128-CBC + HMAC, with a key derived from the secret), so they appear in no address bar,
history or access log; the channel name, the sealed citizen, the return URL, the expiry and a
nonce are covered by an HMAC-SHA256 signature::

    /h5/launch?v=1&channel=C&citizen=SEALED&return_url=URL&expires=UNIX&nonce=N&signature=HEX
    signature = hex(HMAC-SHA256(hmac_secret, "essc-launch/1\\n" + C + "\\n" + SEALED + "\\n" + URL
                                             + "\\n" + UNIX + "\\n" + N))
    SEALED    = Fernet(base64url(SHA256("essc-launch-seal/1:" + hmac_secret)))
                    .encrypt(JSON {"id_number": ..., "name": ...})

:func:`open_launch` checks one (the service side): expiry in the future and at most
:data:`MAX_TTL_S` ahead, the signature, the return URL against the channel's configured
``return_urls`` prefixes, the citizen's data; the page spends the nonce once.

Or the channel's backend asks the service for a **launch ticket** (``POST /v1/launch-tickets``
with its API credentials, :func:`seal_ticket`): a short-lived opaque token sealed with the
service's own secret, opened by ``/h5/launch?ticket=...`` (:func:`open_ticket`), once.

When the citizen is done, the service redirects to the return URL with the outcome and a
signature the channel checks with :func:`verify_return`::

    <return_url>?essc_action=001&essc_activation=ID&essc_status=activated&essc_city=330100
                &essc_channel=C&essc_ts=UNIX&essc_nonce=N&essc_sig=HEX
    essc_sig = hex(HMAC-SHA256(hmac_secret, "essc-return/1\\n" + "\\n".join(the seven values above,
                                            in that order)))

``essc_action`` is ``001`` when the e-SSC was issued (activated), ``000`` when the citizen
left without it (``essc_status`` says where the activation stands, empty if none was started).

Nothing here imports Flask: a channel written in Python may import this module alone.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from cryptography.fernet import Fernet, InvalidToken

__all__ = ["MAX_TTL_S", "DEFAULT_TTL_S", "ACTION_ISSUED", "ACTION_NOT_ISSUED", "LaunchRefused", "ReturnRefused",
           "Launch", "build_launch_url", "launch_query", "open_launch", "return_url_allowed", "signed_return_url",
           "verify_return", "seal_citizen", "LAUNCH_NONCE", "seal_ticket", "open_ticket"]

VERSION = "1"
MAX_TTL_S = 600  #: a launch URL is valid at most this long after it is made
DEFAULT_TTL_S = 300
CLOCK_SKEW_S = 30  #: tolerated difference between the channel's clock and ours
LAUNCH_NONCE = re.compile(r"[A-Za-z0-9_-]{16,48}")  # fullmatch
ACTION_ISSUED = "001"  #: the e-SSC was issued (activated)
ACTION_NOT_ISSUED = "000"  #: the citizen left without it
RETURN_FIELDS = ("essc_action", "essc_activation", "essc_status", "essc_city", "essc_channel", "essc_ts",
                 "essc_nonce")
_HEX64 = re.compile(r"[0-9a-f]{64}")


class LaunchRefused(Exception):
    """A launch the pages refuse; ``reason`` is one of ``malformed``, ``expired``, ``bad_signature``,
    ``return_url``, ``citizen``, ``replayed``, ``channel`` (the page explains each)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class ReturnRefused(Exception):
    """A return to the channel that does not verify (:func:`verify_return`)."""


@dataclass(frozen=True)
class Launch:
    """An accepted launch. ``id_number`` and ``name`` are personal data: never log them."""

    channel: str
    id_number: str
    name: str
    return_url: str
    expires: int
    nonce: str


def _seal_key(secret: str) -> Fernet:
    digest = hashlib.sha256(("essc-launch-seal/1:" + secret).encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def seal_citizen(secret: str, id_number: str, name: str) -> str:
    """The ``citizen`` parameter: the ID number and name sealed with the channel's secret."""
    data = json.dumps({"id_number": id_number, "name": name}, ensure_ascii=False).encode()
    return _seal_key(secret).encrypt(data).decode()


def _launch_signature(secret: str, channel: str, citizen: str, return_url: str, expires: str, nonce: str) -> str:
    text = "\n".join(("essc-launch/" + VERSION, channel, citizen, return_url, expires, nonce))
    return hmac.new(secret.encode(), text.encode(), hashlib.sha256).hexdigest()


def launch_query(channel: str, secret: str, *, id_number: str, name: str, return_url: str,
                 ttl_s: int = DEFAULT_TTL_S, now: float | None = None, nonce: str | None = None) -> dict[str, str]:
    """The query parameters of a launch URL (see :func:`build_launch_url`)."""
    if not 0 < ttl_s <= MAX_TTL_S:
        raise ValueError(f"ttl_s must be between 1 and {MAX_TTL_S} seconds")
    nonce = nonce or secrets.token_urlsafe(18)
    if not LAUNCH_NONCE.fullmatch(nonce):
        raise ValueError("a launch nonce is 16-48 characters of A-Z a-z 0-9 _ -")
    expires = str(int((time.time() if now is None else now) + ttl_s))
    citizen = seal_citizen(secret, id_number, name)
    return {"v": VERSION, "channel": channel, "citizen": citizen, "return_url": return_url, "expires": expires,
            "nonce": nonce, "signature": _launch_signature(secret, channel, citizen, return_url, expires, nonce)}


def build_launch_url(base_url: str, channel: str, secret: str, *, id_number: str, name: str, return_url: str,
                     ttl_s: int = DEFAULT_TTL_S, now: float | None = None, nonce: str | None = None) -> str:
    """A signed launch URL of the citizen's pages, made by the channel's backend.

    ``base_url`` is where the service is served (``https://essc.example.gov.cn``); ``secret`` the
    channel's ``hmac_secret``; ``return_url`` must start with one of the channel's configured
    ``return_urls``; the URL is valid ``ttl_s`` seconds (at most :data:`MAX_TTL_S`) and once."""
    query = launch_query(channel, secret, id_number=id_number, name=name, return_url=return_url, ttl_s=ttl_s,
                         now=now, nonce=nonce)
    return base_url.rstrip("/") + "/h5/launch?" + urlencode(query)


def return_url_allowed(url: str, prefixes: Iterable[str]) -> bool:
    """Does ``url`` start with one of ``prefixes`` on a URL boundary? Same scheme (http or
    https) and host:port exactly, no user info, and a path under the prefix's path
    (``https://a.example/essc/`` allows ``https://a.example/essc/done?x=1``, never
    ``https://a.example.evil/`` nor ``https://a.example/essc-other``)."""
    try:
        target = urlsplit(url)
    except ValueError:
        return False
    if target.scheme not in ("http", "https") or not target.hostname or "@" in target.netloc or target.fragment:
        return False
    if any(ord(ch) < 0x21 or ch == "\\" for ch in url):
        return False
    for prefix in prefixes:
        allowed = urlsplit(prefix)
        if (allowed.scheme, allowed.netloc.lower()) != (target.scheme, target.netloc.lower()):
            continue
        base = allowed.path or "/"
        path = target.path or "/"
        if path == base or path.startswith(base if base.endswith("/") else base + "/"):
            return True
    return False


def open_launch(params: Mapping[str, str], channels: Mapping, *, now: float | None = None) -> Launch:
    """Check a launch's query parameters against the channels (name -> object with
    ``hmac_secret`` and ``return_urls``); :class:`LaunchRefused` says why it is refused. The
    nonce is NOT spent here (the caller claims it once the rest holds)."""
    now = time.time() if now is None else now
    fields = {}
    for name in ("channel", "citizen", "return_url", "expires", "nonce", "signature"):
        value = params.get(name)
        if not value or not isinstance(value, str) or len(value) > 4096:
            raise LaunchRefused("malformed", f"the launch link lacks {name}")
        fields[name] = value
    if params.get("v", VERSION) != VERSION:
        raise LaunchRefused("malformed", f"launch version {params.get('v')!r} is not {VERSION}")
    expires = fields["expires"]
    if not (expires.isascii() and expires.isdigit() and len(expires) <= 12):
        raise LaunchRefused("malformed", "expires must be Unix seconds")
    if not LAUNCH_NONCE.fullmatch(fields["nonce"]):
        raise LaunchRefused("malformed", "the nonce must be 16-48 characters of A-Z a-z 0-9 _ -")
    channel = channels.get(fields["channel"])
    secret = getattr(channel, "hmac_secret", None) or "essc-no-such-channel"
    expected = _launch_signature(secret, fields["channel"], fields["citizen"], fields["return_url"], expires,
                                 fields["nonce"])
    signature = fields["signature"].lower()
    if not (hmac.compare_digest(signature.encode("utf-8", "replace"), expected.encode())
            and _HEX64.fullmatch(signature) and channel is not None and channel.hmac_secret):
        raise LaunchRefused("bad_signature", "the signature does not match the channel's secret")
    if int(expires) < now - CLOCK_SKEW_S:
        raise LaunchRefused("expired", f"the link expired {now - int(expires):.0f} s ago")
    if int(expires) > now + MAX_TTL_S + CLOCK_SKEW_S:
        raise LaunchRefused("malformed", f"a launch link is valid at most {MAX_TTL_S} s")
    if not return_url_allowed(fields["return_url"], getattr(channel, "return_urls", ()) or ()):
        raise LaunchRefused("return_url", "the return URL is not one the channel configured")
    try:
        citizen = json.loads(_seal_key(secret).decrypt(fields["citizen"].encode()))
        id_number, name = citizen["id_number"], citizen["name"]
    except (InvalidToken, ValueError, KeyError, TypeError) as err:
        raise LaunchRefused("citizen", "the sealed citizen cannot be opened with the channel's secret") from err
    if not isinstance(id_number, str) or not isinstance(name, str):
        raise LaunchRefused("citizen", "the sealed citizen needs an id_number and a name")
    return Launch(fields["channel"], id_number, name, fields["return_url"], int(expires), fields["nonce"])


def seal_ticket(sealer, channel: str, *, id_number: str, name: str, return_url: str, ttl_s: int = DEFAULT_TTL_S,
                now: float | None = None) -> tuple[str, int]:
    """``(ticket, expires)``: a launch sealed with the service's own secret (``sealer``:
    essc.service.sealing.Sealer) for a channel authenticated by the API; valid ``ttl_s`` and once."""
    if not 0 < ttl_s <= MAX_TTL_S:
        raise ValueError(f"ttl_s must be between 1 and {MAX_TTL_S} seconds")
    expires = int((time.time() if now is None else now) + ttl_s)
    ticket = sealer.seal({"t": "essc-launch-ticket/" + VERSION, "channel": channel, "id_number": id_number,
                          "name": name, "return_url": return_url, "expires": expires,
                          "nonce": secrets.token_urlsafe(18)})
    return ticket, expires


def open_ticket(sealer, ticket: str, channels: Mapping, *, now: float | None = None) -> Launch:
    """The launch a ticket holds (see :func:`seal_ticket`); :class:`LaunchRefused` as for a URL.
    The nonce is NOT spent here."""
    now = time.time() if now is None else now
    if not isinstance(ticket, str) or not ticket or len(ticket) > 4096:
        raise LaunchRefused("malformed", "the launch ticket is missing or too long")
    try:
        data = sealer.unseal(ticket)
    except ValueError as err:
        raise LaunchRefused("bad_signature", "the ticket was not made by this service") from err
    if not isinstance(data, dict) or data.get("t") != "essc-launch-ticket/" + VERSION:
        raise LaunchRefused("bad_signature", "the token is no launch ticket")
    if int(data["expires"]) < now - CLOCK_SKEW_S:
        raise LaunchRefused("expired", f"the ticket expired {now - int(data['expires']):.0f} s ago")
    channel = channels.get(data["channel"])
    if channel is None or not channel.hmac_secret:
        raise LaunchRefused("channel", "the ticket's channel cannot sign returns any more")
    if not return_url_allowed(data["return_url"], channel.return_urls):
        raise LaunchRefused("return_url", "the return URL is not one the channel configured")
    return Launch(data["channel"], data["id_number"], data["name"], data["return_url"], int(data["expires"]),
                  data["nonce"])


def _return_signature(secret: str, values: Iterable[str]) -> str:
    text = "\n".join(("essc-return/" + VERSION, *values))
    return hmac.new(secret.encode(), text.encode(), hashlib.sha256).hexdigest()


def signed_return_url(return_url: str, secret: str, *, channel: str, action: str, activation: str = "",
                      status: str = "", city: str = "", now: float | None = None, nonce: str | None = None) -> str:
    """The return URL with the outcome appended (its own query kept) and signed."""
    values = {"essc_action": action, "essc_activation": activation, "essc_status": status, "essc_city": city,
              "essc_channel": channel, "essc_ts": str(int(time.time() if now is None else now)),
              "essc_nonce": nonce or secrets.token_urlsafe(18)}
    values["essc_sig"] = _return_signature(secret, (values[k] for k in RETURN_FIELDS))
    parts = urlsplit(return_url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not k.startswith("essc_")]
    return urlunsplit(parts._replace(query=urlencode(query + list(values.items())), fragment=""))


def verify_return(url: str, secret: str, *, channel: str | None = None, max_age_s: float = 300,
                  now: float | None = None) -> dict[str, str]:
    """Check a return to the channel (the channel's side): the signature with the channel's
    ``hmac_secret``, the channel name when given, and the age (``max_age_s``). Returns the
    ``essc_*`` values without their prefix (``action``, ``activation``, ``status``, ``city``,
    ``channel``, ``ts``, ``nonce``); raises :class:`ReturnRefused`. Remember the nonces you
    accepted for ``max_age_s`` to refuse a replayed return."""
    params = dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))
    try:
        values = [params[k] for k in RETURN_FIELDS]
        signature = params["essc_sig"]
    except KeyError as err:
        raise ReturnRefused(f"the return lacks {err.args[0]}") from None
    expected = _return_signature(secret, values)
    if not hmac.compare_digest(signature.encode("utf-8", "replace"), expected.encode()):
        raise ReturnRefused("the signature does not match")
    out = {k.removeprefix("essc_"): v for k, v in zip(RETURN_FIELDS, values, strict=True)}
    if channel is not None and out["channel"] != channel:
        raise ReturnRefused(f"the return was made for channel {out['channel']!r}")
    age = (time.time() if now is None else now) - int(out["ts"])
    if not -CLOCK_SKEW_S <= age <= max_age_s:
        raise ReturnRefused(f"the return is {age:.0f} s old (at most {max_age_s:g} s accepted)")
    return out
