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

from sqlalchemy import JSON, Float, ForeignKey, Integer, String, Text, UniqueConstraint
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
