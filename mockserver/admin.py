"""The admin API ``/__admin/`` (docs/mock.md): cities, citizens (and their card status), clock,
faults, journal, settlements, reset.

Bad input gets ``400 {"error": "<what is wrong>"}`` naming the field (numbers must be finite:
``NaN`` and ``Infinity``, which Python's JSON parser takes, are refused); an unknown city
``404``; a body above ``MAX_BODY_BYTES`` ``413`` (unread).
"""
from __future__ import annotations

import math
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge

from essc.core.errors import CARD_STATUSES
from essc.core.masking import mask_id

from .cities import city_changes, city_from_dict
from .citizens import SCENARIOS
from .clock import CLOCK_MODES, MAX_VIRTUAL_S
from .dialects import body_within_limit
from .faults import OPERATIONS, FaultInputError
from .state import mock_state

bp = Blueprint("admin", __name__, url_prefix="/__admin")


class AdminError(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@bp.errorhandler(AdminError)
def _admin_error(err: AdminError) -> tuple[Response, int]:
    return jsonify({"error": err.message}), err.status


def _too_large() -> tuple[Response, int]:
    return jsonify({"error": f"the request body is larger than {current_app.config['MAX_BODY_BYTES']} bytes"}), 413


@bp.before_request
def _limit_body() -> tuple[Response, int] | None:
    return None if body_within_limit(current_app.config["MAX_BODY_BYTES"]) else _too_large()


@bp.errorhandler(RequestEntityTooLarge)
def _werkzeug_too_large(err: RequestEntityTooLarge) -> tuple[Response, int]:
    return _too_large()


def _finite(value: Any) -> bool:
    """A JSON number that is not NaN or +-Infinity (and not a boolean)."""
    return (not isinstance(value, bool) and isinstance(value, (int, float))
            and (isinstance(value, int) or math.isfinite(value)))


def _body(*, allow_empty: bool = False) -> dict[str, Any]:
    if allow_empty and not request.get_data():
        return {}
    body = request.get_json(force=True, silent=True)
    if not isinstance(body, dict):
        raise AdminError("the request body must be a JSON object")
    return body


def _only(body: dict[str, Any], allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise AdminError(f"unknown field(s): {', '.join(unknown)} (allowed: {', '.join(allowed)})")


def _known_city(code: str | None) -> str:
    if not code:
        raise AdminError("the query parameter 'city' is required")
    if mock_state().city(code) is None:
        raise AdminError(f"unknown city {code}", 404)
    return code


# -- cities --------------------------------------------------------------------------------
@bp.get("/cities")
def list_cities() -> Response:
    return jsonify([c.as_dict() for c in mock_state().cities()])


@bp.put("/cities/<code>")
def change_city(code: str) -> Response:
    _known_city(code)
    body = _body()
    _only(body, ("mode", "sync_delay_s", "sync_after_attempts"))
    try:
        changes = city_changes(body)
    except ValueError as err:
        raise AdminError(str(err)) from None
    return jsonify(mock_state().update_city(code, **changes).as_dict())


@bp.post("/cities")
def add_city() -> tuple[Response, int]:
    try:
        city = city_from_dict(_body())
    except ValueError as err:
        raise AdminError(str(err)) from None
    try:
        mock_state().add_city(city)
    except KeyError:
        raise AdminError(f"city {city.code} exists already (change it with PUT)", 409) from None
    return jsonify(city.as_dict()), 201


# -- citizens ------------------------------------------------------------------------------
@bp.get("/citizens")
def list_citizens() -> Response:
    code = _known_city(request.args.get("city"))
    scenario = request.args.get("scenario")
    if scenario is not None and scenario not in SCENARIOS:
        raise AdminError(f"'scenario' must be one of {', '.join(SCENARIOS)}")
    people = mock_state().citizens(code)
    return jsonify([c.admin_view() for c in people if scenario is None or c.scenario == scenario])


@bp.put("/citizens/<city>/<id_number>")
def change_citizen(city: str, id_number: str) -> Response:
    """Change a citizen's card status (lost, sealed, cancelled, locked, or back to normal)."""
    code = _known_city(city)
    body = _body()
    _only(body, ("card_status",))
    if body.get("card_status") not in CARD_STATUSES:
        raise AdminError(f"'card_status' must be one of {', '.join(CARD_STATUSES)}")
    citizen = mock_state().set_card_status(code, id_number, body["card_status"])
    if citizen is None:
        raise AdminError(f"city {code} has no such citizen", 404)
    return jsonify(citizen.admin_view())


# -- settlements ---------------------------------------------------------------------------
@bp.get("/settlements")
def list_settlements() -> Response:
    """The medical settlements of a city (or of every city), the citizen masked."""
    code = request.args.get("city")
    if code is not None:
        _known_city(code)
    return jsonify([{"city": s.city, "settlement_id": s.settlement_id, "citizen": mask_id(s.id_number),
                     "hospital": s.hospital, "busi_type": s.busi_type, "year": s.year,
                     "deductible_cents": s.deductible_cents, **s.result()}
                    for s in mock_state().settlements(code)])


# -- clock ---------------------------------------------------------------------------------
@bp.get("/clock")
def read_clock() -> Response:
    return jsonify(mock_state().clock())


@bp.post("/clock")
def move_clock() -> Response:
    body = _body()
    _only(body, ("advance", "mode"))
    if not body:
        raise AdminError("give 'advance' (seconds) and/or 'mode' (frozen or realtime)")
    state = mock_state()
    if "mode" in body:
        if body["mode"] not in CLOCK_MODES:
            raise AdminError(f"'mode' must be one of {', '.join(CLOCK_MODES)}")
    if "advance" in body:
        seconds = body["advance"]
        if not _finite(seconds) or not 0 <= seconds <= MAX_VIRTUAL_S:
            raise AdminError(f"'advance' must be a finite number of seconds between 0 and {MAX_VIRTUAL_S}"
                             " (not NaN or Infinity)")
    clock = state.set_clock_mode(body["mode"]) if "mode" in body else state.clock()
    if "advance" in body:
        try:
            clock = state.advance(float(body["advance"]))
        except ValueError:
            raise AdminError(f"'advance' would move the clock past {MAX_VIRTUAL_S} s from its reset") from None
    return jsonify(clock)


# -- faults --------------------------------------------------------------------------------
@bp.post("/faults")
def add_fault() -> tuple[Response, int]:
    try:
        rule = mock_state().add_fault(_body())
    except FaultInputError as err:
        raise AdminError(str(err)) from None
    return jsonify(rule.as_dict()), 201


@bp.get("/faults")
def list_faults() -> Response:
    return jsonify([r.as_dict() for r in mock_state().faults()])


@bp.delete("/faults")
def clear_faults() -> Response:
    return jsonify({"deleted": mock_state().clear_faults()})


# -- journal -------------------------------------------------------------------------------
@bp.get("/journal")
def read_journal() -> Response:
    operation = request.args.get("operation")
    if operation is not None and operation not in OPERATIONS:
        raise AdminError(f"'operation' must be one of {', '.join(OPERATIONS)}")
    return jsonify(mock_state().journal(city=request.args.get("city"), operation=operation))


@bp.delete("/journal")
def clear_journal() -> Response:
    return jsonify({"deleted": mock_state().clear_journal()})


# -- reset ---------------------------------------------------------------------------------
@bp.post("/reset")
def reset() -> Response:
    body = _body(allow_empty=True)
    _only(body, ("seed", "keep_cities"))
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63):
        raise AdminError("'seed' must be an integer between 0 and 2**63 - 1")
    keep = body.get("keep_cities", False)
    if not isinstance(keep, bool):
        raise AdminError("'keep_cities' must be true or false")
    state = mock_state()
    state.reset(seed, keep_cities=keep)
    return jsonify({"reset": True, "seed": state.seed, "clock": state.clock()})
