"""Errors of the HTTP API: every failure is a JSON body ``{"error": <error object>}``
(schemas/error.schema.json, plus the API's own codes), never an HTML page or a traceback."""
from __future__ import annotations

import math
import traceback

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException

from essc.core.errors import EsscError, InvalidInput, PermanentError
from essc.core.masking import get_logger, scrub

log = get_logger("essc.service.api")


class ApiError(PermanentError):
    """Failures of the HTTP layer itself (no city involved)."""


class Unauthorized(ApiError):
    code = "UNAUTHORIZED"
    http_status = 401
    message_zh = "渠道身份验证失败"
    message_en = "the channel is not authenticated"


class TooManyRequests(ApiError):
    """429: too many failed authentications; ``retry_after`` (seconds) becomes ``Retry-After``."""

    code = "TOO_MANY_REQUESTS"
    http_status = 429
    recovery = "retry"
    message_zh = "身份验证失败次数过多，请稍后再试"
    message_en = "too many failed authentications"

    def __init__(self, detail: str | None = None, *, retry_after: float, **details) -> None:
        super().__init__(detail, retry_after=max(1, math.ceil(retry_after)), **details)


class NotFound(ApiError):
    code = "NOT_FOUND"
    http_status = 404
    message_zh = "资源不存在"
    message_en = "not found"


class MethodNotAllowed(ApiError):
    code = "METHOD_NOT_ALLOWED"
    http_status = 405
    message_zh = "不支持该请求方法"
    message_en = "method not allowed"


class BadRequest(InvalidInput):
    """INVALID_INPUT with another HTTP status (413 too large, 415 wrong media type)."""

    def __init__(self, detail: str | None = None, *, http_status: int = 400, **details) -> None:
        super().__init__(detail, **details)
        self.http_status = http_status


def error_response(err: EsscError, headers: dict | None = None):
    """The JSON error response; a 409, 423, 429 or 503 whose error carries a finite ``retry_after``
    also gets ``Retry-After`` (whole seconds, at least 1). ``headers`` win."""
    response = jsonify({"error": err.to_dict()})
    response.status_code = err.http_status
    retry_after = err.details.get("retry_after")
    if (err.http_status in (409, 423, 429, 503) and isinstance(retry_after, int | float)
            and not isinstance(retry_after, bool) and math.isfinite(retry_after)):
        response.headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def _from_http(exc: HTTPException) -> EsscError:
    code = exc.code or 500
    if code == 404:
        return NotFound("no such route (see /v1/openapi.json)")
    if code == 405:
        return MethodNotAllowed(f"{request.method} is not allowed here", rule="method")
    if code == 413:
        return BadRequest("the request body is larger than the limit", field="$", rule="max-size",
                          http_status=413)
    if code == 415:
        return BadRequest("Content-Type must be application/json", field="Content-Type", rule="media-type",
                          http_status=415)
    if 400 <= code < 500:  # e.g. a malformed request Werkzeug itself refuses
        return BadRequest(exc.name, field="$", rule="http", http_status=code)
    return EsscError()


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(EsscError)
    def _essc(err: EsscError):
        return error_response(err)

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        allowed = getattr(exc, "valid_methods", None)
        headers = {"Allow": ", ".join(allowed)} if allowed else None
        return error_response(_from_http(exc), headers)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        # frames and the exception type only: an exception's message may hold personal data
        route = request.url_rule.rule if request.url_rule is not None else request.path  # a path may hold a code
        log.error("unhandled %s on %s %s (message withheld)\n%s", type(exc).__name__, request.method,
                  route, scrub("".join(traceback.format_tb(exc.__traceback__))))
        return error_response(EsscError("see the service log"))
