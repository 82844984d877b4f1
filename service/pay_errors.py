"""Typed errors of payment and medical settlement on the platform's side (essc.service.payment,
essc.service.settlements). The city's own refusals are the contract's (essc.core.errors:
``CREDENTIAL_NOT_FOUND``, ``SETTLEMENT_CONFLICT``, ``CARD_STATUS_ABNORMAL``...).

Same shape as essc.core.errors (``to_dict()``, recovery, zh + en messages, never personal data).
"""
from __future__ import annotations

from essc.core.errors import PermanentError


class NotOffered(PermanentError):
    """The citizen's city does not offer this online: its plugin lacks the operation
    (``details.operation``)."""

    code = "NOT_OFFERED"
    http_status = 409
    message_zh = "该城市暂未开通此项业务"
    message_en = "the citizen's city does not offer this online"


class PaymentNotEnabled(PermanentError):
    """The bill has a self-paid part and the citizen's e-SSC has no payment enabled (sign level 2):
    nothing was charged (the pre-settlement was reversed at the city)."""

    code = "PAYMENT_NOT_ENABLED"
    http_status = 403
    message_zh = "电子社保卡未开通缴费结算功能，无法支付个人自付部分"
    message_en = "the e-SSC has no payment enabled (sign level 2) for the self-paid part"


class SettlementStateConflict(PermanentError):
    """The settlement is not in a state where this request applies (confirm of a reversed one...);
    ``details.settlement_state`` names its state."""

    code = "SETTLEMENT_STATE_CONFLICT"
    http_status = 409
    message_zh = "该笔结算当前状态不允许此操作"
    message_en = "the settlement's state does not allow this request"


class IdempotencyKeyReused(PermanentError):
    """The relying party used this idempotency key for another request body."""

    code = "IDEMPOTENCY_KEY_REUSED"
    http_status = 422
    message_zh = "幂等键已用于另一笔不同的结算请求"
    message_en = "this idempotency key was used for a different request"


class SettlementHoldExpired(PermanentError):
    """The pre-settlement was not confirmed in time: the platform reversed it."""

    code = "SETTLEMENT_HOLD_EXPIRED"
    http_status = 409
    message_zh = "预结算超时未确认，已自动冲正"
    message_en = "the pre-settlement was not confirmed in time and was reversed"


class SettlementAborted(PermanentError):
    """The city's system failed during a pre-settlement or a confirmation, or gave no answer within
    the leg's deadline: the platform reversed the bill, nothing is charged (``details.cause``)."""

    code = "SETTLEMENT_ABORTED"
    http_status = 502
    message_zh = "医保结算失败，已冲正，未产生扣费"
    message_en = "the city could not settle the bill; it was reversed and nothing is charged"


class SettlementNotFound(PermanentError):
    """No settlement with this id for this relying party (another party's is not confirmed to exist)."""

    code = "NOT_FOUND"
    http_status = 404
    message_zh = "资源不存在"
    message_en = "not found"
