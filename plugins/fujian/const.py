"""Wire constants of the 福建 system: the pinyin-form dialect (docs/dialects.md, "pinyin-form").

Every value here is quoted from docs/dialects.md; the comment says which part.
"""
from __future__ import annotations

# --- credentials ---------------------------------------------------------------------------
#: Settings keys (``[credentials.fujian] appid = "..."``, ``secret = "..."``).
CREDENTIAL_APPID = "appid"
CREDENTIAL_SECRET = "secret"
#: The mock's demo appid / HMAC secret ("Mock-wide demo secrets" table); deployments set their own.
DEFAULT_APPID = "essc-mock"
DEFAULT_SECRET = "mock-hmac-secret"

# --- paths ------------------------------------------------------------------------------------
#: "Base path /pinyin"; every operation is a form POST to its own path (operations table).
PATH_CARD_QUERY = "/pinyin/card/query"
PATH_IDENTITY_VERIFY = "/pinyin/identity/verify"
PATH_CARD_SIGN = "/pinyin/card/sign"
PATH_SERVICE_LIST = "/pinyin/service/list"
PATH_HEALTH = "/pinyin/health"

# --- common fields ----------------------------------------------------------------------------
#: "nonce (any 8+ characters)": we send 32 random hex characters.
NONCE_HEX_BYTES = 16

# --- value maps -------------------------------------------------------------------------------
#: Contract second factor -> ``verify_type`` ("`1` SMS, `2` password").
VERIFY_TYPES = {"sms": "1", "password": "2"}

#: Wire ``aaz502`` -> contract status ("Card statuses" table, pinyin-form column).
CARD_STATUSES = {"1": "normal", "2": "reported_lost", "3": "sealed", "4": "cancelled", "5": "locked"}

#: Wire ``aaz508`` is already the contract's "2"/"3".
GENERATIONS = {"2": "2", "3": "3"}

#: Contract ``sign_level`` -> wire ``sign_level``, and the answer's ``signLevel`` ("1"/"2") -> int.
SIGN_LEVELS_OUT = {1: "1", 2: "2"}
SIGN_LEVELS_IN = {"1": 1, "2": 2}

#: Wire ``fwbm`` -> contract service code ("services" table, pinyin-form column).
SERVICES = {"01": "identity_login", "02": "social_security", "03": "employment", "04": "payment",
            "05": "medical_bill"}

#: Health answer ``data: {"status": "ok"}`` is the only documented value; an explicit "down" means
#: down, anything else the city says is read as degraded.
HEALTH_UP = "ok"
HEALTH_DOWN = "down"

# --- result codes -----------------------------------------------------------------------------
#: ``code`` of a successful answer.
SUCCESS = "0000"
#: ``code`` of the result-code table -> what it means for the contract:
#: ``not_opened`` -> CityNotOpened, ``not_synced`` -> RecordNotSynced (``data.retry_after``),
#: ``card_status`` -> CardStatusAbnormal (``data.aaz502``), ``identity`` -> IdentityMismatch,
#: ``rejected`` -> ContractViolation (bad signature, bad field, clock skew, city not served here:
#: our configuration or translation is wrong, retrying won't help).
ERRORS = {
    "1001": "not_opened",
    "1002": "not_synced",
    "1003": "card_status",
    "1004": "identity",
    "1005": "identity",
    "9001": "rejected",
    "9002": "rejected",
    "9003": "rejected",
    "9004": "rejected",
}
#: Why a rejection happened, for the error detail (the city's own ``msg`` is never repeated).
REJECTIONS = {
    "9001": "bad signature: check [credentials] appid/secret",
    "9002": "missing or invalid field",
    "9003": "timestamp too far off: check the host clock",
    "9004": "city not served by this system",
}
#: ``data`` key of 1002 carrying the retry hint in seconds.
RETRY_AFTER_KEY = "retry_after"
#: ``data`` key of 1003 carrying the wire card status.
STATUS_KEY = "aaz502"

#: Wire field names we send; a 9002 ``msg`` "names the field", and we repeat only these names
#: (never the city's free text, which could echo personal data).
REQUEST_FIELDS = ("aac002", "aac003", "aab301", "face_token", "verify_type", "verify_code", "verify_id", "channel",
                  "sign_level", "appid", "timestamp", "nonce", "sign")
