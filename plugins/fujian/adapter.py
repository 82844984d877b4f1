"""Adapter of the 福建 e-SSC system (pinyin-form, docs/dialects.md "pinyin-form").

Form POSTs with 人社 field codes, signed with HMAC-SHA256 over the sorted fields; every
answer is ``{"code", "msg", "data"}`` with ``code`` ``0000`` on success.
"""
from __future__ import annotations

import secrets
import time

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
from essc.core.signing import hmac_sha256

from . import const


class FujianAdapter(CityAdapter):
    """Contract <-> pinyin-form translation for 福州."""

    def __init__(self, context: PluginContext) -> None:
        self.context = context
        self.log = context.logger
        self.http = context.http_client()
        self._appid = context.credential(const.CREDENTIAL_APPID, const.DEFAULT_APPID)
        self._secret = context.credential(const.CREDENTIAL_SECRET, const.DEFAULT_SECRET)

    # --- operations -------------------------------------------------------------------------
    def read_card(self, request: dict) -> dict:
        call = CityCall(request["aab301"], "read_card")
        data = self._call(call, const.PATH_CARD_QUERY,
                          {"aac002": request["aac002"], "aac003": request["aac003"], "aab301": call.city})
        record = {
            "aac002": call.text(data, "aac002"),
            "aac003": call.text(data, "aac003"),
            "aab301": call.text(data, "aab301"),
            "aaz500": call.text(data, "aaz500"),
            "aaz501": call.optional(data, "aaz501"),
            "aaz502": call.lookup(const.CARD_STATUSES, data.get("aaz502"), "aaz502"),
            "aaz508": call.lookup(const.GENERATIONS, data.get("aaz508"), "aaz508"),
            "aae008": call.optional(data, "aae008"),
            "aac067": call.optional(data, "aac067"),
        }
        return call.fits("card_record", {k: v for k, v in record.items() if v is not None})

    def verify_identity(self, request: dict) -> dict:
        call = CityCall(request["aab301"], "verify_identity")
        factor = request["factor"]
        if factor not in const.VERIFY_TYPES:
            raise InvalidInput("unsupported second factor", field="factor", **call.ctx)
        data = self._call(call, const.PATH_IDENTITY_VERIFY, {
            "aac002": request["aac002"], "aab301": call.city, "face_token": request["face_token"],
            "verify_type": const.VERIFY_TYPES[factor], "verify_code": request["code"]})
        return call.fits("verification",
                            {"verified": True, "verify_id": call.text(data, "verify_id"), "factor": factor})

    def activate(self, request: dict) -> dict:
        call = CityCall(request["aab301"], "activate")
        level = request.get("sign_level", 1)
        if level not in const.SIGN_LEVELS_OUT:
            raise InvalidInput("sign_level must be 1 or 2", field="sign_level", **call.ctx)
        data = self._call(call, const.PATH_CARD_SIGN, {
            "aac002": request["aac002"], "aab301": call.city, "verify_id": request["verify_id"],
            "channel": request["channel"], "sign_level": const.SIGN_LEVELS_OUT[level]}, idempotent=False)
        credential = {
            "aab301": call.text(data, "aab301"),
            "signNo": call.text(data, "signNo"),
            "signSeq": call.text(data, "signSeq"),
            "signLevel": call.lookup(const.SIGN_LEVELS_IN, data.get("signLevel"), "signLevel"),
            "validate": call.date8(data.get("validate"), "validate"),
            "signDate": call.date8(data.get("signDate"), "signDate"),
        }
        return call.fits("credential", credential)

    def list_services(self, request: dict) -> dict:
        call = CityCall(request["aab301"], "list_services")
        data = self._call(call, const.PATH_SERVICE_LIST, {"aab301": call.city})
        services = call.services(call.obj(data, "list", list), "fwbm", "fwmc", const.SERVICES)
        return call.fits("service_list", {"aab301": call.city, "services": services})

    def health(self, request: dict) -> dict:
        call = CityCall(request["aab301"], "health")
        started = time.perf_counter()
        data = self._call(call, const.PATH_HEALTH, {"aab301": call.city})
        latency_ms = round((time.perf_counter() - started) * 1000, 1)
        state = call.text(data, "status")
        return call.fits("health", call.health(state, const.HEALTH_UP, const.HEALTH_DOWN, latency_ms))

    # --- wire -------------------------------------------------------------------------------
    def _signed_form(self, fields: dict[str, str]) -> dict[str, str]:
        """The business fields plus appid, timestamp, nonce and the HMAC-SHA256 ``sign``."""
        form = {**fields, "appid": self._appid, "timestamp": str(int(time.time())),
                "nonce": secrets.token_hex(const.NONCE_HEX_BYTES)}
        form["sign"] = hmac_sha256(form, self._secret)
        return form

    def _call(self, call: CityCall, path: str, fields: dict[str, str], *, idempotent: bool = True) -> dict:
        """POST one signed form; return ``data`` of a ``0000`` answer, raise the typed error otherwise."""
        resp = self.http.request("POST", path, city=call.city, operation=call.operation, idempotent=idempotent,
                                 data=self._signed_form(fields))
        body = parse_json(resp, city=call.city, operation=call.operation)
        if not isinstance(body, dict):
            raise call.malformed(f"the answer is not a JSON object (HTTP {resp.status_code})")
        if body.get("code") == const.SUCCESS:
            return call.obj(body, "data", dict)
        raise self._business_error(call, resp.status_code, body)

    def _business_error(self, call: CityCall, status: int, body: dict) -> EsscError:
        code = body.get("code")
        kind = const.ERRORS.get(code) if isinstance(code, str) else None
        if kind is None:
            return call.malformed(f"HTTP {status} without a known result code")
        self.log.debug("%s city=%s op=%s: code %s", self.context.name, call.city, call.operation, code)
        data = body.get("data") if isinstance(body.get("data"), dict) else {}
        if kind == "not_opened":
            return CityNotOpened(f"the city answered {code}", **call.ctx)
        if kind == "not_synced":
            retry_after = retry_seconds(data.get(const.RETRY_AFTER_KEY))
            return RecordNotSynced(f"the city answered {code}", retry_after=retry_after, **call.ctx)
        if kind == "card_status":
            wire = data.get(const.STATUS_KEY)
            status_ = const.CARD_STATUSES.get(wire) if isinstance(wire, str) else None
            if status_ in (None, "normal"):
                return call.malformed(f"{code} without an abnormal card status")
            return CardStatusAbnormal(status=status_, **call.ctx)
        if kind == "identity":
            return IdentityMismatch(f"the city answered {code}", **call.ctx)
        fields = named_fields(body.get("msg"), const.REQUEST_FIELDS)
        named = f"; field(s) named: {', '.join(fields)}" if fields else ""
        return call.rejected(f"the city rejected the request with {code} ({const.REJECTIONS[code]}){named}")

