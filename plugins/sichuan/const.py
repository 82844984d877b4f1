"""Wire constants of the 四川 system: the gm-json dialect (docs/dialects.md, "gm-json").

Every value here is quoted from docs/dialects.md; the comment says which part.
"""
from __future__ import annotations

# --- credentials ---------------------------------------------------------------------------
#: Settings keys (``[credentials.sichuan] app_id = "..."``, ``sm4_key = "..."``, ``sm3_secret = "..."``).
CREDENTIAL_APP_ID = "app_id"
CREDENTIAL_SM4_KEY = "sm4_key"
CREDENTIAL_SM3_SECRET = "sm3_secret"
#: The mock's demo appId / SM4 key (16 bytes) / SM3 secret ("Mock-wide demo secrets" table).
DEFAULT_APP_ID = "essc-mock"
DEFAULT_SM4_KEY = "essc-mock-sm4key"
DEFAULT_SM3_SECRET = "mock-gm-secret"
#: "SM4 key (16 bytes)".
SM4_KEY_BYTES = 16

# --- paths ------------------------------------------------------------------------------------
#: "POST /gm/api/<method>" with one method per operation.
PATH = "/gm/api/{method}"
METHOD_CARD_QUERY = "card.query"
METHOD_IDENTITY_VERIFY = "identity.verify"
METHOD_CARD_SIGN = "card.sign"
METHOD_SERVICE_LIST = "service.list"
METHOD_HEALTH = "health"
#: contract 1.2 ("gm-json", the e-SSC in use)
METHOD_CARD_STATUS = "card.status"
METHOD_PAY_ENABLE = "card.pay.enable"
METHOD_PASSWORD_RESET = "password.reset"
METHOD_CONTRIBUTIONS = "contribution.query"
METHOD_SETTLE = "medical.settle"

# --- value maps -------------------------------------------------------------------------------
#: Contract second factor -> ``yzlx`` ("yzlx": "sms"/"password").
FACTORS = {"sms": "sms", "password": "password"}

#: Wire ``kzt`` (status in Chinese) -> contract status ("Card statuses" table, gm-json column).
#: 临时挂失 and 应用锁定 are the longer wordings of docs/domain.md ("Card statuses"), accepted as well.
CARD_STATUSES = {
    "正常": "normal",
    "挂失": "reported_lost",
    "临时挂失": "reported_lost",
    "封存": "sealed",
    "注销": "cancelled",
    "锁定": "locked",
    "应用锁定": "locked",
}

#: Wire ``gfbb`` (card specification version) is already the contract's "2"/"3".
GENERATIONS = {"2": "2", "3": "3"}

#: Contract ``sign_level`` <-> wire ``qydj`` (an int both ways: "qydj": 1/2).
SIGN_LEVELS = {1: 1, 2: 2}

#: Wire ``fwdm`` -> contract service code ("services" table, gm-json column).
SERVICES = {"sfrz": "identity_login", "sbfw": "social_security", "jyfw": "employment", "zfjs": "payment",
            "yljs": "medical_bill"}

#: Health payload ``{"zt": "up"}`` is the only documented value; an explicit "down" means down,
#: anything else the city says is read as degraded.
HEALTH_UP = "up"
HEALTH_DOWN = "down"

#: settle_medical: contract ``action`` -> ``czlx`` (预结算 / 结算 / 冲正).
SETTLE_ACTIONS = {"pre_settle": "yjs", "confirm": "js", "reverse": "cz"}
#: Wire ``jszt`` -> contract settlement state.
SETTLEMENT_STATES = {"01": "pre_settled", "02": "settled", "03": "reversed"}
#: Wire contribution ``zt`` -> contract status (已缴 / 欠缴).
CONTRIBUTION_STATUSES = {"yj": "paid", "qj": "owed"}

# --- result codes -----------------------------------------------------------------------------
#: ``code`` of a successful answer (an int).
SUCCESS = 0
#: ``code`` the city uses when OUR signData does not verify: then its answer cannot verify with
#: our secret either, so it is reported as a rejection, not as a malformed answer.
BAD_SIGN_DATA = 40001
#: ``code`` of the result-code table -> what it means for the contract:
#: ``not_opened`` -> CityNotOpened, ``not_synced`` -> RecordNotSynced (payload ``retryAfter``),
#: ``card_status`` -> CardStatusAbnormal (payload ``kzt``), ``identity`` -> IdentityMismatch,
#: ``rejected`` -> ContractViolation (bad signData, undecryptable encryptData, bad field, city not
#: served here: our keys or translation are wrong, retrying won't help).
ERRORS = {
    50101: "not_opened",
    50102: "not_synced",
    50103: "card_status",
    50104: "identity",
    50105: "identity",
    50106: "credential_unknown",
    50107: "settlement_unknown",
    50108: "settlement_conflict",
    40001: "rejected",
    40002: "rejected",
    40003: "rejected",
    40004: "rejected",
}
#: Why a rejection happened, for the error detail (the city's own ``message`` is never repeated).
REJECTIONS = {
    40001: "bad signData: check [credentials] app_id/sm3_secret",
    40002: "encryptData cannot be decrypted: check [credentials] sm4_key",
    40003: "missing or invalid field",
    40004: "city not served by this system",
}
#: Payload key of 50102 carrying the retry hint in seconds.
RETRY_AFTER_KEY = "retryAfter"
#: Payload key of 50103 carrying the wire card status.
STATUS_KEY = "kzt"
#: Payload key of 50108 carrying the settlement's wire state.
SETTLEMENT_STATE_KEY = "jszt"

#: Wire field names we send; a 40003 ``message`` "names the field", and we repeat only these names
#: (never the city's free text, which could echo personal data).
REQUEST_FIELDS = ("sfzh", "xm", "xzqh", "rlToken", "yzlx", "yzm", "yzid", "qd", "qydj", "appId", "timestamp",
                  "encryptData", "signData", "qyh", "xmm", "ksny", "jsny", "czlx", "jsid", "ywlx", "jgbm", "jgmc",
                  "fymx", "xmbm", "xmmc", "lb", "je", "sl")
