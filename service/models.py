"""Database tables of the activation service (SQLAlchemy 2; SQLite or PostgreSQL).

No personal data in clear: the ID number is kept as a keyed hash (``citizen_key``) and a
masked hint; what the retries need (ID number, name; after a passed identity check the
city's verification ticket) is sealed. Verification secrets (face token, SMS code,
password) are never stored: they live only in the request that uses them.

One activation per citizen + city + channel (each channel sees only its own); the
citizen + city's identity checks (failures, lockout, the one verification running) are
counted in ``citizen_identity``, shared by every channel.
"""
from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Activation(Base):
    __tablename__ = "activations"
    __table_args__ = (UniqueConstraint("citizen_key", "city", "channel", name="uq_activation_citizen_city_channel"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    citizen_key: Mapped[str] = mapped_column(String(64))
    city: Mapped[str] = mapped_column(String(6))
    channel: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(32), index=True)
    id_hint: Mapped[str] = mapped_column(String(32))
    sealed: Mapped[str] = mapped_column(Text)
    runs: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[float | None] = mapped_column(Float, index=True, nullable=True)
    lease_until: Mapped[float | None] = mapped_column(Float, nullable=True)
    lease_owner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)
    card_status: Mapped[str | None] = mapped_column(String(16), nullable=True)
    credential: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    error: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    #: the city's verification ticket (sealed) between a passed check and the credential
    verified: Mapped[str | None] = mapped_column(Text, nullable=True)


class CitizenIdentity(Base):
    """Identity checks of one citizen in one city, across channels."""

    __tablename__ = "citizen_identity"

    citizen_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    city: Mapped[str] = mapped_column(String(6), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[float | None] = mapped_column(Float, nullable=True)
    #: a verification holds the citizen + city until then (one at a time, every channel)
    busy_until: Mapped[float | None] = mapped_column(Float, nullable=True)


class AuditEvent(Base):
    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    activation_id: Mapped[str] = mapped_column(ForeignKey("activations.id"), index=True)
    at: Mapped[float] = mapped_column(Float)
    event: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str | None] = mapped_column(String(300), nullable=True)
    actor: Mapped[str | None] = mapped_column(String(64), nullable=True)


class Callback(Base):
    """The callback URL of an activation (service/callbacks.py) and what was last announced."""

    __tablename__ = "callbacks"

    activation_id: Mapped[str] = mapped_column(ForeignKey("activations.id"), primary_key=True)
    url: Mapped[str] = mapped_column(String(2048))
    #: "<status>@<updated_at>" of the last delivered announcement
    delivered: Mapped[str | None] = mapped_column(String(80), nullable=True)


# -- the e-SSC in use (service/qrcodes.py, service/login.py, service/oidc.py) ------------------
# Codes and tokens are kept as SHA-256 hashes only: whoever reads the database cannot use them.


class QrCode(Base):
    """A citizen's dynamic code: bound to one activation (one channel's binding), single use."""

    __tablename__ = "qrcodes"

    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    activation_id: Mapped[str] = mapped_column(ForeignKey("activations.id"), index=True)
    issued_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float, index=True)
    used_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    used_by: Mapped[str | None] = mapped_column(String(40), nullable=True)
    busi_type: Mapped[str | None] = mapped_column(String(2), nullable=True)
    #: set when the binding ended (the channel unlinked the e-SSC)
    revoked_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class UsageEvent(Base):
    """Audit of the e-SSC's use: code issues and verifications, logins (no personal data: the
    party, the business type, the activation id, the outcome code)."""

    __tablename__ = "usage_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[float] = mapped_column(Float, index=True)
    event: Mapped[str] = mapped_column(String(32))
    #: the relying party or channel that asked
    party: Mapped[str | None] = mapped_column(String(40), nullable=True)
    activation_id: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    busi_type: Mapped[str | None] = mapped_column(String(2), nullable=True)
    #: "ok" or the error code
    outcome: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str | None] = mapped_column(String(300), nullable=True)


class LoginSession(Base):
    """A portal's scan login: pending -> confirmed (by the citizen's channel) -> delivered (the
    portal read the result once, or an OpenID Connect authorization code was issued)."""

    __tablename__ = "login_sessions"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    party: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float, index=True)
    activation_id: Mapped[str | None] = mapped_column(ForeignKey("activations.id"), nullable=True)
    confirmed_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    delivered_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    #: OpenID Connect: hash of the authorization request this session belongs to
    request_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)


class OidcCode(Base):
    """An OpenID Connect authorization code (single use, short-lived)."""

    __tablename__ = "oidc_codes"

    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(40))
    activation_id: Mapped[str] = mapped_column(ForeignKey("activations.id"))
    redirect_uri: Mapped[str] = mapped_column(String(2048))
    scope: Mapped[str] = mapped_column(String(200))
    nonce: Mapped[str | None] = mapped_column(String(255), nullable=True)
    code_challenge: Mapped[str] = mapped_column(String(128))
    code_challenge_method: Mapped[str] = mapped_column(String(8))
    auth_time: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float, index=True)
    used_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class OidcToken(Base):
    """An OpenID Connect access token (bearer, for userinfo)."""

    __tablename__ = "oidc_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(40))
    activation_id: Mapped[str] = mapped_column(ForeignKey("activations.id"))
    scope: Mapped[str] = mapped_column(String(200))
    issued_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float, index=True)
    #: the authorization code it was issued for (a replayed code revokes its tokens)
    code_hash: Mapped[str] = mapped_column(String(64), index=True)
    revoked: Mapped[int] = mapped_column(Integer, default=0)  # 0 or 1


# -- payment and medical settlement (service/settlements.py) -----------------------------------


class Settlement(Base):
    """A medical settlement (a durable saga): a relying party's bill pre-settled, confirmed or
    reversed at the citizen's city. ``id`` is also the settlement id at the city (its idempotency
    key there); (party, idempotency_key) is the relying party's. The ID number, the sign number
    and the bill's items are sealed (a bill tells of the citizen's health)."""

    __tablename__ = "settlements"
    __table_args__ = (UniqueConstraint("party", "idempotency_key", name="uq_settlement_party_key"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    party: Mapped[str] = mapped_column(String(40))
    idempotency_key: Mapped[str] = mapped_column(String(64))
    #: SHA-256 of the request body as the party sent it (the code included): a reused key is compared
    request_hash: Mapped[str] = mapped_column(String(64))
    activation_id: Mapped[str] = mapped_column(ForeignKey("activations.id"), index=True)
    city: Mapped[str] = mapped_column(String(6))
    busi_type: Mapped[str] = mapped_column(String(2))
    hospital_code: Mapped[str] = mapped_column(String(30))
    hospital_name: Mapped[str] = mapped_column(String(100))
    #: the citizen's sign level when the code was verified (2: payment enabled)
    sign_level: Mapped[int] = mapped_column(Integer)
    #: the pairwise person number the party knows the citizen by
    essc_no: Mapped[str] = mapped_column(String(40))
    sealed: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(20), index=True)
    total_cents: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    fund_cents: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    self_pay_cents: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    city_ref: Mapped[str | None] = mapped_column(String(64), nullable=True)
    #: why the platform failed or reversed it (an error object), None otherwise
    error: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    runs: Mapped[int] = mapped_column(Integer, default=0)
    #: when the pending leg is due (a retry), or when an unconfirmed pre-settlement's hold ends
    next_attempt_at: Mapped[float | None] = mapped_column(Float, index=True, nullable=True)
    #: when the current leg began (its retries give up after settlement_leg_deadline_s)
    leg_started_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    lease_until: Mapped[float | None] = mapped_column(Float, nullable=True)
    lease_owner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)


class SettlementEvent(Base):
    """The audit trail of a settlement (no personal data: states, legs, outcome codes, amounts)."""

    __tablename__ = "settlement_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    settlement_id: Mapped[str] = mapped_column(ForeignKey("settlements.id"), index=True)
    at: Mapped[float] = mapped_column(Float)
    event: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(20))
    detail: Mapped[str | None] = mapped_column(String(300), nullable=True)
    actor: Mapped[str | None] = mapped_column(String(64), nullable=True)
