"""Typed errors of the activation service's own policy (no city involved).

They sit beside the contract's errors (``essc.core.errors``) and follow the same shape
(``to_dict()``, recovery, zh+en messages, never personal data); the HTTP API documents
their codes in ``schemas/openapi.json``.
"""
from __future__ import annotations

from essc.core.errors import PermanentError, RetryableError


class IdentityLocked(RetryableError):
    """Too many failed identity checks for this citizen + city: every channel's verification
    is refused, without asking the city, until ``retry_after`` seconds have passed."""

    code = "IDENTITY_LOCKED"
    http_status = 423
    message_zh = "身份核验失败次数过多，请稍后再试"
    message_en = "too many failed identity checks; try again later"


class ActivationConflict(PermanentError):
    """The activation is not in a state where this request applies (already activated,
    no card read yet, another verification of this citizen in progress...)."""

    code = "CONFLICT"
    http_status = 409
    message_zh = "当前状态不允许此操作"
    message_en = "the activation is not in a state that allows this request"


class VerificationBusy(RetryableError):
    """Another verification of the same citizen + city is running right now."""

    code = "CONFLICT"
    http_status = 409
    message_zh = "正在进行另一次身份核验，请稍后再试"
    message_en = "another identity check of this citizen is in progress"


class ActivationNotFound(PermanentError):
    """No activation with this id for this channel (another channel's activation is not
    confirmed to exist)."""

    code = "NOT_FOUND"
    http_status = 404
    message_zh = "资源不存在"
    message_en = "not found"


class ServiceBusy(RetryableError):
    """The service has as much city work in flight as it takes: come back after ``retry_after``
    (nothing was recorded)."""

    code = "SERVICE_BUSY"
    http_status = 503
    message_zh = "服务繁忙，请稍后再试"
    message_en = "the service is busy; try again later"


class CityBusy(RetryableError):
    """The city has as many calls in flight as its bulkhead allows: new work for it is refused,
    not queued (nothing was recorded); come back after ``retry_after``."""

    code = "CITY_BUSY"
    http_status = 429
    message_zh = "该城市社保系统繁忙，请稍后再试"
    message_en = "the city's system is busy; try again later"
