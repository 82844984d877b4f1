"""Wire constants of the ministry's national gateway: the xml-envelope dialect (docs/dialects.md,
"xml-envelope").

Every value here is quoted from docs/dialects.md; the comment says which part.
"""
from __future__ import annotations

from datetime import timedelta, timezone

# --- credentials ---------------------------------------------------------------------------
#: Settings keys (``[credentials.mohrss] sender_id = "..."``, ``dsign_key = "..."``).
CREDENTIAL_SENDER_ID = "sender_id"
CREDENTIAL_DSIGN_KEY = "dsign_key"
#: The mock's demo SenderID / DSIGN key ("Mock-wide demo secrets" table); deployments set their own.
DEFAULT_SENDER_ID = "essc-mock"
DEFAULT_DSIGN_KEY = "mock-xml-key"

# --- envelope ---------------------------------------------------------------------------------
#: "POST /xml/gateway, Content-Type: application/xml; charset=utf-8, UTF-8 body".
PATH = "/xml/gateway"
CONTENT_TYPE = "application/xml; charset=utf-8"
XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>\n'
#: The envelope's tags: ``<ROOT><HEADER>...</HEADER><BODY>...</BODY></ROOT>``.
ROOT, HEADER, BODY = "ROOT", "HEADER", "BODY"
#: HEADER children, in the order of the documented example.
MSG_TYPE, SENDER_ID, MSG_ID, SEND_TIME, DSIGN = "MsgType", "SenderID", "MsgID", "SendTime", "DSIGN"
#: The answer's HEADER adds these two.
RESULT_CODE, RESULT_MSG = "ResultCode", "ResultMsg"
#: ``SendTime`` looks like ``20261125103000`` (YYYYMMDDHHMMSS). The document gives no zone; the
#: gateway is a Chinese system, so we write China Standard Time (UTC+8).
SEND_TIME_FORMAT = "%Y%m%d%H%M%S"
SEND_TIME_ZONE = timezone(timedelta(hours=8), "CST")
#: ``DSIGN = sm3_hex(MsgType + MsgID + canonical_string(BODY) + "&key=" + key)``.
DSIGN_KEY_SEPARATOR = "&key="

# --- MsgTypes (operations table) --------------------------------------------------------------
MSG_CARD_QUERY = "CARD_QUERY"
MSG_IDENTITY_VERIFY = "IDENTITY_VERIFY"
MSG_CARD_SIGN = "CARD_SIGN"
MSG_SERVICE_LIST = "SERVICE_LIST"
MSG_HEALTH = "HEALTH"
#: SERVICE_LIST answers "repeated <SERVICE><CODE/><NAME/></SERVICE>" inside BODY.
SERVICE, SERVICE_CODE, SERVICE_NAME = "SERVICE", "CODE", "NAME"

# --- value maps -------------------------------------------------------------------------------
#: Contract second factor -> ``VERIFYTYPE`` ("1 SMS, 2 password").
VERIFY_TYPES = {"sms": "1", "password": "2"}

#: Wire ``AAZ502`` -> contract status ("Card statuses" table, xml-envelope column: 0 is normal).
CARD_STATUSES = {"0": "normal", "1": "reported_lost", "2": "sealed", "3": "cancelled", "4": "locked"}

#: Wire ``AAZ508`` is the contract's "2"/"3" (card specification version, DOMAIN.md).
GENERATIONS = {"2": "2", "3": "3"}

#: Contract ``sign_level`` -> wire ``SIGNLEVEL`` text, and back.
SIGN_LEVELS_OUT = {1: "1", 2: "2"}
SIGN_LEVELS_IN = {"1": 1, "2": 2}

#: Wire ``CODE`` -> contract service code ("services" table, xml-envelope column).
SERVICES = {"A01": "identity_login", "A02": "social_security", "A03": "employment", "A04": "payment",
            "A05": "medical_bill"}

#: HEALTH answers ``STATUS`` = ``UP``, the only documented value; an explicit DOWN means down,
#: anything else the gateway says is read as degraded.
HEALTH_UP = "UP"
HEALTH_DOWN = "DOWN"

# --- result codes -----------------------------------------------------------------------------
#: ``ResultCode`` of a successful answer.
SUCCESS = "90000"
#: "envelope not parseable (HTTP 400)": the gateway could not read our MsgID, so it cannot echo it.
ENVELOPE_NOT_PARSEABLE = "99001"
#: ``ResultCode`` of the result-code table -> what it means for the contract:
#: ``not_opened`` -> CityNotOpened, ``not_synced`` -> RecordNotSynced (BODY ``RETRYAFTER``),
#: ``card_status`` -> CardStatusAbnormal (BODY ``AAZ502``), ``identity`` -> IdentityMismatch,
#: ``rejected`` -> ContractViolation (our envelope, DSIGN, MsgType, fields or city routing are
#: wrong: retrying won't help).
ERRORS = {
    "90101": "not_opened",
    "90102": "not_synced",
    "90103": "card_status",
    "90104": "identity",
    "90105": "identity",
    "99001": "rejected",
    "99002": "rejected",
    "99003": "rejected",
    "99004": "rejected",
    "99005": "rejected",
}
#: Why a rejection happened, for the error detail (the gateway's own ``ResultMsg`` is never repeated).
REJECTIONS = {
    "99001": "envelope not parseable",
    "99002": "bad DSIGN: check [credentials] sender_id/dsign_key",
    "99003": "unknown MsgType",
    "99004": "missing or invalid field",
    "99005": "city not served by this gateway",
}
#: BODY tag of 90102 carrying the retry hint in seconds.
RETRY_AFTER_TAG = "RETRYAFTER"
#: BODY tag of 90103 carrying the wire card status.
STATUS_TAG = "AAZ502"

#: Tags we send; a 99004 ``ResultMsg`` "names the field", and we repeat only these names (never the
#: gateway's free text, which could echo personal data).
REQUEST_FIELDS = ("AAC002", "AAC003", "AAB301", "FACETOKEN", "VERIFYTYPE", "VERIFYCODE", "VERIFYID", "CHANNEL",
                  "SIGNLEVEL", MSG_TYPE, SENDER_ID, MSG_ID, SEND_TIME, DSIGN)
