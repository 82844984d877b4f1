"""The states of one activation, mirroring what the citizen sees (docs/domain.md).

consent given -> city chosen -> card record read (awaiting_verification) -> face + identity
check passed (identity_verified) -> activated. The service reads the card on submission;
the identity check is a second request (``POST /v1/activations/{id}/verification``).
"""
from __future__ import annotations

RECEIVED = "received"  #: consent given and city chosen; nothing asked of the city yet
VERIFIED = "identity_verified"  #: face liveness + second factor passed
ACTIVATED = "activated"  #: credential issued (final)
PENDING_SYNC = "pending_sync"  #: record not synced yet; retried automatically
PENDING_UPSTREAM = "pending_upstream"  #: city unavailable; retried automatically
AWAITING_VERIFICATION = "awaiting_verification"  #: card read (normal): waits for face + identity check
CITY_NOT_OPENED = "city_not_opened"  #: final
CARD_STATUS_ABNORMAL = "card_status_abnormal"  #: final, names the status
IDENTITY_FAILED = "identity_failed"  #: final: too many identity mismatches (the citizen is locked out)
EXPIRED = "expired"  #: final: pending longer than the maximum age
FAILED = "failed"  #: final: contract violation, plugin unavailable, invalid data
UNLINKED = "unlinked"  #: final: the channel's binding ended (DELETE, action 003); a resubmission starts again

#: states a worker may pick up (the flow resumes from the last completed step)
RUNNABLE = (RECEIVED, VERIFIED, PENDING_SYNC, PENDING_UPSTREAM)
PENDING = (PENDING_SYNC, PENDING_UPSTREAM)
#: states a resubmission restarts from the card read (with the data of the resubmission)
RESTARTABLE = (RECEIVED, PENDING_SYNC, PENDING_UPSTREAM, AWAITING_VERIFICATION, CITY_NOT_OPENED, CARD_STATUS_ABNORMAL,
               IDENTITY_FAILED, EXPIRED, FAILED, UNLINKED)
FINAL = (ACTIVATED, CITY_NOT_OPENED, CARD_STATUS_ABNORMAL, IDENTITY_FAILED, EXPIRED, FAILED, UNLINKED)
ALL = RUNNABLE + (AWAITING_VERIFICATION,) + FINAL
