"""Citizen ID numbers (GB 11643-1999): 6-digit division code, 8-digit birth date,
3-digit sequence (odd = male) and a check character."""
from __future__ import annotations

import datetime as _dt
import operator

from .errors import InvalidInput

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"


_ZERO_OFFSET = ord("0") * sum(_WEIGHTS)


def check_char(first17: str) -> str:
    """The check character for the first 17 digits (ASCII arithmetic in C: ~1 µs)."""
    return _CHECK[(sum(map(operator.mul, first17.encode("ascii"), _WEIGHTS)) - _ZERO_OFFSET) % 11]


def make_id_number(division: str, birth: _dt.date, sequence: int) -> str:
    """Build a valid ID number (used by the mock's synthetic citizens)."""
    body = f"{division}{birth:%Y%m%d}{sequence:03d}"
    return body + check_char(body)


def validate_id_number(value: object, field: str = "aac002") -> str:
    """Return the ID number upper-cased, or raise :class:`InvalidInput` saying what is
    wrong - without echoing the number itself."""
    if not isinstance(value, str):
        raise InvalidInput("the ID number must be a string", field=field, rule="type")
    value = value.strip().upper()
    well_formed = len(value) == 18 and value.isascii() and value[:17].isdigit()
    if not well_formed or not (value[17].isdigit() or value[17] == "X"):
        raise InvalidInput("the ID number must be 17 digits and a digit or X (18 characters)", field=field,
                           rule="format")
    try:  # date() is ~20x cheaper than strptime on this hot path
        _dt.date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        raise InvalidInput("the birth date inside the ID number is not a real date", field=field,
                           rule="birth-date") from None
    if check_char(value[:17]) != value[17]:
        raise InvalidInput("the ID number's check character does not match (GB 11643 checksum)", field=field,
                           rule="checksum")
    return value
