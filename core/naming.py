"""One naming style in the contract's payloads (contract 1.2): snake_case for every field that
is not a 人社 field code (``aac002``, ``aab301``, ``aaz500``...).

Contract 1.0 named the credential's fields in camelCase (``signNo``, ``signSeq``, ``signLevel``,
``signDate``) and its last day of validity ``validate``. Since 1.2 they are ``sign_no``,
``sign_seq``, ``sign_level``, ``sign_date`` and ``valid_until``; ``credential.schema.json``
accepts either set (the old names deprecated), so 1.0 and 1.1 plugins keep working, and the
registry hands every answer on in the new names only (:func:`normalise`, applied in
:meth:`essc.core.registry.Registry.call`): the service and the suite see one style.

Data stored before 1.2 is read through :func:`normalise` too; an API that must keep serving the
deprecated names for a while adds them back with :func:`with_deprecated`.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .errors import ContractViolation

__all__ = ["RENAMED", "normalise", "with_deprecated", "credential"]

#: response schema -> deprecated name -> its name since contract 1.2
RENAMED: dict[str, dict[str, str]] = {
    "credential": {"signNo": "sign_no", "signSeq": "sign_seq", "signLevel": "sign_level", "validate": "valid_until",
                   "signDate": "sign_date"},
}


def normalise(schema: str, payload: Mapping[str, Any]) -> dict[str, Any]:
    """``payload`` (an answer of ``schema``) with every deprecated name replaced by its new one.
    A payload carrying both names of a field with different values is a ContractViolation."""
    renamed = RENAMED.get(schema)
    out = dict(payload)
    if not renamed:
        return out
    for old, new in renamed.items():
        if old not in out:
            continue
        value = out.pop(old)
        if new in out and out[new] != value:
            raise ContractViolation(f"{schema}: '{old}' (deprecated) and '{new}' differ", path=f"$.{new}",
                                    rule="same-value-both-names", schema=schema)
        out.setdefault(new, value)
    return out


def with_deprecated(schema: str, payload: Mapping[str, Any]) -> dict[str, Any]:
    """The new names plus the deprecated ones (same values): for an API whose clients may still
    read the names of contract 1.0."""
    out = normalise(schema, payload)
    for old, new in RENAMED.get(schema, {}).items():
        if new in out:
            out[old] = out[new]
    return out


def credential(value: Mapping[str, Any] | None) -> dict[str, Any]:
    """A credential (an answer of activate, or one stored before contract 1.2) in the new names;
    ``{}`` for None."""
    return normalise("credential", value or {})
