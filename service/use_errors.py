"""Typed errors of the e-SSC in use: dynamic codes, logins, unlinking (no city involved).

Same shape as essc.core.errors (``to_dict()``, recovery, zh + en messages, never personal
data; the code itself is never echoed). A card the city reports abnormal is the contract's
``CARD_STATUS_ABNORMAL`` (essc.core.errors.CardStatusAbnormal, naming the status).
"""
from __future__ import annotations

from essc.core.errors import PermanentError


class QrCodeNotFound(PermanentError):
    """No such code (never issued, or purged long after its expiry)."""

    code = "QRCODE_NOT_FOUND"
    http_status = 404
    message_zh = "电子社保卡二维码无效"
    message_en = "no such e-SSC code"


class QrCodeExpired(PermanentError):
    """The code's validity ended (or a newer code of the same binding replaced it): the
    citizen shows a fresh one."""

    code = "QRCODE_EXPIRED"
    http_status = 410
    message_zh = "电子社保卡二维码已过期，请刷新后重试"
    message_en = "the e-SSC code has expired; ask for a fresh one"


class QrCodeUsed(PermanentError):
    """The code was already verified once (a code is single use)."""

    code = "QRCODE_USED"
    http_status = 409
    message_zh = "电子社保卡二维码已使用"
    message_en = "the e-SSC code was already used"


class QrCodeRevoked(PermanentError):
    """The channel binding the code was issued for has ended (unlinked)."""

    code = "QRCODE_REVOKED"
    http_status = 410
    message_zh = "电子社保卡已在该渠道解除绑定"
    message_en = "the e-SSC binding of this code has ended"


class BusiTypeNotAllowed(PermanentError):
    """The relying party may not verify codes for this business type (its configuration)."""

    code = "BUSI_TYPE_NOT_ALLOWED"
    http_status = 403
    message_zh = "该机构无权办理此类业务"
    message_en = "this relying party may not use this business type"


class NotActivated(PermanentError):
    """The activation has no active credential (not activated yet, or unlinked)."""

    code = "NOT_ACTIVATED"
    http_status = 409
    message_zh = "电子社保卡未激活"
    message_en = "the e-SSC is not activated on this channel"


class LoginNotAllowed(PermanentError):
    """Only portals (relying parties of kind "portal") open login sessions."""

    code = "LOGIN_NOT_ALLOWED"
    http_status = 403
    message_zh = "该机构无权使用电子社保卡登录"
    message_en = "this relying party may not log citizens in"


class LoginSessionNotFound(PermanentError):
    code = "LOGIN_SESSION_NOT_FOUND"
    http_status = 404
    message_zh = "登录请求不存在"
    message_en = "no such login session"


class LoginSessionExpired(PermanentError):
    code = "LOGIN_SESSION_EXPIRED"
    http_status = 410
    message_zh = "登录二维码已过期，请刷新后重试"
    message_en = "the login session has expired; start a new one"


class LoginSessionUsed(PermanentError):
    """The login session was already confirmed (a login code is confirmed once)."""

    code = "LOGIN_SESSION_USED"
    http_status = 409
    message_zh = "登录二维码已使用"
    message_en = "the login session was already confirmed"
