"""Typed failures of the e-SSC framework.

Errors are grouped by how a caller recovers (the Home Assistant pattern):

* :class:`RetryableError` - try again later (``retry_after`` seconds is a hint);
* :class:`ReverifyError` - the citizen must verify again (new face scan / code);
* :class:`PermanentError` - retrying will not help; show the message.

Every error has a stable ``code``, a Chinese and an English message (wording from
docs/domain.md, "Failure wording") and ``details`` with *no personal data*: ID numbers, names, card numbers and
face tokens never go into an error. ``to_dict()`` gives the error object described by
``schemas/error.schema.json``.
"""
from __future__ import annotations

from typing import Any

__all__ = [
    "EsscError",
    "RetryableError",
    "ReverifyError",
    "PermanentError",
    "CityNotOpened",
    "RecordNotSynced",
    "CardStatusAbnormal",
    "IdentityMismatch",
    "UpstreamUnavailable",
    "ContractViolation",
    "InvalidInput",
    "PluginUnavailable",
    "CredentialNotFound",
    "SettlementNotFound",
    "SettlementConflict",
    "CARD_STATUSES",
    "UPSTREAM_REASONS",
    "error_from_dict",
]

#: Contract card statuses (``aaz502``) with their Chinese wording (docs/domain.md, "Card statuses").
CARD_STATUSES = {
    "normal": "正常",
    "reported_lost": "挂失",
    "sealed": "封存",
    "cancelled": "注销",
    "locked": "应用锁定",
}


class EsscError(Exception):
    """Base of every typed framework error."""

    code = "ESSC_ERROR"
    recovery = "permanent"
    http_status = 500
    message_zh = "系统错误"
    message_en = "internal error"

    def __init__(self, detail: str | None = None, **details: Any) -> None:
        self.detail = detail
        self.details = {k: v for k, v in details.items() if v is not None}
        super().__init__(self.message)

    @property
    def retryable(self) -> bool:
        return self.recovery == "retry"

    @property
    def message(self) -> str:
        text = f"{self.message_en} ({self.message_zh})"
        if self.detail:
            text += f": {self.detail}"
        return text

    def to_dict(self) -> dict[str, Any]:
        """The error object (``schemas/error.schema.json``)."""
        out: dict[str, Any] = {
            "code": self.code,
            "message": self.message,
            "message_zh": self.message_zh,
            "message_en": self.message_en,
            "recovery": self.recovery,
            "retryable": self.retryable,
            "details": dict(self.details),
        }
        if self.detail:
            out["detail"] = self.detail
        return out

    def with_context(self, **context: Any) -> EsscError:
        """Add call context (city, operation, plugin) without overwriting what is set."""
        for key, value in context.items():
            if value is not None:
                self.details.setdefault(key, value)
        return self


class RetryableError(EsscError):
    """Try again later; ``retry_after`` (seconds) says when, if the city told us."""

    recovery = "retry"
    http_status = 503

    def __init__(self, detail: str | None = None, *, retry_after: float | None = None, **details: Any):
        super().__init__(detail, retry_after=retry_after, **details)

    @property
    def retry_after(self) -> float | None:
        return self.details.get("retry_after")


class ReverifyError(EsscError):
    """The citizen must pass the identity check again."""

    recovery = "reverify"
    http_status = 403


class PermanentError(EsscError):
    """Retrying the same request will not help."""

    recovery = "permanent"
    http_status = 422


class CityNotOpened(PermanentError):
    code = "CITY_NOT_OPENED"
    http_status = 409
    message_zh = "该城市暂未开通电子社保卡业务"
    message_en = "the city has not opened the e-SSC service yet"


class RecordNotSynced(RetryableError):
    code = "RECORD_NOT_SYNCED"
    http_status = 409
    message_zh = "信息未同步，查无此人社保卡信息，请稍后再试（同步最长需一天）"
    message_en = "the card record has not synced to the platform yet; try again later (sync can take up to a day)"


class CardStatusAbnormal(PermanentError):
    code = "CARD_STATUS_ABNORMAL"
    http_status = 409
    message_zh = "卡状态异常"
    message_en = "the card status is abnormal"

    def __init__(self, detail: str | None = None, *, status: str, **details: Any):
        if status not in CARD_STATUSES:
            raise ValueError(f"unknown card status {status!r}; expected one of {sorted(CARD_STATUSES)}")
        super().__init__(detail or f"card is {status} ({CARD_STATUSES[status]})", status=status, **details)

    @property
    def status(self) -> str:
        return str(self.details["status"])


class IdentityMismatch(ReverifyError):
    code = "IDENTITY_MISMATCH"
    message_zh = "人脸与身份不匹配"
    message_en = "the face or the second factor does not match the identity"


class UpstreamUnavailable(RetryableError):
    """The city system did not answer usefully: timeout, 5xx, 429, dropped connection,
    or a body that cannot be parsed. ``reason`` is one of :data:`UPSTREAM_REASONS`."""

    code = "UPSTREAM_UNAVAILABLE"
    http_status = 503
    message_zh = "城市社保系统暂时无法访问"
    message_en = "the city social-insurance system is unavailable"
    #: the last two are the framework's own (core/resilience.py): the city was not called
    REASONS = ("timeout", "http_5xx", "rate_limited", "connection", "malformed_response", "bulkhead_full",
               "circuit_open")

    def __init__(self, detail: str | None = None, *, reason: str, **details: Any):
        if reason not in self.REASONS:
            raise ValueError(f"unknown upstream reason {reason!r}; expected one of {self.REASONS}")
        super().__init__(detail, reason=reason, **details)

    @property
    def reason(self) -> str:
        return str(self.details["reason"])


class ContractViolation(PermanentError):
    """An adapter broke the contract: a response that fails its schema, an untyped
    exception, a missing capability. Names city, hook, JSON path and rule."""

    code = "CONTRACT_VIOLATION"
    http_status = 502
    message_zh = "城市适配器违反接口契约"
    message_en = "the city adapter broke the contract"

    def __init__(self, detail: str | None = None, *, city: str | None = None, hook: str | None = None,
                 path: str | None = None, rule: str | None = None, **details: Any):
        super().__init__(detail, city=city, hook=hook, path=path, rule=rule, **details)


class InvalidInput(PermanentError):
    """The caller's input is wrong: a bad ID-number checksum, an unknown city code, a
    request that fails its schema. ``field`` names the offending field."""

    code = "INVALID_INPUT"
    http_status = 400
    message_zh = "输入信息有误"
    message_en = "invalid input"

    def __init__(self, detail: str | None = None, *, field: str | None = None, **details: Any):
        super().__init__(detail, field=field, **details)


class PluginUnavailable(PermanentError):
    """The city is known but its plugin is quarantined or blocked."""

    code = "PLUGIN_UNAVAILABLE"
    http_status = 503
    message_zh = "该城市的接入插件不可用"
    message_en = "the plugin serving this city is unavailable"


class CredentialNotFound(PermanentError):
    """The city holds no e-SSC credential with this sign number for the citizen (never issued,
    another person's, or one of another city): activate first, or use the citizen's own."""

    code = "CREDENTIAL_NOT_FOUND"
    http_status = 409
    message_zh = "未查询到该电子社保卡的签发信息，请先申领电子社保卡"
    message_en = "the city holds no e-SSC credential with this sign number for the citizen"


class SettlementNotFound(PermanentError):
    """``settle_medical`` confirm of a settlement id the city does not hold for the citizen
    (never pre-settled there)."""

    code = "SETTLEMENT_NOT_FOUND"
    http_status = 404
    message_zh = "未查询到该笔结算信息"
    message_en = "the city holds no settlement with this id for the citizen"


class SettlementConflict(PermanentError):
    """``settle_medical`` cannot do this to the settlement as it stands: confirm of a reversed
    one, or a pre-settlement under an id already used for another bill (or reversed).
    ``state`` names the settlement's state at the city when it is the citizen's."""

    code = "SETTLEMENT_CONFLICT"
    http_status = 409
    message_zh = "该笔结算状态不允许此操作"
    message_en = "the settlement's state at the city does not allow this action"


#: Every ``reason`` of :class:`UpstreamUnavailable` (``schemas/error.schema.json`` lists the same).
UPSTREAM_REASONS = UpstreamUnavailable.REASONS

_BY_CODE = {cls.code: cls for cls in (CityNotOpened, RecordNotSynced, CardStatusAbnormal, IdentityMismatch,
                                      UpstreamUnavailable, ContractViolation, InvalidInput, PluginUnavailable,
                                      CredentialNotFound, SettlementNotFound, SettlementConflict)}


def error_from_dict(data: dict[str, Any]) -> EsscError:
    """Rebuild a typed error from its error object (e.g. one stored in a database)."""
    cls = _BY_CODE.get(data.get("code", ""), EsscError)
    err = cls.__new__(cls)
    EsscError.__init__(err, data.get("detail"), **data.get("details", {}))
    return err
