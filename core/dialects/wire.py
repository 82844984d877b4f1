"""Wire documents of the spec dialects: dotted paths into nested dicts, and the codecs that
turn such a tree into a body and back (JSON, form, XML, SOAP 1.1).

A tree is a dict of str -> str | int | dict | list. XML elements become dict entries
(namespaces dropped), repeated elements lists, leaves text.
"""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode

__all__ = ["get_path", "get_parts", "set_path", "leaves", "encode", "decode", "json_text", "WireError", "SOAP_ENV",
           "CONTENT_TYPES"]

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
CONTENT_TYPES = {"json": "application/json", "form": "application/x-www-form-urlencoded",
                 "xml": "application/xml", "soap11": "text/xml"}
_MISSING = object()
#: one encoder for every JSON body (json.dumps with options builds a new one per call)
_JSON = json.JSONEncoder(ensure_ascii=False)
#: deeper documents are refused (a city does not nest 30 levels; an attacker might)
MAX_DEPTH = 32


class WireError(ValueError):
    """A body that cannot be read in the dialect's encoding (the message names no value)."""


def json_text(value: Any) -> str:
    """``value`` as compact JSON text (Chinese characters kept): a list or object sent as one field."""
    return _JSON.encode(value)


def get_path(tree: Any, path: str, default: Any = None) -> Any:
    return get_parts(tree, path.split("."), default)


def get_parts(tree: Any, parts: Iterable[str], default: Any = None) -> Any:
    """:func:`get_path` with the path already split (the hot path of answer reading)."""
    node = tree
    for part in parts:
        if type(node) is not dict:  # decoded documents are plain dicts
            if not isinstance(node, Mapping):
                return default
        if part not in node:
            return default
        node = node[part]
    return node


def set_path(tree: dict[str, Any], path: str, value: Any) -> None:
    parts = path.split(".")
    node = tree
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[parts[-1]] = value


def leaves(tree: Any, prefix: str = "") -> dict[str, Any]:
    """Every scalar under ``tree`` by its leaf name (the name a canonical string uses)."""
    out: dict[str, Any] = {}
    if isinstance(tree, Mapping):
        for key, value in tree.items():
            if isinstance(value, Mapping | list):
                continue
            out[str(key)] = value
    return out


# -- codecs -------------------------------------------------------------------------------------
def _to_xml(parent: ET.Element, tree: Mapping[str, Any]) -> None:
    for key, value in tree.items():
        items = value if isinstance(value, list) else [value]
        for item in items:
            child = ET.SubElement(parent, key)
            if isinstance(item, Mapping):
                _to_xml(child, item)
            elif item is not None:
                child.text = str(item)


def _from_xml(element: ET.Element, depth: int = 0) -> Any:
    if depth > MAX_DEPTH:
        raise WireError("the XML document is nested too deeply")
    children = list(element)
    if not children:
        return element.text or ""
    out: dict[str, Any] = {}
    for child in children:
        tag = child.tag.rsplit("}", 1)[-1]
        value = _from_xml(child, depth + 1)
        if tag in out:
            previous = out[tag]
            out[tag] = previous + [value] if isinstance(previous, list) else [previous, value]
        else:
            out[tag] = value
    return out


def encode(tree: Mapping[str, Any], encoding: str, transport: Mapping[str, Any], *, answer: bool = False,
           fault: Mapping[str, Any] | None = None) -> bytes:
    """The body for ``tree``; for soap11 ``fault`` makes it a SOAP Fault instead."""
    charset = str(transport.get("charset", "utf-8"))
    if encoding == "json":
        return _JSON.encode(tree).encode(charset)
    if encoding == "form":
        return urlencode({k: v for k, v in tree.items() if not isinstance(v, Mapping | list)}).encode(charset)
    if encoding == "xml":
        root = ET.Element(str(transport.get("xml_root", "ROOT")))
        _to_xml(root, tree)
        return b'<?xml version="1.0" encoding="' + charset.upper().encode() + b'"?>' + ET.tostring(
            root, encoding="unicode").encode(charset)
    if encoding == "soap11":
        ET.register_namespace("soapenv", SOAP_ENV)
        ns = transport.get("namespace", "")
        env = ET.Element(f"{{{SOAP_ENV}}}Envelope")
        ET.SubElement(env, f"{{{SOAP_ENV}}}Header")
        body = ET.SubElement(env, f"{{{SOAP_ENV}}}Body")
        if fault is not None:
            element = ET.SubElement(body, f"{{{SOAP_ENV}}}Fault")
            _to_xml(element, fault)
        else:
            name = transport.get("response_element" if answer else "request_element", "Message")
            element = ET.SubElement(body, f"{{{ns}}}{name}" if ns else name)
            _to_xml(element, tree)
        return b'<?xml version="1.0" encoding="' + charset.upper().encode() + b'"?>' + ET.tostring(
            env, encoding="unicode").encode(charset)
    raise ValueError(f"unknown encoding {encoding!r}")


def decode(body: bytes, encoding: str, transport: Mapping[str, Any]) -> dict[str, Any]:
    """The tree of a body; :class:`WireError` when it is not a document of ``encoding``.
    A SOAP Fault decodes as ``{"Fault": {...}}``."""
    charset = transport.get("charset", "utf-8")
    if encoding == "json" and charset == "utf-8":  # the hot path: json reads UTF-8 bytes itself
        try:
            tree = json.loads(body)
        except RecursionError:
            raise WireError("the JSON document is nested too deeply") from None
        except ValueError:  # JSONDecodeError, UnicodeDecodeError
            raise WireError("the body is not UTF-8 JSON") from None
        if not isinstance(tree, dict):
            raise WireError("the body is not a JSON object")
        return tree
    try:
        text = body.decode(charset)
    except (UnicodeDecodeError, LookupError):
        raise WireError(f"the body is not {charset} text") from None
    if encoding == "json":
        try:
            tree = json.loads(text)
        except RecursionError:
            raise WireError("the JSON document is nested too deeply") from None
        except ValueError:
            raise WireError("the body is not JSON") from None
        if not isinstance(tree, dict):
            raise WireError("the body is not a JSON object")
        return tree
    if encoding == "form":
        try:
            return dict(parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text), max_num_fields=200))
        except ValueError:
            raise WireError("the body is not a form") from None
    from defusedxml import ElementTree as SafeET  # no entities, no external references

    try:
        root = SafeET.fromstring(body)
    except Exception:  # ParseError, defusedxml's refusals, recursion
        raise WireError("the body is not well-formed XML") from None
    if encoding == "xml":
        tree = _from_xml(root)
        return tree if isinstance(tree, dict) else {}
    if root.tag != f"{{{SOAP_ENV}}}Envelope":
        raise WireError("the body is not a SOAP 1.1 envelope")
    body_el = root.find(f"{{{SOAP_ENV}}}Body")
    if body_el is None or len(body_el) != 1:
        raise WireError("the SOAP envelope has no Body with one element")
    element = body_el[0]
    content = _from_xml(element)
    if element.tag == f"{{{SOAP_ENV}}}Fault":
        return {"Fault": content if isinstance(content, dict) else {}}
    return content if isinstance(content, dict) else {}
