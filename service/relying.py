"""Relying parties: who may verify a citizen's e-SSC code or log a citizen in.

Hospitals, pharmacies, government offices, self-service terminals and portals rely on the
e-SSC: a party scans the citizen's dynamic code and asks the platform who it belongs to
(``POST /v1/qrcode/verify``), or a portal logs the citizen in (``POST /v1/login-sessions``,
OpenID Connect). They are configured in the channels file (``ESSC_CHANNELS_FILE``), one
``[relying_parties.<name>]`` table each, and authenticate exactly like channels
(essc.service.channels: ``X-Relying-Party`` plus ``X-Api-Key``, or the replay-proof signature
with ``X-Timestamp``, ``X-Nonce`` and ``X-Signature``; same nonce store, same throttle)::

    [relying_parties.pharmacy-1]
    description = "a pharmacy's counter"
    kind = "pharmacy"                  # hospital, pharmacy, office, terminal, portal, other
    hmac_secret = "<long random string>"
    busi_types = ["01", "02"]          # what it may verify codes for (BUSI_TYPES)
    scope = []                         # personal data it may see in full: "name", "id_number"

    [relying_parties.gov-portal]
    kind = "portal"                    # only portals may open login sessions
    api_key = "<long random string>"
    busi_types = ["03"]
    scope = ["name"]
    [relying_parties.gov-portal.oidc]  # an OpenID Connect client (client_id = the party's name)
    client_secret = "<long random string>"
    redirect_uris = ["https://portal.example.gov.cn/oidc/callback"]
    scopes = ["openid", "essc", "profile"]

Without a grant a party sees the masked ID number and name only (``110***********803X``,
``张*``). A name is a channel's or a relying party's, never both (nonces and throttling are
kept per name).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from essc.core.masking import get_logger

from .channels import DEFAULT_FILE, MAX_SKEW_S, Caller, Channels, named_tables, with_credentials

__all__ = ["BUSI_TYPES", "GRANTS", "KINDS", "OIDC_SCOPES", "OidcClient", "RelyingParty", "RelyingParties"]

log = get_logger("essc.service.relying")

#: the platform's business types of a code verification (``busiType``)
BUSI_TYPES = {"01": "query", "02": "payment", "03": "other", "04": "cross-region medical care"}
#: personal data a party may be granted in full (masked otherwise)
GRANTS = ("name", "id_number")
KINDS = ("hospital", "pharmacy", "office", "terminal", "portal", "other")
#: OpenID Connect scopes a portal may be registered for, and the grant each one needs
OIDC_SCOPES = {"openid": None, "essc": None, "profile": "name", "id_number": "id_number"}


@dataclass(frozen=True)
class OidcClient:
    """A portal's OpenID Connect registration (its client_id is the party's name)."""

    client_secret: str = field(repr=False)
    redirect_uris: tuple[str, ...]
    scopes: tuple[str, ...]


@dataclass(frozen=True)
class RelyingParty(Caller):
    kind: str = "other"
    busi_types: frozenset[str] = frozenset()
    #: personal data it may see in full (GRANTS)
    scope: frozenset[str] = frozenset()
    oidc: OidcClient | None = None

    @property
    def portal(self) -> bool:
        return self.kind == "portal"

    def may_see(self, grant: str) -> bool:
        return grant in self.scope


def _strings(path: Path, name: str, key: str, value: object, allowed) -> frozenset[str]:
    if value is None:
        return frozenset()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{path}: relying party {name!r}: {key} must be a list of strings")
    unknown = sorted(set(value) - set(allowed))
    if unknown:
        raise ValueError(f"{path}: relying party {name!r}: {key} has {', '.join(map(repr, unknown))}; "
                         f"allowed: {', '.join(allowed)}")
    return frozenset(value)


def _oidc(path: Path, name: str, entry: object, scope: frozenset[str]) -> OidcClient | None:
    if entry is None:
        return None
    if not isinstance(entry, dict) or not entry.get("client_secret"):
        raise ValueError(f"{path}: relying party {name!r}: [oidc] needs a client_secret")
    uris = entry.get("redirect_uris")
    if not isinstance(uris, list) or not uris or not all(isinstance(u, str) and u.startswith(("https://", "http://"))
                                                         for u in uris):
        raise ValueError(f"{path}: relying party {name!r}: oidc.redirect_uris must list http(s) URLs")
    scopes = _strings(path, name, "oidc.scopes", entry.get("scopes", ["openid"]), tuple(OIDC_SCOPES))
    if "openid" not in scopes:
        raise ValueError(f"{path}: relying party {name!r}: oidc.scopes must include 'openid'")
    for requested in sorted(scopes):
        needs = OIDC_SCOPES[requested]
        if needs is not None and needs not in scope:
            raise ValueError(f"{path}: relying party {name!r}: OIDC scope {requested!r} needs {needs!r} in its scope")
    return OidcClient(str(entry["client_secret"]), tuple(uris), tuple(sorted(scopes)))


class RelyingParties(Channels):
    """The relying parties of the channels file; :meth:`authenticate` is the channels' own."""

    header = "X-Relying-Party"
    kind = "relying party"

    def __init__(self, parties: Mapping[str, RelyingParty], source: str = "<memory>",
                 max_skew_s: float = MAX_SKEW_S, nonces=None, clock=None) -> None:
        kwargs = {"clock": clock} if clock is not None else {}
        super().__init__(parties, source, max_skew_s, nonces, **kwargs)  # type: ignore[arg-type]

    @property
    def parties(self) -> dict[str, RelyingParty]:
        return self.channels  # type: ignore[return-value]

    def get(self, name: str) -> RelyingParty | None:
        return self.parties.get(name)

    @classmethod
    def load(cls, path: str | Path | None = None, max_skew_s: float = MAX_SKEW_S,
             channels: Channels | None = None) -> RelyingParties:
        """Read the ``[relying_parties.*]`` tables of the channels file (the packaged demo file
        when ``path`` is None). ``channels``: names already taken by channels (refused)."""
        path = Path(path) if path else DEFAULT_FILE
        parties = {}
        for name, table in named_tables(path, "relying_parties", "relying party"):
            if channels is not None and name in channels.channels:
                raise ValueError(f"{path}: {name!r} is both a channel and a relying party: give them distinct names")
            entry = with_credentials(path, "relying party", name, table)
            kind = entry.get("kind", "other")
            if kind not in KINDS:
                raise ValueError(f"{path}: relying party {name!r}: kind must be one of {', '.join(KINDS)}")
            scope = _strings(path, name, "scope", entry.get("scope"), GRANTS)
            oidc = _oidc(path, name, entry.get("oidc"), scope)
            if oidc is not None and kind != "portal":
                raise ValueError(f"{path}: relying party {name!r}: only a portal (kind = \"portal\") has [oidc]")
            parties[name] = RelyingParty(
                name, entry.get("api_key") or None, entry.get("hmac_secret") or None, str(entry.get("description", "")),
                bool(entry.get("demo", False)), kind,
                _strings(path, name, "busi_types", entry.get("busi_types"), tuple(BUSI_TYPES)), scope, oidc)
        if any(p.demo for p in parties.values()):
            log.warning("channels file %s holds DEMO-ONLY relying parties; configure ESSC_CHANNELS_FILE", path)
        return cls(parties, str(path), max_skew_s)
