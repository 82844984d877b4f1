"""Dialect-neutral behaviour of the mock city systems.

Every function takes the state, the dialect the request came in and the (already validated)
request fields; it returns a neutral result or raises :class:`MockBusinessError`. The
dialect modules translate both to and from their wire format.
"""
from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from typing import Any

from . import contributions, settlement
from .cities import City
from .citizens import Citizen, derive_seed
from .state import Credential, MockState

__all__ = ["KINDS", "MESSAGES", "SERVICES", "SMS_CODE", "PASSWORD", "FACE_TOKEN_PREFIX", "UNKNOWN_RETRY_AFTER",
           "BANK_BINS", "CardState", "PaymentBinding", "MockBusinessError", "read_card", "verify_identity",
           "activate", "list_services", "health", "card_status", "enable_payment", "reset_password",
           "query_contributions", "settle_medical", "bank_account"]

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
    "credential_unknown": "未查询到该电子社保卡的签发信息",
    "settlement_unknown": "未查询到该笔结算信息",
    "settlement_conflict": "该笔结算状态不允许此操作",
}
#: Card statuses with which a password can still be reset (a reset unlocks a locked card).
RESETTABLE = ("normal", "locked")
#: The first digits of the card's bank account, by bank (the mock's choice).
BANK_BINS = {"中国工商银行": "622202", "中国农业银行": "622848", "中国银行": "621661", "中国建设银行": "621700",
             "交通银行": "622262", "中国邮政储蓄银行": "621799", "招商银行": "621483", "兴业银行": "622909",
             "浦发银行": "622521", "中信银行": "622696"}
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
    if code != (SMS_CODE if factor == "sms" else state.password(the_city.code, citizen.id_number, PASSWORD)):
        raise MockBusinessError("identity_mismatch", check=factor)
    return state.issue_ticket(the_city.code, citizen.id_number, factor)


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


# -- contract 1.2: the e-SSC in use --------------------------------------------------------------
@dataclass(frozen=True)
class CardState:
    """The answer of card_status: the status now, when it was read, the credential's level."""

    city: str
    status: str
    checked_at: dt.datetime
    sign_level: int | None = None


@dataclass(frozen=True)
class PaymentBinding:
    """The answer of enable_payment."""

    city: str
    sign_no: str
    sign_level: int
    bank: str
    account_hint: str


def _credential(state: MockState, city: City, citizen: Citizen, sign_no: str | None) -> Credential | None:
    """The citizen's credential when ``sign_no`` is it (credential_unknown otherwise); None without sign_no."""
    if sign_no is None:
        return None
    held = state.find_credential(city.code, citizen.id_number)
    if held is None or held.sign_no != sign_no:
        raise MockBusinessError("credential_unknown")
    return held


def bank_account(seed: int, citizen: Citizen) -> str:
    """The card's bank account number (19 digits), the same for the citizen in every process."""
    rng = random.Random(derive_seed(seed, "account", citizen.city, citizen.id_number))
    return BANK_BINS.get(citizen.bank, "621000") + "".join(rng.choice("0123456789") for _ in range(13))


def card_status(state: MockState, dialect: str, city: str, id_number: str, sign_no: str | None = None) -> CardState:
    """The card's status now, abnormal or not (a query never refuses an abnormal card)."""
    the_city = _city(state, dialect, city)
    citizen = _citizen(state, the_city, id_number)
    held = _credential(state, the_city, citizen, sign_no)
    return CardState(the_city.code, citizen.card_status, state.calendar(), held.level if held else None)


def enable_payment(state: MockState, dialect: str, city: str, id_number: str, sign_no: str, ticket: str,
                   channel: str) -> PaymentBinding:
    """Sign level 2 after a password check; the same binding again for the same credential."""
    the_city = _city(state, dialect, city)
    citizen = _citizen(state, the_city, id_number)
    _credential(state, the_city, citizen, sign_no)
    if not state.ticket_valid(ticket, the_city.code, citizen.id_number, "password"):
        raise MockBusinessError("ticket_invalid")
    if citizen.card_status != "normal":
        raise MockBusinessError("card_status", status=citizen.card_status)
    held = state.raise_level(the_city.code, citizen.id_number, 2)
    account = bank_account(state.seed, citizen)
    return PaymentBinding(the_city.code, held.sign_no, held.level, citizen.bank, account[:4] + "****" + account[-4:])


def reset_password(state: MockState, dialect: str, city: str, id_number: str, ticket: str, new_password: str,
                   ) -> dt.date:
    """A new password after a face + SMS check; a locked card (应用锁定) is unlocked. Returns the day."""
    the_city = _city(state, dialect, city)
    citizen = _citizen(state, the_city, id_number)
    if not state.ticket_valid(ticket, the_city.code, citizen.id_number, "sms"):
        raise MockBusinessError("ticket_invalid")
    if citizen.card_status not in RESETTABLE:
        raise MockBusinessError("card_status", status=citizen.card_status)
    state.set_password(the_city.code, citizen.id_number, new_password)
    if citizen.card_status == "locked":
        state.set_card_status(the_city.code, citizen.id_number, "normal")
    return state.calendar().date()


def query_contributions(state: MockState, dialect: str, city: str, id_number: str, from_month: str,
                        to_month: str) -> list[dict[str, Any]]:
    """The citizen's contribution entries of the period (mockserver/contributions.py)."""
    the_city = _city(state, dialect, city)
    citizen = _citizen(state, the_city, id_number)
    return contributions.history(state.seed, citizen.id_number, from_month, to_month, state.calendar().date())


def settle_medical(state: MockState, dialect: str, city: str, request: dict[str, Any]) -> dict[str, Any]:
    """Pre-settle, confirm or reverse (mockserver/settlement.py); ``request`` holds the contract's
    settlement_request fields. Returns the contract's settlement_result."""
    the_city = _city(state, dialect, city)
    citizen = _citizen(state, the_city, str(request["aac002"]))
    _credential(state, the_city, citizen, str(request["sign_no"]))
    change = settlement.decide(request, city=the_city.code, year=state.calendar().year, seed=state.seed,
                               card_status=citizen.card_status)
    try:
        return state.change_settlement(the_city.code, str(request["settlement_id"]), change).result()
    except settlement.Refusal as refusal:
        raise MockBusinessError(refusal.kind, **refusal.data) from None
