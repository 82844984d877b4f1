"""What every page blueprint shares: CSRF on its POSTs (Flask-WTF), its response headers,
and errors shown as a page (zh-CN, what to do), never a trace or a JSON body.

Headers: no caching, no referrer (a launch URL never leaks to the channel's return URL), a
strict Content-Security-Policy (scripts and styles from the service only, no framing).
"""
from __future__ import annotations

import traceback

from flask import Blueprint, render_template, request
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.exceptions import HTTPException

from essc.core.masking import get_logger, scrub

log = get_logger("essc.service.pages")

csrf = CSRFProtect()

#: form-action allows any http(s) target: the "back to the app" form is redirected to the
#: channel's return URL (checked against the channel's configured prefixes at launch)
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "form-action 'self' https: http:; base-uri 'none'; frame-ancestors 'none'")


def _page_headers(response):
    response.headers.setdefault("Cache-Control", "no-store")
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers.setdefault("Content-Security-Policy", CSP)
    return response


def problem(title: str, message: str, todo: str, status: int, *, back: bool = False, reason: str = ""):
    """The page of a problem: what happened, what to do (``back``: offer to choose another city)."""
    return render_template("h5/problem.html", title=title, message=message, todo=todo, back=back,
                           reason=reason), status


def _csrf_error(_err: CSRFError):
    return problem("页面已过期", "为了您的安全，这次提交没有被受理（页面停留过久，或已在其他窗口继续操作）。",
                   "请返回上一页刷新后重试；如果仍不行，请回到 App 重新进入。", 400)


def _http_error(exc: HTTPException):
    return problem("页面不存在" if exc.code == 404 else "无法处理该请求", "您访问的页面不存在或请求方式不正确。",
                   "请回到 App 重新进入电子社保卡。", exc.code or 400)


def _unexpected(exc: Exception):
    # frames and the type only: an exception's message may hold personal data
    log.error("unhandled %s on %s %s (message withheld)\n%s", type(exc).__name__, request.method, request.path,
              scrub("".join(traceback.format_tb(exc.__traceback__))))
    return problem("系统繁忙", "系统暂时无法完成您的请求，已完成的步骤不会丢失。", "请稍后重试，或回到 App 重新进入。",
                   500)


def page_blueprint(name: str, url_prefix: str) -> Blueprint:
    """A blueprint of pages: CSRF-checked POSTs, page headers, errors as pages."""
    bp = Blueprint(name, __name__, url_prefix=url_prefix, template_folder="templates")
    bp.before_request(csrf.protect)  # protect() itself lets GET, HEAD, OPTIONS through
    bp.after_request(_page_headers)
    bp.register_error_handler(CSRFError, _csrf_error)
    bp.register_error_handler(HTTPException, _http_error)
    bp.register_error_handler(Exception, _unexpected)
    return bp
