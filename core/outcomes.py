"""One mapping from a city's business outcomes to the contract's typed errors.

Every dialect - a spec or hand-written code - names what a city answered with one of the
outcome kinds below; this module turns the kind into the typed error, so that the same
situation is the same error (and the same recovery) in every city.

=====================  =====================================================  ==========
kind                   meaning                                                error
=====================  =====================================================  ==========
not_opened             the city has not opened the e-SSC service              CITY_NOT_OPENED
not_synced             record not synced yet / 查无此人 (``retry_after``)     RECORD_NOT_SYNCED
card_status            the card is not normal (``status``)                    CARD_STATUS_ABNORMAL
identity_mismatch      face or second factor does not match                   IDENTITY_MISMATCH
ticket_invalid         the verification ticket is unknown, expired, of        IDENTITY_MISMATCH
                       another citizen or of the wrong second factor
credential_unknown     no credential with this sign number for the citizen    CREDENTIAL_NOT_FOUND
settlement_unknown     no settlement with this id for the citizen             SETTLEMENT_NOT_FOUND
settlement_conflict    the settlement's state forbids the action (``state``)  SETTLEMENT_CONFLICT
city_busy              the city asks us to come back later                    UPSTREAM_UNAVAILABLE
unauthorized           the city refused our credentials                       CONTRACT_VIOLATION
bad_signature          the city refused our signature                         CONTRACT_VIOLATION
bad_timestamp          the city refused our timestamp                         CONTRACT_VIOLATION
bad_request            the city refused a field of ours                       CONTRACT_VIOLATION
unknown_operation      the city does not know the operation                   CONTRACT_VIOLATION
unknown_city           the city system does not serve this city               CONTRACT_VIOLATION
unparseable            the city could not parse our request                   CONTRACT_VIOLATION
undecryptable          the city could not decrypt our request                 CONTRACT_VIOLATION
too_large              the city refused the size of our request               CONTRACT_VIOLATION
=====================  =====================================================  ==========

The CONTRACT_VIOLATION kinds mean our side (credentials, translation, routing) must be
fixed: retrying would not help. The city-side kinds (``unauthorized`` ... ``too_large``)
are also the protocol errors the mock answers with.
"""
from __future__ import annotations

from typing import Any

from .errors import (
    CardStatusAbnormal,
    CityNotOpened,
    ContractViolation,
    CredentialNotFound,
    EsscError,
    IdentityMismatch,
    RecordNotSynced,
    SettlementConflict,
    SettlementNotFound,
    UpstreamUnavailable,
)

__all__ = ["BUSINESS_KINDS", "PROTOCOL_KINDS", "KINDS", "SETTLEMENT_STATES", "outcome_error"]

#: ``settlement_result.state`` values (``common.schema.json#/$defs/settlementState``)
SETTLEMENT_STATES = ("pre_settled", "settled", "reversed")

#: outcomes of the business itself (the mock's business model raises these)
BUSINESS_KINDS = ("not_opened", "not_synced", "card_status", "identity_mismatch", "ticket_invalid", "unknown_city",
                  "credential_unknown", "settlement_unknown", "settlement_conflict")
#: refusals of the request before any business (our side is wrong)
PROTOCOL_KINDS = ("unauthorized", "bad_signature", "bad_timestamp", "bad_request", "unknown_operation",
                  "unparseable", "undecryptable", "too_large")
KINDS = BUSINESS_KINDS + PROTOCOL_KINDS + ("city_busy",)


def outcome_error(kind: str, *, city: str, operation: str, code: str | None = None,
                  retry_after: float | None = None, status: str | None = None, message_field: str | None = None,
                  state: str | None = None) -> EsscError:
    """The typed error for ``kind``; ``code`` is the city's result code (named in the
    detail, never the city's free text, which could echo personal data); ``state`` is the
    settlement's state a ``settlement_conflict`` names, when the city said."""
    ctx: dict[str, Any] = {"city": city, "operation": operation}
    said = f"the city answered {code}" if code is not None else f"the city answered {kind}"
    if kind == "not_opened":
        return CityNotOpened(said, **ctx)
    if kind == "not_synced":
        return RecordNotSynced(said, retry_after=retry_after, **ctx)
    if kind == "card_status":
        if status in (None, "normal"):
            return UpstreamUnavailable(f"{said} without an abnormal card status", reason="malformed_response",
                                       **ctx)
        return CardStatusAbnormal(status=str(status), **ctx)
    if kind in ("identity_mismatch", "ticket_invalid"):
        return IdentityMismatch(said, **ctx)
    if kind == "credential_unknown":
        return CredentialNotFound(said, **ctx)
    if kind == "settlement_unknown":
        return SettlementNotFound(said, **ctx)
    if kind == "settlement_conflict":
        known = state if state in SETTLEMENT_STATES else None
        return SettlementConflict(said + (f": the settlement is {known}" if known else ""), state=known, **ctx)
    if kind == "city_busy":
        return UpstreamUnavailable(said, reason="rate_limited", retry_after=retry_after, **ctx)
    if kind in PROTOCOL_KINDS or kind == "unknown_city":
        named = f"; field named: {message_field}" if message_field else ""
        return ContractViolation(f"{said} ({kind}): our request must be fixed{named}", hook=operation,
                                 rule="city-rejected-request", **ctx)
    raise ValueError(f"unknown outcome kind {kind!r}; expected one of {', '.join(KINDS)}")
