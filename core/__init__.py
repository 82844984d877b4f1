"""essc-adapters core: the contract, the registry and the shared HTTP helper."""
from __future__ import annotations

import pluggy

#: MAJOR.MINOR of the contract (hooks + schemas). A plugin targeting the same major and
#: a minor up to this one is compatible; another major is quarantined.
CONTRACT_VERSION = "1.2"

#: Entry-point group through which installed plugins are found.
ENTRY_POINT_GROUP = "essc.plugins"

hookimpl = pluggy.HookimplMarker("essc")

from .adapter import OPERATIONS, CityAdapter  # noqa: E402
from .errors import (  # noqa: E402
    CardStatusAbnormal,
    CityNotOpened,
    ContractViolation,
    CredentialNotFound,
    EsscError,
    IdentityMismatch,
    InvalidInput,
    PermanentError,
    PluginUnavailable,
    RecordNotSynced,
    RetryableError,
    ReverifyError,
    SettlementConflict,
    SettlementNotFound,
    UpstreamUnavailable,
)

__all__ = [
    "CONTRACT_VERSION", "ENTRY_POINT_GROUP", "hookimpl", "CityAdapter", "OPERATIONS",
    "EsscError", "RetryableError", "ReverifyError", "PermanentError", "CityNotOpened", "RecordNotSynced",
    "CardStatusAbnormal", "IdentityMismatch", "UpstreamUnavailable", "ContractViolation", "InvalidInput",
    "PluginUnavailable", "CredentialNotFound", "SettlementNotFound", "SettlementConflict",
]
