"""Dialect-neutral behaviour of the mock city systems.

Every function takes the state, the dialect the request came in and the (already validated)
request fields; it returns a neutral result or raises :class:`MockBusinessError`. The
dialect modules translate both to and from their wire format.
"""
from __future__ import annotations

from typing import Any

from .cities import City
from .citizens import Citizen
from .state import Credential, MockState

__all__ = ["KINDS", "MESSAGES", "SERVICES", "SMS_CODE", "PASSWORD", "FACE_TOKEN_PREFIX", "UNKNOWN_RETRY_AFTER",
           "MockBusinessError", "read_card", "verify_identity", "activate", "list_services", "health"]

#: Identity checks the mock accepts (docs/dialects.md).
FACE_TOKEN_PREFIX = "live-"
SMS_CODE = "123456"
PASSWORD = "147258"
#: Retry hint for a citizen the city does not know ("查无此人"): a day, the longest sync.
UNKNOWN_RETRY_AFTER = 86400

#: Contract service codes with the titles the mock gives them (all offered in every city).
SERVICES = (
    ("identity_login", "身份认证登录"),
    ("social_security", "社保查询"),
    ("employment", "就业服务"),
    ("payment", "移动支付"),
    ("medical_bill", "医保结算"),
)

#: Business error kinds and their wording (docs/domain.md "Failure wording").
MESSAGES = {
    "not_opened": "暂未开通电子社保卡业务",
    "not_synced": "信息未同步，查无此人社保卡信息",
    "card_status": "卡状态异常",
    "identity_mismatch": "人脸与身份不匹配",
    "ticket_invalid": "核验凭证无效或已过期，请重新核验身份",
    "unknown_city": "本系统不受理该城市的业务",
}
KINDS = tuple(MESSAGES)


class MockBusinessError(Exception):
    """A business answer other than success: ``kind`` (one of :data:`KINDS`) plus data
    such as ``retry_after`` (not_synced) or ``status`` (card_status)."""

    def __init__(self, kind: str, **data: Any) -> None:
        if kind not in MESSAGES:
            raise ValueError(f"unknown business error kind {kind!r}")
        self.kind = kind
        self.data = data
        super().__init__(f"{kind}: {MESSAGES[kind]}")

    @property
    def message(self) -> str:
        return MESSAGES[self.kind]


def _city(state: MockState, dialect: str, code: str, *, opened_only: bool = True) -> City:
    city = state.city(code)
    if city is None or city.dialect != dialect:
        raise MockBusinessError("unknown_city", city=code)
    if opened_only and city.mode == "not_opened":
        raise MockBusinessError("not_opened")
    return city


def _citizen(state: MockState, city: City, id_number: str, name: str | None = None, *,
             read: bool = False) -> Citizen:
    """The citizen as the city holds it; unknown, renamed or not yet synced -> not_synced."""
    citizen = state.find_citizen(city.code, id_number)
    if citizen is None or (name is not None and citizen.name != name):
        raise MockBusinessError("not_synced", retry_after=UNKNOWN_RETRY_AFTER)
    if city.mode == "delayed":
        remaining = state.sync_remaining(city, id_number, read=read)
        if remaining:
            raise MockBusinessError("not_synced", retry_after=remaining)
    return citizen


def read_card(state: MockState, dialect: str, city: str, id_number: str, name: str) -> Citizen:
    """The card record - also when its status is abnormal (the dialect shows the status)."""
    return _citizen(state, _city(state, dialect, city), id_number, name, read=True)


def verify_identity(state: MockState, dialect: str, city: str, id_number: str, face_token: str, factor: str,
                    code: str) -> str:
    """Face liveness plus SMS code or password; returns a ticket valid 300 virtual seconds.

    ``factor`` is the contract's ``"sms"`` or ``"password"``."""
    the_city = _city(state, dialect, city)
    citizen = _citizen(state, the_city, id_number)
    if not face_token.startswith(FACE_TOKEN_PREFIX) or not citizen.face_match:
        raise MockBusinessError("identity_mismatch", check="face")
    if code != (SMS_CODE if factor == "sms" else PASSWORD):
        raise MockBusinessError("identity_mismatch", check=factor)
    return state.issue_ticket(the_city.code, citizen.id_number)


def activate(state: MockState, dialect: str, city: str, id_number: str, ticket: str, channel: str,
             level: int) -> Credential:
    """Issue the credential (the same one again for the same citizen and city)."""
    the_city = _city(state, dialect, city)
    citizen = _citizen(state, the_city, id_number)
    if not state.ticket_valid(ticket, the_city.code, citizen.id_number):
        raise MockBusinessError("ticket_invalid")
    if citizen.card_status != "normal":
        raise MockBusinessError("card_status", status=citizen.card_status)
    return state.credential(the_city.code, citizen.id_number, level, channel)


def list_services(state: MockState, dialect: str, city: str) -> tuple[tuple[str, str], ...]:
    """``(contract service code, title)`` pairs."""
    _city(state, dialect, city)
    return SERVICES


def health(state: MockState, dialect: str, city: str) -> str:
    """``"up"`` in every mode of a city this dialect serves (only faults make it fail)."""
    _city(state, dialect, city, opened_only=False)
    return "up"
