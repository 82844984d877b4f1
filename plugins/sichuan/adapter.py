"""Adapter of the 四川 e-SSC system (gm-json, docs/dialects.md "gm-json").

Every request is ``{"appId", "timestamp", "encryptData", "signData"}``: the JSON payload
(pinyin-initial field names) sealed with SM4 and signed with SM3. Every answer is checked:
its ``signData`` must verify before anything in it is believed.
"""
from __future__ import annotations

import hmac
import json
import time

from essc.core import CityAdapter
from essc.core.answers import CityCall, named_fields, retry_seconds
from essc.core.errors import (
    CardStatusAbnormal,
    CityNotOpened,
    CredentialNotFound,
    EsscError,
    IdentityMismatch,
    InvalidInput,
    RecordNotSynced,
    SettlementConflict,
    SettlementNotFound,
)
from essc.core.http import parse_json
from essc.core.settings import PluginContext
from essc.core.signing import sm3_hex, sm4_decrypt, sm4_encrypt

from . import const


class SichuanAdapter(CityAdapter):
    """Contract <-> gm-json translation for 成都."""

    def __init__(self, context: PluginContext) -> None:
        self.context = context
        self.log = context.logger
        self.http = context.http_client()
        self._app_id = context.credential(const.CREDENTIAL_APP_ID, const.DEFAULT_APP_ID)
        self._sm4_key = context.credential(const.CREDENTIAL_SM4_KEY, const.DEFAULT_SM4_KEY).encode()
        self._secret = context.credential(const.CREDENTIAL_SM3_SECRET, const.DEFAULT_SM3_SECRET)
        if len(self._sm4_key) != const.SM4_KEY_BYTES:
            raise ValueError(f"plugin {context.name!r}: credential {const.CREDENTIAL_SM4_KEY!r} must be "
                             f"{const.SM4_KEY_BYTES} bytes")

    # --- operations -------------------------------------------------------------------------
    def read_card(self, request: dict) -> dict:
        call = CityCall(request["aab301"], "read_card")
        data = self._call(call, const.METHOD_CARD_QUERY,
                          {"sfzh": request["aac002"], "xm": request["aac003"], "xzqh": call.city})
        record = {
            "aac002": call.text(data, "sfzh"),
            "aac003": call.text(data, "xm"),
            "aab301": call.text(data, "xzqh"),
            "aaz500": call.text(data, "kh"),
            "aaz501": call.optional(data, "sbm"),
            "aaz502": call.lookup(const.CARD_STATUSES, data.get("kzt"), "kzt"),
            "aaz508": call.lookup(const.GENERATIONS, data.get("gfbb"), "gfbb"),
            "aae008": call.optional(data, "yh"),
            "aac067": call.optional(data, "sjh"),
        }
        return call.fits("card_record", {k: v for k, v in record.items() if v is not None})

    def verify_identity(self, request: dict) -> dict:
        call = CityCall(request["aab301"], "verify_identity")
        factor = request["factor"]
        if factor not in const.FACTORS:
            raise InvalidInput("unsupported second factor", field="factor", **call.ctx)
        data = self._call(call, const.METHOD_IDENTITY_VERIFY, {
            "sfzh": request["aac002"], "xzqh": call.city, "rlToken": request["face_token"],
            "yzlx": const.FACTORS[factor], "yzm": request["code"]})
        return call.fits("verification",
                            {"verified": True, "verify_id": call.text(data, "yzid"), "factor": factor})

    def activate(self, request: dict) -> dict:
        call = CityCall(request["aab301"], "activate")
        level = request.get("sign_level", 1)
        if level not in const.SIGN_LEVELS:
            raise InvalidInput("sign_level must be 1 or 2", field="sign_level", **call.ctx)
        data = self._call(call, const.METHOD_CARD_SIGN, {
            "sfzh": request["aac002"], "xzqh": call.city, "yzid": request["verify_id"], "qd": request["channel"],
            "qydj": const.SIGN_LEVELS[level]}, idempotent=False)
        credential = {
            "aab301": call.text(data, "xzqh"),
            "sign_no": call.text(data, "qyh"),
            "sign_seq": call.text(data, "qyxh"),
            "sign_level": call.lookup(const.SIGN_LEVELS, data.get("qydj"), "qydj"),
            "valid_until": call.date8(data.get("yxq"), "yxq"),
            "sign_date": call.date8(data.get("qyrq"), "qyrq"),
        }
        return call.fits("credential", credential)

    def list_services(self, request: dict) -> dict:
        call = CityCall(request["aab301"], "list_services")
        data = self._call(call, const.METHOD_SERVICE_LIST, {"xzqh": call.city})
        services = call.services(call.obj(data, "fwlb", list), "fwdm", "fwmc", const.SERVICES)
        return call.fits("service_list", {"aab301": call.city, "services": services})

    def health(self, request: dict) -> dict:
        call = CityCall(request["aab301"], "health")
        started = time.perf_counter()
        data = self._call(call, const.METHOD_HEALTH, {"xzqh": call.city})
        latency_ms = round((time.perf_counter() - started) * 1000, 1)
        state = call.text(data, "zt")
        return call.fits("health", call.health(state, const.HEALTH_UP, const.HEALTH_DOWN, latency_ms))

    # --- contract 1.2: the e-SSC in use ------------------------------------------------------
    def card_status(self, request: dict) -> dict:
        call = CityCall(request["aab301"], "card_status")
        payload = {"sfzh": request["aac002"], "xzqh": call.city}
        if "sign_no" in request:
            payload["qyh"] = request["sign_no"]
        data = self._call(call, const.METHOD_CARD_STATUS, payload)
        state = {"aab301": call.text(data, "xzqh"),
                 "aaz502": call.lookup(const.CARD_STATUSES, data.get("kzt"), "kzt"),
                 "checked_at": call.optional(data, "cxsj"),
                 "sign_level": call.optional(data, "qydj")}
        return call.fits("card_state", {k: v for k, v in state.items() if v is not None})

    def enable_payment(self, request: dict) -> dict:
        call = CityCall(request["aab301"], "enable_payment")
        data = self._call(call, const.METHOD_PAY_ENABLE, {
            "sfzh": request["aac002"], "xzqh": call.city, "qyh": request["sign_no"], "yzid": request["verify_id"],
            "qd": request["channel"]}, idempotent=False)
        return call.fits("payment_binding", {
            "aab301": call.text(data, "xzqh"), "sign_no": call.text(data, "qyh"),
            "sign_level": call.lookup(const.SIGN_LEVELS, data.get("qydj"), "qydj"), "aae008": call.text(data, "yh"),
            "account_hint": call.text(data, "zhym")})

    def reset_password(self, request: dict) -> dict:
        call = CityCall(request["aab301"], "reset_password")
        data = self._call(call, const.METHOD_PASSWORD_RESET, {
            "sfzh": request["aac002"], "xzqh": call.city, "yzid": request["verify_id"],
            "xmm": request["new_password"]}, idempotent=False)
        return call.fits("password_reset_result",
                         {"aab301": call.text(data, "xzqh"), "reset_date": call.date8(data.get("czrq"), "czrq")})

    def query_contributions(self, request: dict) -> dict:
        call = CityCall(request["aab301"], "query_contributions")
        data = self._call(call, const.METHOD_CONTRIBUTIONS, {
            "sfzh": request["aac002"], "xzqh": call.city, "ksny": request["from_month"],
            "jsny": request["to_month"]})
        months = []
        for entry in call.obj(data, "jfjl", list):
            if not isinstance(entry, dict):
                raise call.malformed("an entry of 'jfjl' is not an object")
            months.append({"month": call.text(entry, "ny"), "insurance": call.text(entry, "xz"),
                           "base_cents": entry.get("jfjs"), "paid_cents": entry.get("jfje"),
                           "status": call.lookup(const.CONTRIBUTION_STATUSES, entry.get("zt"), "zt")})
        return call.fits("contribution_history", {"aab301": call.text(data, "xzqh"), "months": months})

    def settle_medical(self, request: dict) -> dict:
        call = CityCall(request["aab301"], "settle_medical")
        payload = {"czlx": const.SETTLE_ACTIONS[request["action"]], "jsid": request["settlement_id"],
                   "sfzh": request["aac002"], "xzqh": call.city, "qyh": request["sign_no"],
                   "ywlx": request["busi_type"], "jgbm": request["hospital"]["code"],
                   "jgmc": request["hospital"]["name"]}
        if "items" in request:
            payload["fymx"] = [{"xmbm": i["code"], "xmmc": i["name"], "lb": i["category"], "je": i["amount_cents"],
                                "sl": i["quantity"]} for i in request["items"]]
        data = self._call(call, const.METHOD_SETTLE, payload)  # idempotent by jsid at the city
        total, fund = data.get("zje"), data.get("tcje")
        result = {"settlement_id": call.text(data, "jsid"),
                  "state": call.lookup(const.SETTLEMENT_STATES, data.get("jszt"), "jszt"),
                  "total_cents": total, "fund_cents": fund, "self_pay_cents": data.get("zfje"),
                  "city_ref": call.optional(data, "lsh")}
        return call.fits("settlement_result", {k: v for k, v in result.items() if v is not None})

    # --- wire -------------------------------------------------------------------------------
    def _sealed(self, payload: dict) -> dict[str, str]:
        """The request body: payload SM4-encrypted, envelope SM3-signed."""
        timestamp = str(int(time.time() * 1000))
        encrypted = sm4_encrypt(self._sm4_key, json.dumps(payload).encode())
        return {"appId": self._app_id, "timestamp": timestamp, "encryptData": encrypted,
                "signData": sm3_hex(self._app_id + timestamp + encrypted + self._secret)}

    def _opened(self, call: CityCall, body: dict) -> dict:
        """The decrypted payload of an answer whose signData verified."""
        try:
            payload = json.loads(sm4_decrypt(self._sm4_key, body["encryptData"]).decode("utf-8"))
        except ValueError:  # not base64, bad padding, not UTF-8, not JSON
            raise call.malformed("the answer's encryptData cannot be decrypted to JSON") from None
        if not isinstance(payload, dict):
            raise call.malformed("the answer's payload is not a JSON object")
        return payload

    def _call(self, call: CityCall, method: str, payload: dict, *, idempotent: bool = True) -> dict:
        """POST one sealed request; return the payload of a code-0 answer, raise the typed error otherwise."""
        resp = self.http.request("POST", const.PATH.format(method=method), city=call.city, operation=call.operation,
                                 idempotent=idempotent, json=self._sealed(payload))
        body = parse_json(resp, city=call.city, operation=call.operation)
        if not isinstance(body, dict):
            raise call.malformed(f"the answer is not a JSON object (HTTP {resp.status_code})")
        code, encrypted, sign = body.get("code"), body.get("encryptData"), body.get("signData")
        if not isinstance(code, int) or isinstance(code, bool):
            raise call.malformed(f"the answer lacks an integer 'code' (HTTP {resp.status_code})")
        verified = (isinstance(encrypted, str) and isinstance(sign, str)
                    and hmac.compare_digest(sign.lower(), sm3_hex(str(code) + encrypted + self._secret)))
        if not verified and code != const.BAD_SIGN_DATA:
            raise call.malformed("the answer's signData does not verify")
        if code == const.SUCCESS:
            return self._opened(call, body)
        raise self._business_error(call, code, body)

    def _business_error(self, call: CityCall, code: int, body: dict) -> EsscError:
        kind = const.ERRORS.get(code)
        if kind is None:
            return call.malformed("the answer has an unknown result code")
        self.log.debug("%s city=%s op=%s: code %s", self.context.name, call.city, call.operation, code)
        if kind == "not_opened":
            return CityNotOpened(f"the city answered {code}", **call.ctx)
        if kind == "not_synced":
            retry_after = retry_seconds(self._opened(call, body).get(const.RETRY_AFTER_KEY))
            return RecordNotSynced(f"the city answered {code}", retry_after=retry_after, **call.ctx)
        if kind == "card_status":
            wire = self._opened(call, body).get(const.STATUS_KEY)
            status_ = const.CARD_STATUSES.get(wire) if isinstance(wire, str) else None
            if status_ in (None, "normal"):
                return call.malformed(f"{code} without an abnormal card status")
            return CardStatusAbnormal(status=status_, **call.ctx)
        if kind == "identity":
            return IdentityMismatch(f"the city answered {code}", **call.ctx)
        if kind == "credential_unknown":
            return CredentialNotFound(f"the city answered {code}", **call.ctx)
        if kind == "settlement_unknown":
            return SettlementNotFound(f"the city answered {code}", **call.ctx)
        if kind == "settlement_conflict":
            wire = self._opened(call, body).get(const.SETTLEMENT_STATE_KEY)
            state = const.SETTLEMENT_STATES.get(wire) if isinstance(wire, str) else None
            return SettlementConflict(f"the city answered {code}", state=state, **call.ctx)
        fields = named_fields(body.get("message"), const.REQUEST_FIELDS)
        named = f"; field(s) named: {', '.join(fields)}" if fields else ""
        return call.rejected(f"the city rejected the request with {code} ({const.REJECTIONS[code]}){named}")

