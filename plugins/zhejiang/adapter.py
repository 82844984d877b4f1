"""Adapter of the 浙江 provincial e-SSC platform (rest-json, docs/dialects.md "rest-json").

The province runs one consolidated system for 杭州 and 湖州: the city travels in every
request (``cityCode``), so ONE adapter object serves every city of the plugin.
"""
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

from . import const


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
            "signNo": call.text(cred, "signNo"),
            "signSeq": call.text(cred, "signSeq"),
            "signLevel": call.lookup(const.SIGN_LEVELS, cred.get("level"), "level"),
            "validate": call.iso_date(cred.get("validUntil"), "validUntil"),
            "signDate": call.iso_date(cred.get("signedAt"), "signedAt"),
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

