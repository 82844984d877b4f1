"""The country's city list and its search, adapters, health, metrics and the OpenAPI document.

Public (no channel credentials): the city list, ``/healthz``, ``/metrics``, the OpenAPI
document. ``/v1/adapters`` names modules and file paths of plugins: channels only.
"""
from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, request
from sqlalchemy import text

from essc.core.masking import get_logger

from ..metrics import CONTENT_TYPE_LATEST
from .auth import require_channel
from .errors import BadRequest
from .validation import served_openapi_document

bp = Blueprint("public", __name__)
log = get_logger("essc.service.api")

MAX_QUERY = 64


@bp.get("/v1/cities")
def list_cities():
    """Without ``q`` (or a blank one): every city of the country grouped by province. With ``q``:
    the matching cities, best first, each with its province (service/cities.py)."""
    query = request.args.get("q", "")
    if len(query) > MAX_QUERY:
        raise BadRequest(f"q is longer than {MAX_QUERY} characters", field="q", rule="maxLength")
    cities = current_app.extensions["essc"].cities
    if not query.strip():
        return jsonify(cities.grouped())
    return jsonify({"query": query, "cities": cities.search(query)})


@bp.get("/v1/adapters")
@require_channel
def list_adapters():
    return jsonify(current_app.extensions["essc"].runtime.registry.plugin_rows())


@bp.record_once
def _bundle_openapi(_state) -> None:
    served_openapi_document()  # bundled once, at start-up: a broken $ref fails here, not per request


@bp.get("/v1/openapi.json")
def openapi():
    """The OpenAPI document, self-contained (the contract schemas it uses are bundled in)."""
    return jsonify(served_openapi_document())


@bp.get("/healthz")
def healthz():
    runtime = current_app.extensions["essc"].runtime
    body = {"status": "ok", "database": "ok", "queue": "ok", "queue_depth": None}
    try:
        with runtime.store.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception:
        log.exception("health check: the database cannot be reached")
        body.update(status="error", database="error")
    try:
        body["queue_depth"] = runtime.queue_depth()
    except Exception:
        log.exception("health check: the queue cannot be reached")
        body["queue"] = "error"
        if body["status"] == "ok":
            body["status"] = "degraded"
    return jsonify(body), 503 if body["database"] == "error" else 200  # a queue outage only degrades


@bp.get("/metrics")
def metrics():
    return Response(current_app.extensions["essc"].metrics.render(), mimetype=None,
                    content_type=CONTENT_TYPE_LATEST)
