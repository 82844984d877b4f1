"""Citizens' names as the activation API takes them (``CitizenName`` in ``schemas/openapi.json``,
a subset of the contract's ``common.schema.json#/$defs/name``): 1-40 characters of Chinese
script, the CJK extensions included (𠀾), with a middle dot between the parts of a minority
name (阿依古丽·买买提) but never alone or at either end."""
from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache

from essc import schemas
from essc.core.errors import InvalidInput


def string_rule(schema: dict) -> Callable[[str], bool]:
    """A check of one string property of a contract schema: length, pattern, and no
    control or other unprintable characters (JSON Schema's ``$`` would let a final
    newline through)."""
    pattern = re.compile(schema["pattern"]) if "pattern" in schema else None
    low, high = schema.get("minLength", 0), schema.get("maxLength", 1 << 30)

    def ok(value: str) -> bool:
        return (low <= len(value) <= high and value.isprintable()
                and (pattern is None or pattern.search(value) is not None))

    return ok


@cache
def _name_rule() -> Callable[[str], bool]:
    import json

    with (schemas.SCHEMA_DIR / "openapi.json").open(encoding="utf-8") as fh:
        return string_rule(json.load(fh)["components"]["schemas"]["CitizenName"])


def check_name(value: object, field: str = "aac003") -> str:
    """The name, or INVALID_INPUT naming the field and the rule (never the value)."""
    if not isinstance(value, str) or not _name_rule()(value):
        raise InvalidInput("the name must be 1-40 Chinese characters (CJK extensions included), a middle dot "
                           "only between parts", field=field, rule="pattern")
    return value
