"""Wire constants of the 浙江 provincial platform: the rest-json dialect (docs/dialects.md, "rest-json").

Every value here is quoted from docs/dialects.md; the comment says which part.
"""
from __future__ import annotations

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
