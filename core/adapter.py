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
    """One operation of the contract: its request and response schemas."""

    name: str
    request_schema: str
    response_schema: str
    summary: str


#: The contract's operations, in the order of the citizen's flow.
OPERATIONS: dict[str, Operation] = {
    op.name: op
    for op in (
        Operation("read_card", "card_query", "card_record", "read the citizen's card record from the city"),
        Operation("verify_identity", "identity_check", "verification",
                  "check face liveness plus a second factor (SMS code or e-SSC password)"),
        Operation("activate", "activation_request", "credential", "issue the e-SSC credential (sign number)"),
        Operation("list_services", "service_query", "service_list", "list the online services the city offers"),
        Operation("health", "health_query", "health", "check that the city system answers"),
    )
}


class CityAdapter:
    """Base class of city adapters. Override the operations your city supports and
    declare them in ``manifest.json`` under ``capabilities.operations``; the registry
    quarantines a plugin whose manifest declares an operation it does not implement.

    Raise typed errors: :class:`~essc.core.errors.CityNotOpened`,
    :class:`~essc.core.errors.RecordNotSynced`, :class:`~essc.core.errors.CardStatusAbnormal`,
    :class:`~essc.core.errors.IdentityMismatch`, :class:`~essc.core.errors.UpstreamUnavailable`.
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
