"""Assertions for a plugin's own unit tests (this repo's and scaffolded ones)."""
from __future__ import annotations

import json
from collections.abc import Iterable

from essc.core.adapter import OPERATIONS
from essc.core.errors import EsscError
from essc.core.schemas import validator


def assert_valid(result: dict, operation: str) -> None:
    """``result`` is a valid response of the contract ``operation``."""
    problems = validator(OPERATIONS[operation].response_schema).problems(result)
    assert problems == [], "; ".join(map(str, problems))


def assert_no_personal_data(err: EsscError, values: Iterable[str]) -> None:
    """None of ``values`` (ID number, name, card number...) appears in the error or its object."""
    texts = (str(err), json.dumps(err.to_dict(), ensure_ascii=False))
    for value in values:
        for text in texts:
            assert value not in text, "personal data in an error"
