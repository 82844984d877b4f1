"""The hand-written rest-json adapter the 浙江 plugin had before it became a dialect spec
(the git history of plugins/zhejiang/adapter.py and const.py, kept here unchanged as the
benchmark baseline of ``essc bench``: ``handwritten_overhead_us`` next to ``spec_overhead_us``).
Not used at run time."""
from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

from essc.core import CityAdapter
from essc.core.answers import CityCall, named_fields, retry_seconds
from essc.core.errors import (
    CardStatusAbnormal,
    CityNotOpened,
    EsscError,
    IdentityMismatch,
    InvalidInput,
    RecordNotSynced,
)
from essc.core.http import parse_json
from essc.core.settings import PluginContext


class _Const:
    # --- credentials ---------------------------------------------------------------------------
    #: Settings key of the bearer token (``[credentials.zhejiang] token = "..."``).
    CREDENTIAL_TOKEN = "token"
    #: The mock's demo token ("Mock-wide demo secrets" table); real deployments configure their own.
    DEFAULT_TOKEN = "mock-rest-token"

    # --- paths ------------------------------------------------------------------------------------
    #: "Base path /rest/v1".
    BASE_PATH = "/rest/v1"
    #: read_card: ``POST /rest/v1/cards/query``.
    PATH_CARD_QUERY = BASE_PATH + "/cards/query"
    #: verify_identity: ``POST /rest/v1/identity/verify``.
    PATH_IDENTITY_VERIFY = BASE_PATH + "/identity/verify"
    #: activate: ``POST /rest/v1/credentials`` (answers 201 Created).
    PATH_CREDENTIALS = BASE_PATH + "/credentials"
    #: list_services: ``GET /rest/v1/cities/<cityCode>/services``.
    PATH_SERVICES = BASE_PATH + "/cities/{city}/services"
    #: health: ``GET /rest/v1/health?cityCode=<code>``.
    PATH_HEALTH = BASE_PATH + "/health"

    # --- value maps -------------------------------------------------------------------------------
    #: Contract second factor -> wire ``factor`` ("factor": "SMS" or "PASSWORD").
    FACTORS = {"sms": "SMS", "password": "PASSWORD"}

    #: Wire card ``status`` -> contract status ("Card statuses" table, rest-json column).
    CARD_STATUSES = {
        "ACTIVE": "normal",
        "LOST": "reported_lost",
        "SEALED": "sealed",
        "CANCELLED": "cancelled",
        "LOCKED": "locked",
    }

    #: Wire ``generation`` (an int, 2 or 3) -> contract ``aaz508``.
    GENERATIONS = {2: "2", 3: "3"}

    #: Contract ``sign_level`` <-> wire ``level`` ("level": 1 or 2, an int both ways).
    SIGN_LEVELS = {1: 1, 2: 2}

    #: Wire service ``id`` -> contract service code ("services" table, rest-json column).
    SERVICES = {
        "ID_LOGIN": "identity_login",
        "SOCIAL_SECURITY": "social_security",
        "EMPLOYMENT": "employment",
        "PAYMENT": "payment",
        "MEDICAL_BILL": "medical_bill",
    }

    #: Health answer ``{"status": "UP"}`` is the only documented value; an explicit DOWN means down,
    #: anything else the city says is read as degraded.
    HEALTH_UP = "UP"
    HEALTH_DOWN = "DOWN"

    # --- errors -----------------------------------------------------------------------------------
    #: ``401`` is the answer to a missing or wrong token ("every request carries Authorization").
    HTTP_UNAUTHORIZED = 401

    #: ``error.code`` of the "Business errors" table -> what it means for the contract:
    #: ``not_opened`` -> CityNotOpened, ``not_synced`` -> RecordNotSynced (``retryAfterSeconds``),
    #: ``card_status`` -> CardStatusAbnormal (``status``), ``identity`` -> IdentityMismatch,
    #: ``rejected`` -> ContractViolation (our token, translation or routing is wrong: retrying won't help).
    ERRORS = {
        "CITY_NOT_OPENED": "not_opened",
        "RECORD_NOT_FOUND": "not_synced",
        "CARD_STATUS": "card_status",
        "IDENTITY_MISMATCH": "identity",
        "TICKET_INVALID": "identity",
        "UNAUTHORIZED": "rejected",
        "BAD_REQUEST": "rejected",
        "UNKNOWN_CITY": "rejected",
    }
    #: Extra key of RECORD_NOT_FOUND carrying the retry hint in seconds.
    RETRY_AFTER_KEY = "retryAfterSeconds"
    #: Extra key of CARD_STATUS carrying the wire card status.
    STATUS_KEY = "status"

    #: Wire field names we send; a BAD_REQUEST message "names the field", and we repeat only these
    #: names (never the city's free text, which could echo personal data).
    REQUEST_FIELDS = ("cityCode", "idNumber", "name", "faceToken", "factor", "code", "ticket", "channel", "level")


const = _Const


class ZhejiangAdapter(CityAdapter):
    """Contract <-> rest-json translation for every city of the 浙江 platform."""

    def __init__(self, context: PluginContext) -> None:
        self.context = context
        self.log = context.logger
        self.http = context.http_client()
        token = context.credential(const.CREDENTIAL_TOKEN, const.DEFAULT_TOKEN)
        self._headers = {"Authorization": f"Bearer {token}"}

    # --- operations -------------------------------------------------------------------------
    def read_card(self, request: dict) -> dict:
        call = CityCall(request["aab301"], "read_card")
        body = self._call(call, "POST", const.PATH_CARD_QUERY,
                          json={"cityCode": call.city, "idNumber": request["aac002"], "name": request["aac003"]})
        card = call.obj(body, "card", dict)
        record = {
            "aac002": call.text(card, "idNumber"),
            "aac003": call.text(card, "name"),
            "aab301": call.text(card, "cityCode"),
            "aaz500": call.text(card, "cardNo"),
            "aaz501": call.optional(card, "cardId"),
            "aaz502": call.lookup(const.CARD_STATUSES, card.get("status"), "status"),
            "aaz508": call.lookup(const.GENERATIONS, card.get("generation"), "generation"),
            "aae008": call.optional(card, "bank"),
            "aac067": call.optional(card, "mobile"),
        }
        return call.fits("card_record", {k: v for k, v in record.items() if v is not None})

    def verify_identity(self, request: dict) -> dict:
        call = CityCall(request["aab301"], "verify_identity")
        factor = request["factor"]
        if factor not in const.FACTORS:
            raise InvalidInput("unsupported second factor", field="factor", **call.ctx)
        body = self._call(call, "POST", const.PATH_IDENTITY_VERIFY, json={
            "cityCode": call.city, "idNumber": request["aac002"], "faceToken": request["face_token"],
            "factor": const.FACTORS[factor], "code": request["code"]})
        if body.get("verified") is not True:
            raise IdentityMismatch("the city did not confirm the identity", **call.ctx)
        return call.fits("verification",
                            {"verified": True, "verify_id": call.text(body, "ticket"), "factor": factor})

    def activate(self, request: dict) -> dict:
        call = CityCall(request["aab301"], "activate")
        level = request.get("sign_level", 1)
        if level not in const.SIGN_LEVELS:
            raise InvalidInput("sign_level must be 1 or 2", field="sign_level", **call.ctx)
        body = self._call(call, "POST", const.PATH_CREDENTIALS, idempotent=False, json={
            "cityCode": call.city, "idNumber": request["aac002"], "ticket": request["verify_id"],
            "channel": request["channel"], "level": level})
        cred = call.obj(body, "credential", dict)
        credential = {
            "aab301": call.city,  # the rest-json credential does not repeat the city
            "sign_no": call.text(cred, "signNo"),
            "sign_seq": call.text(cred, "signSeq"),
            "sign_level": call.lookup(const.SIGN_LEVELS, cred.get("level"), "level"),
            "valid_until": call.iso_date(cred.get("validUntil"), "validUntil"),
            "sign_date": call.iso_date(cred.get("signedAt"), "signedAt"),
        }
        return call.fits("credential", credential)

    def list_services(self, request: dict) -> dict:
        call = CityCall(request["aab301"], "list_services")
        body = self._call(call, "GET", const.PATH_SERVICES.format(city=quote(call.city, safe="")))
        services = call.services(call.obj(body, "services", list), "id", "title", const.SERVICES)
        return call.fits("service_list", {"aab301": call.city, "services": services})

    def health(self, request: dict) -> dict:
        call = CityCall(request["aab301"], "health")
        started = time.perf_counter()
        body = self._call(call, "GET", const.PATH_HEALTH, params={"cityCode": call.city})
        latency_ms = round((time.perf_counter() - started) * 1000, 1)
        state = call.text(body, "status")
        return call.fits("health", call.health(state, const.HEALTH_UP, const.HEALTH_DOWN, latency_ms))

    # --- wire -------------------------------------------------------------------------------
    def _call(self, call: CityCall, method: str, path: str, *, idempotent: bool = True, **kwargs: Any) -> dict:
        """Send one request; return the JSON body of a 2xx answer, raise the typed error otherwise."""
        resp = self.http.request(method, path, city=call.city, operation=call.operation, idempotent=idempotent,
                                 headers=self._headers, **kwargs)
        if resp.status_code == const.HTTP_UNAUTHORIZED:
            raise call.rejected("the city refused our bearer token (HTTP 401): check [credentials] token")
        body = parse_json(resp, city=call.city, operation=call.operation)
        if not isinstance(body, dict):
            raise call.malformed(f"the answer is not a JSON object (HTTP {resp.status_code})")
        if 200 <= resp.status_code < 300 and "error" not in body:
            return body
        raise self._business_error(call, resp.status_code, body)

    def _business_error(self, call: CityCall, status: int, body: dict) -> EsscError:
        error = body.get("error")
        code = error.get("code") if isinstance(error, dict) else None
        kind = const.ERRORS.get(code) if isinstance(code, str) else None
        if kind is None:
            return call.malformed(f"HTTP {status} without a known error code")
        self.log.debug("%s city=%s op=%s: HTTP %s %s", self.context.name, call.city, call.operation, status, code)
        if kind == "not_opened":
            return CityNotOpened(f"the city answered {code}", **call.ctx)
        if kind == "not_synced":
            retry_after = retry_seconds(error.get(const.RETRY_AFTER_KEY))
            return RecordNotSynced(f"the city answered {code}", retry_after=retry_after, **call.ctx)
        if kind == "card_status":
            wire = error.get(const.STATUS_KEY)
            status_ = const.CARD_STATUSES.get(wire) if isinstance(wire, str) else None
            if status_ in (None, "normal"):
                return call.malformed(f"{code} without an abnormal card status")
            return CardStatusAbnormal(status=status_, **call.ctx)
        if kind == "identity":
            return IdentityMismatch(f"the city answered {code}", **call.ctx)
        fields = named_fields(error.get("message"), const.REQUEST_FIELDS)
        named = f"; field(s) named: {', '.join(fields)}" if fields else ""
        return call.rejected(f"the city rejected the request with HTTP {status} {code}{named}")

