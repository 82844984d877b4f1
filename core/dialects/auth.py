"""Authentication and integrity schemes of the spec dialects, by name.

* ``none``;
* ``bearer`` - ``Authorization: Bearer <token credential>``;
* ``signature`` - a signature over a template of request fields, put at a request path:
  ``hmac-sha256`` keyed with a credential, or a digest (``sha256``, ``md5`` as older systems
  sign, ``sm3``) of the template (which then names the secret with ``${credential:NAME}``);
* ``code`` - the escape hatch: ``module:function(wire, context, verify=False)``.

The template language: ``${a.b}`` a request field, ``${canonical:PATH}`` the ``k=v&k=v``
string (sorted, empty values skipped) over the fields directly under PATH (``*``: the whole
request but the signature), ``${credential:NAME}``.

Both sides use the same code: :func:`sign` (the platform) and :func:`check` (the mock).
"""
from __future__ import annotations

import hashlib
import hmac
import importlib
import re
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any

from ..signing import canonical_string, sm3_hex
from .wire import get_path, leaves, set_path

__all__ = ["sign", "check", "AuthRefused", "ALGORITHMS", "render_template"]

_FIELD = re.compile(r"\$\{([^}]+)\}")

ALGORITHMS: dict[str, Callable[[str, str | None], str]] = {
    "hmac-sha256": lambda text, key: hmac.new((key or "").encode(), text.encode(), hashlib.sha256).hexdigest(),
    "sha256": lambda text, _key: hashlib.sha256(text.encode()).hexdigest(),
    "md5": lambda text, _key: hashlib.md5(text.encode(), usedforsecurity=False).hexdigest(),
    "sm3": lambda text, _key: sm3_hex(text),
}


class AuthRefused(Exception):
    """The mock refuses a request: ``kind`` is ``unauthorized`` or ``bad_signature``."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind, self.message = kind, message


def _into_leaf(auth: Mapping[str, Any]) -> str:
    return str(auth.get("into", "")).rsplit(".", 1)[-1]


def render_template(template: str, tree: Mapping[str, Any], credentials: Mapping[str, str],
                    exclude: str = "") -> str:
    def one(match: re.Match[str]) -> str:
        token = match.group(1)
        if token.startswith("canonical:"):
            where = token[len("canonical:"):]
            node = tree if where == "*" else get_path(tree, where, {})
            return canonical_string(leaves(node), exclude=(exclude,))
        if token.startswith("credential:"):
            return credentials.get(token[len("credential:"):], "")
        value = get_path(tree, token, "")
        return "" if isinstance(value, Mapping | list) else str(value)

    return _FIELD.sub(one, template)


def _signature(auth: Mapping[str, Any], tree: Mapping[str, Any], credentials: Mapping[str, str]) -> str:
    text = render_template(auth["template"], tree, credentials, exclude=_into_leaf(auth))
    key = credentials.get(auth["key"]) if auth.get("key") else None
    value = ALGORITHMS[auth["algorithm"]](text, key)
    return value.upper() if auth.get("case") == "upper" else value


def _function(auth: Mapping[str, Any]) -> Callable[..., Any]:
    module, _, name = str(auth["function"]).partition(":")
    return getattr(importlib.import_module(module), name)  # type: ignore[no-any-return]


def sign(auth: Mapping[str, Any], tree: dict[str, Any], headers: MutableMapping[str, str],
         credentials: Mapping[str, str]) -> None:
    """Authenticate the request in place (tree and headers)."""
    scheme = auth.get("scheme", "none")
    if scheme == "bearer":
        headers["Authorization"] = f"Bearer {credentials[auth['token']]}"
    elif scheme == "signature":
        value = _signature(auth, tree, credentials)
        into = str(auth["into"])
        if into.startswith("header."):
            headers[into[len("header."):]] = value
        else:
            set_path(tree, into, value)
    elif scheme == "code":
        _function(auth)(tree, {"headers": headers, "credentials": credentials})


def check(auth: Mapping[str, Any], tree: Mapping[str, Any], headers: Mapping[str, str],
          credentials: Mapping[str, str]) -> None:
    """The city side: raise :class:`AuthRefused` when the request is not authentic."""
    scheme = auth.get("scheme", "none")
    if scheme == "bearer":
        kind, _, token = headers.get("Authorization", "").partition(" ")
        if kind.lower() != "bearer" or not token.strip():
            raise AuthRefused("unauthorized", "missing bearer token (Authorization: Bearer <token>)")
        if not hmac.compare_digest(token.strip().encode(), credentials[auth["token"]].encode()):
            raise AuthRefused("unauthorized", "invalid bearer token")
    elif scheme == "signature":
        into = str(auth["into"])
        given = headers.get(into[len("header."):], "") if into.startswith("header.") else get_path(tree, into, "")
        if not isinstance(given, str) or not given:
            raise AuthRefused("bad_signature", f"missing signature: {into}")
        expected = _signature(auth, tree, credentials)
        if not hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode()):
            raise AuthRefused("bad_signature", f"invalid signature: {into}")
    elif scheme == "code":
        try:
            _function(auth)(tree, {"headers": headers, "credentials": credentials}, verify=True)
        except AuthRefused:
            raise
        except Exception as err:
            raise AuthRefused("bad_signature", f"refused by the dialect's code: {type(err).__name__}") from None
