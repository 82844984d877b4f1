"""The states of one activation, mirroring what the citizen sees (DOMAIN.md).

consent given -> city chosen -> card record read -> identity verified -> activated.
"""
from __future__ import annotations

RECEIVED = "received"  #: consent given and city chosen; nothing asked of the city yet
CARD_READ = "card_read"  #: the card record was read (status normal)
VERIFIED = "identity_verified"  #: face liveness + second factor passed
ACTIVATED = "activated"  #: credential issued (final)
PENDING_SYNC = "pending_sync"  #: record not synced yet; retried automatically
PENDING_UPSTREAM = "pending_upstream"  #: city unavailable; retried automatically
AWAITING_VERIFICATION = "awaiting_verification"  #: identity mismatch; the citizen may try again
CITY_NOT_OPENED = "city_not_opened"  #: final
CARD_STATUS_ABNORMAL = "card_status_abnormal"  #: final, names the status
IDENTITY_FAILED = "identity_failed"  #: final: too many identity mismatches
EXPIRED = "expired"  #: final: pending longer than the maximum age
FAILED = "failed"  #: final: contract violation, plugin unavailable, invalid data

#: states a worker may pick up (the flow resumes from the last completed step)
RUNNABLE = (RECEIVED, CARD_READ, VERIFIED, PENDING_SYNC, PENDING_UPSTREAM)
PENDING = (PENDING_SYNC, PENDING_UPSTREAM)
FINAL = (ACTIVATED, CITY_NOT_OPENED, CARD_STATUS_ABNORMAL, IDENTITY_FAILED, EXPIRED, FAILED)
ALL = RUNNABLE + (AWAITING_VERIFICATION,) + FINAL
