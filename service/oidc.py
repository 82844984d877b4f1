"""An OpenID Connect provider over the scan login (essc.service.login), built on Authlib.

Portals are relying parties of kind ``portal`` with an ``[relying_parties.<name>.oidc]`` table
(``client_id`` = the party's name, ``client_secret``, ``redirect_uris``, ``scopes``). The flow
is the authorization code flow with PKCE (``S256`` required):

1. the portal sends the browser to ``/oidc/authorize`` (``response_type=code``, ``client_id``,
   an exactly registered ``redirect_uri``, ``scope``, ``state``, ``nonce``, ``code_challenge``,
   ``code_challenge_method=S256``);
2. the page opens a login session for the portal and shows its login code; the citizen confirms
   it in their e-SSC channel (``POST /v1/login-sessions/{code}/confirm``, a fresh identity
   check); the page polls (it reloads itself) and, once confirmed, redirects to the portal with
   a single-use authorization code (``oidc_code_ttl_s``, 60 s);
3. the portal exchanges it at ``/oidc/token`` (client secret, basic or post, plus the PKCE
   verifier) for an access token (``oidc_token_ttl_s``) and an ID token signed RS256 with the key
   published at ``/oidc/jwks.json``; the ID token carries only a **pairwise** ``sub`` (the
   ``essc_no`` of the scan login: the same citizen, another number at another portal);
4. ``/oidc/userinfo`` answers the claims of the scopes granted: ``essc`` (``essc_city``,
   ``essc_sign_level``, ``id_hint``, ``name_hint``: masked), ``profile`` (``name``) and
   ``id_number`` - the last two only for a portal whose ``scope`` grants them (checked when the
   channels file is read).

A replayed authorization code is refused and revokes the tokens issued for it; an unlinked
e-SSC's tokens stop working. Codes and tokens are stored as SHA-256 hashes. The signing key comes
from ``oidc_signing_key`` (a PEM file) or is generated once into ``data_dir``.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import cast
from urllib.parse import urlencode

from authlib.integrations.flask_oauth2 import AuthorizationServer, ResourceProtector
from authlib.oauth2.rfc6749 import ClientMixin, TokenMixin, grants
from authlib.oauth2.rfc6749.errors import InvalidRequestError
from authlib.oauth2.rfc6750 import BearerTokenValidator
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core import UserInfo, UserInfoEndpoint
from authlib.oidc.core.grants import OpenIDCode
from authlib.oidc.core.models import AuthorizationCodeMixin
from flask import request
from joserfc.jwk import RSAKey
from sqlalchemy import Table, insert, select, update

from essc.core.masking import get_logger

from . import states
from .models import OidcCode, OidcToken
from .purging import Purger
from .relying import OIDC_SCOPES, RelyingParty
from .usage import audit_use, token_hash
from .writers import writing

__all__ = ["Provider", "load_signing_key", "SCOPE_CLAIMS", "ALG"]

log = get_logger("essc.service.oidc")

C = cast(Table, OidcCode.__table__)
T = cast(Table, OidcToken.__table__)
ALG = "RS256"
KEY_FILE = "oidc-signing-key.pem"
#: the claims each scope opens at userinfo (``name`` and ``id_number`` need the portal's grant)
SCOPE_CLAIMS = {"openid": ("sub",), "essc": ("essc_city", "essc_sign_level", "id_hint", "name_hint"),
                "profile": ("name",), "id_number": ("id_number",)}


def load_signing_key(config) -> RSAKey:
    """The ID-token signing key: ``config.oidc_signing_key`` (PEM) when set, else
    ``data_dir/oidc-signing-key.pem``, generated (RSA 2048) the first time. Generation is atomic
    (a temporary file linked into place): processes starting together end up with one key."""
    path = Path(config.oidc_signing_key) if config.oidc_signing_key else Path(config.data_dir) / KEY_FILE
    if not path.exists():
        if config.oidc_signing_key:
            raise FileNotFoundError(f"oidc_signing_key {path} does not exist")
        path.parent.mkdir(parents=True, exist_ok=True)
        pem = RSAKey.generate_key(2048, private=True).as_pem(private=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".oidc-key-")
        try:
            os.write(fd, pem)
            os.close(fd)
            os.chmod(tmp, 0o600)
            try:
                os.link(tmp, path)  # fails if another process made it first: then use that one
            except FileExistsError:
                pass
        finally:
            os.unlink(tmp)
    key = RSAKey.import_key(path.read_bytes())
    if not key.is_private:
        raise ValueError(f"oidc_signing_key {path} holds no private key")
    return key


# -- Authlib models ----------------------------------------------------------------------------
class PortalClient(ClientMixin):
    """A portal's OpenID Connect registration, read from its relying-party table."""

    def __init__(self, party: RelyingParty) -> None:
        assert party.oidc is not None
        self.party = party
        self.client_id = party.name
        self.oidc = party.oidc
        self.client_metadata: dict = {}  # no signed userinfo

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self):
        return None  # OpenID Connect: every request names its redirect_uri

    def get_allowed_scope(self, scope):
        if not scope:
            return ""
        return " ".join(s for s in scope.split() if s in self.oidc.scopes)

    def check_redirect_uri(self, redirect_uri) -> bool:
        return redirect_uri in self.oidc.redirect_uris  # exactly as registered

    def check_client_secret(self, client_secret) -> bool:
        return hmac.compare_digest(str(client_secret).encode(), self.oidc.client_secret.encode())

    def check_endpoint_auth_method(self, method, endpoint) -> bool:
        return method in ("client_secret_basic", "client_secret_post") if endpoint == "token" else True

    def check_response_type(self, response_type) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type) -> bool:
        return grant_type == "authorization_code"


@dataclass
class PortalUser:
    """The citizen logged in: the activation confirmed and when."""

    activation_id: str
    client_id: str  #: the portal it logged in to (the pairwise sub is per portal)
    auth_time: float


class CodeRecord(AuthorizationCodeMixin):
    def __init__(self, row: dict) -> None:
        self.row = row
        self.code_hash = row["code_hash"]
        self.code_challenge = row["code_challenge"]
        self.code_challenge_method = row["code_challenge_method"]

    def get_redirect_uri(self):
        return self.row["redirect_uri"]

    def get_scope(self):
        return self.row["scope"]

    def get_nonce(self):
        return self.row["nonce"]

    def get_auth_time(self):
        return int(self.row["auth_time"])

    def get_acr(self):
        return None

    def get_amr(self):
        return ["face", "otp"]  # face liveness + SMS code or e-SSC password (the city's check)


class TokenRecord(TokenMixin):
    def __init__(self, row: dict, client: PortalClient | None, active: bool) -> None:
        self.row = row
        self.client = client
        self.active = active
        self.scope = row["scope"]

    def check_client(self, client) -> bool:
        return client.get_client_id() == self.row["client_id"]

    def get_scope(self):
        return self.row["scope"]

    def get_expires_in(self):
        return int(self.row["expires_at"] - self.row["issued_at"])

    def is_expired(self) -> bool:
        return self.row["expires_at"] <= time.time()

    def is_revoked(self) -> bool:
        return bool(self.row["revoked"]) or not self.active

    def get_user(self):
        return PortalUser(self.row["activation_id"], self.row["client_id"], self.row["issued_at"])

    def get_client(self):
        return self.client


# -- Authlib grant and extensions --------------------------------------------------------------
class CodeGrant(grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

    def save_authorization_code(self, code, request):
        self.server.provider.save_code(code, request)

    def query_authorization_code(self, code, client):
        return self.server.provider.query_code(code, client)

    def delete_authorization_code(self, authorization_code):
        pass  # spent in authenticate_user, atomically, after the PKCE check

    def authenticate_user(self, authorization_code):
        return self.server.provider.spend_code(authorization_code)


class PkceS256(CodeChallenge):
    """PKCE is required, with S256 only (a request without it is refused at the authorization step)."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]

    def validate_code_challenge(self, grant, redirect_uri):
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError("PKCE is required: send code_challenge and code_challenge_method=S256")
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("code_challenge_method must be S256")
        super().validate_code_challenge(grant, redirect_uri)


class IdToken(OpenIDCode):
    def __init__(self, provider: Provider) -> None:
        super().__init__(require_nonce=True)
        self.provider = provider

    def exists_nonce(self, nonce, request):
        return self.provider.nonce_used(request.payload.client_id, nonce)

    def resolve_client_private_key(self, client):
        return self.provider.key

    def get_client_algorithm(self, client):
        return ALG

    def get_encode_header(self, client):
        return {"alg": ALG, "kid": self.provider.kid, "typ": "JWT"}

    def get_client_claims(self, client):
        return {"iss": self.provider.issuer(), "aud": [client.get_client_id()],
                "exp": int(time.time() + self.provider.config.oidc_token_ttl_s)}

    def generate_user_info(self, user, scope):
        # the ID token names the person and nothing more; claims come from userinfo
        return UserInfo(sub=self.provider.subject(user))


class EsscUserInfo(UserInfoEndpoint):
    def __init__(self, provider: Provider, resource_protector) -> None:
        super().__init__(resource_protector=resource_protector)
        self.provider = provider

    def get_issuer(self):
        return self.provider.issuer()

    def resolve_private_key(self):
        return self.provider.key

    def generate_user_info(self, user, scope):
        return self.provider.claims(user, scope)


class TokenValidator(BearerTokenValidator):
    def __init__(self, provider: Provider) -> None:
        super().__init__()
        self.provider = provider

    def authenticate_token(self, token_string):
        return self.provider.token(token_string)


# -- the provider ------------------------------------------------------------------------------
class Provider:
    """The OpenID Connect provider of one API app (``app.extensions["essc"].oidc``)."""

    def __init__(self, app, runtime, parties, logins) -> None:
        self.runtime = runtime
        self.config = runtime.config
        self.engine = runtime.store.engine
        self.parties = parties
        self.logins = logins
        self._purge_codes, self._purge_tokens = Purger(self.engine, C), Purger(self.engine, T)
        self.key = load_signing_key(self.config)
        self.kid = self.key.thumbprint()
        app.config.setdefault("OAUTH2_TOKEN_EXPIRES_IN", {"authorization_code": int(self.config.oidc_token_ttl_s)})
        app.config.setdefault("OAUTH2_SCOPES_SUPPORTED", list(OIDC_SCOPES))
        self.server = AuthorizationServer(app, query_client=self.client, save_token=self.save_token)
        self.server.provider = self  # what the grant reaches
        self.server.register_grant(CodeGrant, [IdToken(self), PkceS256(required=True)])
        protector = ResourceProtector()
        protector.register_token_validator(TokenValidator(self))
        self.server.register_endpoint(EsscUserInfo(self, protector))

    # -- clients and identities --------------------------------------------------------------------
    def client(self, client_id) -> PortalClient | None:
        party = self.parties.get(client_id) if isinstance(client_id, str) else None
        return PortalClient(party) if party is not None and party.oidc is not None else None

    def issuer(self) -> str:
        return (self.config.oidc_issuer or request.host_url).rstrip("/")

    def subject(self, user: PortalUser) -> str:
        act = self.runtime.store.get(user.activation_id)
        return self.logins.person_number(user.client_id, act)

    def claims(self, user: PortalUser, scope: str) -> UserInfo:
        act = self.runtime.store.get(user.activation_id)
        client = self.client(user.client_id)
        if client is None:  # the portal left the configuration since
            return UserInfo(sub=self.logins.person_number(user.client_id, act))
        view = self.logins.login_view(client.party, act)
        pii = self.runtime.service.sealer.unseal(act["sealed"]) if "id_number" in scope.split() else {}
        values = {"sub": view["essc_no"], "essc_city": view["city"], "essc_sign_level": view["sign_level"],
                  "id_hint": view["id_hint"], "name_hint": view["name_hint"]}
        if client.party.may_see("name"):
            values["name"] = view.get("name")
        if client.party.may_see("id_number") and pii:
            values["id_number"] = pii["id_number"]
        granted = [claim for s in scope.split() for claim in SCOPE_CLAIMS.get(s, ())]
        return UserInfo({k: values[k] for k in granted if values.get(k) is not None})

    # -- codes -------------------------------------------------------------------------------------
    def save_code(self, code: str, oauth_request) -> None:
        user: PortalUser = oauth_request.user
        data = oauth_request.payload.data
        now = time.time()
        with writing(self.engine) as conn:
            conn.execute(insert(C).values(
                code_hash=token_hash(code), client_id=oauth_request.client.client_id, activation_id=user.activation_id,
                redirect_uri=oauth_request.payload.redirect_uri, scope=oauth_request.scope or "",
                nonce=data.get("nonce"), code_challenge=data["code_challenge"],
                code_challenge_method=data.get("code_challenge_method") or "S256", auth_time=user.auth_time,
                expires_at=now + self.config.oidc_code_ttl_s))
            audit_use(conn, "oidc_code_issued", party=oauth_request.client.client_id,
                      activation_id=user.activation_id, at=now, detail=f"scope {oauth_request.scope}")
        self._purge_codes(now)

    def query_code(self, code: str, client: PortalClient) -> CodeRecord | None:
        digest = token_hash(code)
        with self.engine.connect() as conn:
            row = conn.execute(select(C).where(C.c.code_hash == digest, C.c.client_id == client.client_id)
                               ).mappings().first()
        if row is None:
            return None
        if row["used_at"] is not None:  # a replay: refuse it and revoke what the code gave
            with writing(self.engine) as conn:
                revoked = conn.execute(update(T).where(T.c.code_hash == digest).values(revoked=1)).rowcount
                audit_use(conn, "oidc_code_replayed", party=client.client_id, outcome="invalid_grant",
                          activation_id=row["activation_id"], detail=f"{revoked} token(s) revoked")
            log.warning("portal %s presented a spent authorization code: %d token(s) revoked", client.client_id,
                        revoked)
            return None
        if row["expires_at"] <= time.time():
            return None
        return CodeRecord(dict(row))

    def spend_code(self, record: CodeRecord) -> PortalUser | None:
        """Spend the code (one conditional UPDATE: of two token requests with one code, one wins)."""
        now = time.time()
        with writing(self.engine) as conn:
            won = conn.execute(update(C).where(C.c.code_hash == record.code_hash, C.c.used_at.is_(None),
                                               C.c.expires_at > now).values(used_at=now)).rowcount
        if not won:
            return None
        act = self.runtime.store.get(record.row["activation_id"])
        if act is None or act["status"] != states.ACTIVATED:
            return None
        return PortalUser(act["id"], record.row["client_id"], record.row["auth_time"])

    def nonce_used(self, client_id, nonce) -> bool:
        with self.engine.connect() as conn:
            return conn.execute(select(C.c.code_hash).where(C.c.client_id == client_id, C.c.nonce == nonce)
                                ).first() is not None

    # -- tokens ------------------------------------------------------------------------------------
    def save_token(self, token: dict, oauth_request) -> None:
        now = time.time()
        with writing(self.engine) as conn:
            conn.execute(insert(T).values(
                token_hash=token_hash(token["access_token"]), client_id=oauth_request.client.client_id,
                activation_id=oauth_request.user.activation_id, scope=token.get("scope") or "", issued_at=now,
                expires_at=now + float(token.get("expires_in") or self.config.oidc_token_ttl_s),
                code_hash=oauth_request.authorization_code.code_hash, revoked=0))
            audit_use(conn, "oidc_token_issued", party=oauth_request.client.client_id,
                      activation_id=oauth_request.user.activation_id, at=now, detail=f"scope {token.get('scope')}")
        self._purge_tokens(now)

    def token(self, token_string: str) -> TokenRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(T).where(T.c.token_hash == token_hash(token_string))).mappings().first()
        if row is None:
            return None
        act = self.runtime.store.get(row["activation_id"])
        return TokenRecord(dict(row), self.client(row["client_id"]),
                           active=act is not None and act["status"] == states.ACTIVATED)

    # -- the authorization page -------------------------------------------------------------------
    @staticmethod
    def request_hash(args) -> str:
        """Binds a login session to one authorization request (every parameter but the page's own)."""
        items = sorted((k, v) for k, values in args.lists() for v in values if k not in PAGE_PARAMS)
        return hashlib.sha256(urlencode(items).encode()).hexdigest()

    def discovery(self) -> dict:
        issuer = self.issuer()
        return {
            "issuer": issuer,
            "authorization_endpoint": f"{issuer}/oidc/authorize",
            "token_endpoint": f"{issuer}/oidc/token",
            "userinfo_endpoint": f"{issuer}/oidc/userinfo",
            "jwks_uri": f"{issuer}/oidc/jwks.json",
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": [ALG],
            "scopes_supported": list(OIDC_SCOPES),
            "claims_supported": sorted({c for claims in SCOPE_CLAIMS.values() for c in claims}
                                       | {"iss", "aud", "exp", "iat", "auth_time", "nonce", "amr"}),
            "token_endpoint_auth_methods_supported": list(CodeGrant.TOKEN_ENDPOINT_AUTH_METHODS),
            "code_challenge_methods_supported": ["S256"],
            "request_parameter_supported": False,
            "claims_parameter_supported": False,
        }

    def jwks(self) -> dict:
        public = dict(self.key.as_dict(private=False))
        public.update(kid=self.kid, use="sig", alg=ALG)
        return {"keys": [public]}


#: query parameters of the authorization page itself (not part of the portal's request)
PAGE_PARAMS = ("login_session", "login_code")

