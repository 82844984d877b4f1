"""Masking of personal data: ID numbers, names, card numbers, phones, face tokens.

Use the ``mask_*`` helpers when you *mean* to show a hint of a value; install
:class:`PiiFilter` (every logger from :func:`get_logger` has it) as the
safety net that scrubs anything that still looks like personal data from log records.
"""
from __future__ import annotations

import logging
import re

__all__ = ["mask_id", "mask_name", "mask_card", "mask_phone", "scrub", "PiiFilter", "get_logger"]


def mask_id(value: str | None) -> str:
    """``11010119900307803X`` -> ``110***********803X``... keeps 3 + 4 characters."""
    if not value:
        return ""
    value = str(value)
    return value[:3] + "*" * max(len(value) - 7, 0) + value[-4:] if len(value) > 7 else "*" * len(value)


def mask_name(value: str | None) -> str:
    """``张三`` -> ``张*``; ``欧阳娜娜`` -> ``欧***``."""
    if not value:
        return ""
    return value[0] + "*" * (len(value) - 1)


def mask_card(value: str | None) -> str:
    """``K13822465`` -> ``K1*****65``."""
    if not value:
        return ""
    return value[:2] + "*" * max(len(value) - 4, 0) + value[-2:] if len(value) > 4 else "*" * len(value)


def mask_phone(value: str | None) -> str:
    """``13812345678`` -> ``138****5678``."""
    if not value:
        return ""
    return value[:3] + "****" + value[-4:] if len(value) >= 8 else "*" * len(value)


_PATTERNS = [
    # 18-character citizen ID numbers (17 digits + digit/X), not inside longer digit runs
    (re.compile(r"(?<![0-9A-Za-z])(\d{6})(\d{8})(\d{3})([\dXx])(?![0-9A-Za-z])"), lambda m: mask_id(m.group(0))),
    # mainland mobile numbers
    (re.compile(r"(?<!\d)(1[3-9]\d)(\d{4})(\d{4})(?!\d)"), lambda m: mask_phone(m.group(0))),
    # 9-character card numbers such as K13822465
    (re.compile(r"(?<![0-9A-Za-z])([A-Z]\d{8})(?![0-9A-Za-z])"), lambda m: mask_card(m.group(0))),
    # face liveness tokens
    (re.compile(r"(face[_-]?token[\"']?\s*[:=]\s*[\"']?)([^\"'\s,&}]+)", re.I), lambda m: m.group(1) + "***"),
]


def scrub(text: str) -> str:
    """Mask everything in ``text`` that looks like an ID number, phone, card number or face token."""
    for pattern, repl in _PATTERNS:
        text = pattern.sub(repl, text)
    return text


class PiiFilter(logging.Filter):
    """A logging filter that masks personal data in the final message of every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = scrub(message)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        return True


_FILTER = PiiFilter()


def get_logger(name: str) -> logging.Logger:
    """``logging.getLogger(name)`` with :class:`PiiFilter` attached (idempotent).

    A logger's filters apply only to records logged on that very logger, so every module
    of the framework and every plugin gets its logger from here."""
    logger = logging.getLogger(name)
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
    return logger
