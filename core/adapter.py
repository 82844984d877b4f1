"""The adapter interface a city plugin implements, and the operation table.

An adapter translates between the contract (dicts valid against ``schemas/``) and one
city system's wire protocol. Every operation takes ONE request dict and returns ONE
response dict; failures are raised as the typed errors of :mod:`essc.core.errors`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeAlias

__all__ = ["CityAdapter", "Operation", "OPERATIONS", "Payload", "implemented_operations"]

#: A request or a response of the contract: a JSON object valid against its schema in ``schemas/``.
Payload: TypeAlias = dict[str, Any]


@dataclass(frozen=True)
class Operation:
    """One operation of the contract: its request and response schemas. ``required`` operations
    every plugin implements; the others a plugin declares in its manifest when it offers them.
    ``idempotent``: sending the same request twice is safe (the HTTP helper may retry it)."""

    name: str
    request_schema: str
    response_schema: str
    summary: str
    required: bool = False
    since: str = "1.0"
    idempotent: bool = True


#: The contract's operations, in the order of the citizen's flow.
OPERATIONS: dict[str, Operation] = {
    op.name: op
    for op in (
        Operation("read_card", "card_query", "card_record", "read the citizen's card record from the city",
                  required=True),
        Operation("verify_identity", "identity_check", "verification",
                  "check face liveness plus a second factor (SMS code or e-SSC password)", required=True),
        Operation("activate", "activation_request", "credential", "issue the e-SSC credential (sign number)",
                  required=True, idempotent=False),
        Operation("list_services", "service_query", "service_list", "list the online services the city offers"),
        Operation("health", "health_query", "health", "check that the city system answers", required=True),
        # contract 1.2: the e-SSC in use (all optional)
        Operation("card_status", "card_status_query", "card_state",
                  "read the card's current status (lost, sealed, cancelled, locked...)", since="1.2"),
        Operation("enable_payment", "payment_request", "payment_binding",
                  "raise the credential to sign level 2 after a password check (开通缴费结算功能)", since="1.2",
                  idempotent=False),
        Operation("reset_password", "password_reset", "password_reset_result",
                  "set a new e-SSC password after a face + SMS check", since="1.2", idempotent=False),
        Operation("query_contributions", "contribution_query", "contribution_history",
                  "list the citizen's contribution months, bases and insurance types over a period", since="1.2"),
        Operation("settle_medical", "settlement_request", "settlement_result",
                  "pre-settle, confirm or reverse a medical bill (fund share and self-pay)", since="1.2"),
    )
}


class CityAdapter:
    """Base class of city adapters. Override the operations your city supports and
    declare them in ``manifest.json`` under ``capabilities.operations``; the registry
    quarantines a plugin whose manifest declares an operation it does not implement.

    Raise typed errors: :class:`~essc.core.errors.CityNotOpened`,
    :class:`~essc.core.errors.RecordNotSynced`, :class:`~essc.core.errors.CardStatusAbnormal`,
    :class:`~essc.core.errors.IdentityMismatch`, :class:`~essc.core.errors.UpstreamUnavailable`,
    and for the operations of contract 1.2 :class:`~essc.core.errors.CredentialNotFound`,
    :class:`~essc.core.errors.SettlementNotFound`, :class:`~essc.core.errors.SettlementConflict`.
    Any other exception is reported as a contract violation.
    """

    def read_card(self, request: Payload) -> Payload:
        """``card_query`` -> ``card_record``."""
        raise NotImplementedError

    def verify_identity(self, request: Payload) -> Payload:
        """``identity_check`` -> ``verification``; a failed check raises IdentityMismatch."""
        raise NotImplementedError

    def activate(self, request: Payload) -> Payload:
        """``activation_request`` -> ``credential``; an abnormal card raises CardStatusAbnormal."""
        raise NotImplementedError

    def list_services(self, request: Payload) -> Payload:
        """``service_query`` -> ``service_list``."""
        raise NotImplementedError

    def health(self, request: Payload) -> Payload:
        """``health_query`` -> ``health``."""
        raise NotImplementedError

    # -- contract 1.2: the e-SSC in use (optional operations) --------------------------------
    def card_status(self, request: Payload) -> Payload:
        """``card_status_query`` -> ``card_state``: the card's status now. A query: an abnormal
        status is answered (``aaz502``), not raised; CityNotOpened, RecordNotSynced and
        UpstreamUnavailable as usual; a ``sign_no`` that is not the citizen's raises
        CredentialNotFound."""
        raise NotImplementedError

    def enable_payment(self, request: Payload) -> Payload:
        """``payment_request`` -> ``payment_binding``: sign level 2 with the card's bank account
        (``account_hint`` masked, never the full number). A ticket that is wrong, expired or not
        of a password check raises IdentityMismatch; an abnormal card CardStatusAbnormal; a
        ``sign_no`` that is not the citizen's CredentialNotFound."""
        raise NotImplementedError

    def reset_password(self, request: Payload) -> Payload:
        """``password_reset`` -> ``password_reset_result``. ``new_password`` is a secret: never
        log it, never put it in an error. A ticket that is wrong, expired or not of a face + SMS
        check raises IdentityMismatch; a reported lost, sealed or cancelled card CardStatusAbnormal."""
        raise NotImplementedError

    def query_contributions(self, request: Payload) -> Payload:
        """``contribution_query`` -> ``contribution_history``: one entry per month and insurance
        type of the period, oldest first (the registry has checked the period)."""
        raise NotImplementedError

    def settle_medical(self, request: Payload) -> Payload:
        """``settlement_request`` -> ``settlement_result``; idempotent by ``settlement_id`` at the
        city: the same request twice gives the same answer and never charges twice. Confirm of an
        unknown id raises SettlementNotFound; confirm of a reversed one SettlementConflict;
        reverse of a settled one answers ``reversed``; an abnormal card at pre_settle or confirm
        raises CardStatusAbnormal; a ``sign_no`` that is not the citizen's CredentialNotFound."""
        raise NotImplementedError


def implemented_operations(adapter: CityAdapter) -> set[str]:
    """Operations the adapter really implements (not the base class's placeholders)."""
    found: set[str] = set()
    for name in OPERATIONS:
        method = getattr(adapter, name, None)
        if not callable(method):
            continue
        func = getattr(method, "__func__", None)
        if func is not None and func is getattr(CityAdapter, name):
            continue
        found.add(name)
    return found
