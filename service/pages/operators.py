"""Operators of the console and how they log in.

Credentials live in a TOML file (``ServiceConfig.operators_file`` / ``ESSC_OPERATORS_FILE``), one
table per operator with a password hash made by werkzeug (``essc operator-password`` prints
one; scrypt by default)::

    [operators.ops-lee]
    password_hash = "scrypt:32768:8:1$..."
    description = "on-call operator"

Without a file the packaged ``operators.default.toml`` holds one DEMO operator (``admin`` /
``demo-admin``): demo operators may log in from the loopback address only, and a warning is
logged at start-up. Failed logins are throttled per operator name and address
(essc.service.throttle.FailureThrottle: ``CONSOLE_LOGIN_LIMIT`` failures, default 5, per
``CONSOLE_LOGIN_WINDOW_S``, default 300 s; counters in Redis when the queue is Redis).
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from werkzeug.security import check_password_hash

from essc.core.masking import get_logger

from ..channels import named_tables

log = get_logger("essc.service.pages.operators")

DEFAULT_FILE = Path(__file__).resolve().parent / "operators.default.toml"
#: checked when the name is unknown, so that timing does not tell which operators exist
_DUMMY_HASH = "scrypt:32768:8:1$essc-no-such-operator$" + "0" * 128


@dataclass(frozen=True)
class Operator:
    name: str
    password_hash: str = field(repr=False)
    description: str = ""
    demo: bool = False


class Operators:
    def __init__(self, operators: dict[str, Operator], source: str = "<memory>") -> None:
        self.operators = dict(operators)
        self.source = source

    @classmethod
    def load(cls, path: str | Path | None = None) -> Operators:
        """Read the operators file (the packaged demo file when ``path`` is None); a broken file
        fails at start-up, naming what is wrong."""
        path = Path(path) if path else DEFAULT_FILE
        operators = {}
        for name, entry in named_tables(path, "operators", "operator"):
            hashed = entry.get("password_hash") if isinstance(entry, dict) else None
            if not isinstance(hashed, str) or "$" not in hashed:
                raise ValueError(f"{path}: operator {name!r} needs a password_hash (essc operator-password)")
            operators[name] = Operator(name, hashed, str(entry.get("description", "")), bool(entry.get("demo", False)))
        if any(op.demo for op in operators.values()):
            log.warning("operators file %s holds DEMO-ONLY credentials (loopback logins only); "
                        "configure ESSC_OPERATORS_FILE", path)
        return cls(operators, str(path))

    def check(self, name: str, password: str, address: str) -> Operator | None:
        """The operator when the password matches (a demo operator only from loopback), else None."""
        operator = self.operators.get(name)
        hashed = operator.password_hash if operator else _DUMMY_HASH
        try:
            matches = check_password_hash(hashed, password)
        except ValueError:  # a hash of an unknown method
            matches = False
        if operator is None or not matches:
            return None
        if operator.demo and not _loopback(address):
            log.warning("demo operator %s refused from a non-loopback address", name)
            return None
        return operator


def _loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False
