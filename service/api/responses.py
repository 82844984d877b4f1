"""Answers no cache may keep: they hold a code, a ticket, a token or a person (RFC 9111
``Cache-Control: no-store``)."""
from __future__ import annotations

from flask import Response, jsonify


def no_store(body: object, status: int = 200) -> Response:
    """``body`` as JSON with ``status`` and ``Cache-Control: no-store``."""
    response = jsonify(body)
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    return response
