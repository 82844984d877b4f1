"""Schema validation for the contract: fast on the hot path, precise on failure.

Each schema is compiled ONCE per process with fastjsonschema (a few microseconds per
call) and shared by every city. Only when that says "invalid" do we ask jsonschema's
Draft 2020-12 validator for the precise JSON path and rule, so the error a contributor
reads names exactly what is wrong.
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from essc import schemas as _schemas

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator, ValidationError
    from referencing import Registry

__all__ = ["SchemaProblem", "Validator", "validator"]


@dataclass(frozen=True)
class SchemaProblem:
    """One schema violation: where (JSON path), which rule, and a readable message."""

    schema: str
    path: str
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message} (schema {self.schema}, rule '{self.rule}')"


def _local_ref(uri: str) -> dict[str, Any]:
    if not uri.startswith(_schemas.BASE_URI):
        raise LookupError(f"refusing to fetch non-local schema {uri}")
    return _schemas.load(uri[len(_schemas.BASE_URI):].split("#")[0][: -len(".schema.json")])


def _inline_refs(node: Any, depth: int = 0) -> Any:
    """A copy of ``node`` with every ``$ref`` into our schemas replaced by its target.

    fastjsonschema turns each ``$ref`` into a function call with several arguments; inlined,
    the generated code is straight-line: 4x faster on a manifest, 2x on a card record."""
    if depth > 32:  # our schemas are not recursive; refuse rather than loop
        raise ValueError("schema $ref nesting deeper than 32")
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(_schemas.BASE_URI):
            uri, _, fragment = ref.partition("#")
            target: Any = _local_ref(uri)
            for part in filter(None, fragment.split("/")):
                target = target[part]
            rest = {k: _inline_refs(v, depth + 1) for k, v in node.items() if k != "$ref"}
            return {**_inline_refs(target, depth + 1), **rest}
        return {k: _inline_refs(v, depth + 1) for k, v in node.items()}
    if isinstance(node, list):
        return [_inline_refs(v, depth + 1) for v in node]
    return node


_registry: Registry[Any] | None = None


def _referencing_registry() -> Registry[Any]:
    global _registry
    if _registry is None:
        from referencing import Registry, Resource  # noqa: F811 - lazy import

        _registry = Registry().with_resources(
            (_schemas.BASE_URI + f"{n}.schema.json", Resource.from_contents(_schemas.load(n)))
            for n in _schemas.names()
        )
    return _registry


class Validator:
    """A compiled schema. ``is_valid`` is the fast path; ``problems`` the precise one."""

    def __init__(self, name: str) -> None:
        import fastjsonschema

        self.name = name
        self.schema = _schemas.load(name)
        self._fast: Callable[[Any], Any] = fastjsonschema.compile(
            _inline_refs(self.schema), handlers={"https": _local_ref}, use_default=False
        )
        self._precise: Draft202012Validator | None = None
        self._exc = fastjsonschema.JsonSchemaException

    def is_valid(self, data: Any) -> bool:
        try:
            self._fast(data)
        except self._exc:
            return False
        return True

    def problems(self, data: Any) -> list[SchemaProblem]:
        """Every violation, most relevant first (empty when valid)."""
        precise = self._precise
        if precise is None:
            import jsonschema

            precise = self._precise = jsonschema.Draft202012Validator(
                self.schema, registry=_referencing_registry(), format_checker=jsonschema.FormatChecker()
            )
        errors = sorted(_closest(precise.iter_errors(data)), key=lambda e: (-len(e.absolute_path), e.json_path))
        out = [SchemaProblem(self.name, e.json_path, str(e.validator), _describe(e)) for e in errors]
        if not out and not self.is_valid(data):  # the two engines disagree: report, never pass silently
            out.append(SchemaProblem(self.name, "$", "fast-validator", "rejected by the compiled validator"))
        return out

    def first_problem(self, data: Any) -> SchemaProblem | None:
        if self.is_valid(data):
            return None
        problems = self.problems(data)
        return problems[0] if problems else None


def _closest(errors: Iterable[ValidationError]) -> list[ValidationError]:
    """The errors, an ``anyOf`` that failed replaced by the errors of its closest alternative (the
    one with the fewest): a credential lacking ``sign_date`` reads "'sign_date' is required", not
    "does not match any of the alternatives"."""
    out: list[ValidationError] = []
    for error in errors:
        if error.validator == "anyOf" and error.context:
            branches: dict[Any, list[ValidationError]] = {}
            for sub in error.context:
                branches.setdefault(sub.schema_path[0] if sub.schema_path else 0, []).append(sub)
            best: list[ValidationError] = []
            for group in branches.values():
                if not best or len(group) < len(best):
                    best = group
            out += best
        else:
            out.append(error)
    return out


def _describe(error: ValidationError) -> str:
    """jsonschema's message, without echoing the offending value (it may be personal data)."""
    v = error.validator
    if v == "required":
        return error.message.replace(" is a required property", " is required")
    if v == "additionalProperties":
        return "unexpected property (" + error.message.split("(")[-1]
    if v in ("pattern", "enum", "const", "type", "minLength", "maxLength", "minimum", "maximum",
             "exclusiveMinimum", "uniqueItems", "minItems", "contains", "format"):
        return f"value breaks '{v}': {_rule_text(error)}"
    return f"value breaks '{v}'"


def _rule_text(error: ValidationError) -> str:
    v, rv = error.validator, cast(Any, error.validator_value)  # set on every error jsonschema reports
    if v == "pattern":
        return f"must match {rv}"
    if v == "enum":
        return "must be one of " + ", ".join(map(repr, rv))
    if v == "const":
        return f"must be {rv!r}"
    if v == "type":
        return f"must be of type {rv}"
    if v == "contains":
        return "must contain " + repr(rv.get("const", rv))
    return f"{v} {rv!r}"


_cache: dict[str, Validator] = {}
_lock = threading.Lock()


def validator(name: str) -> Validator:
    """The shared compiled :class:`Validator` for schema ``name``."""
    v = _cache.get(name)
    if v is None:
        with _lock:
            v = _cache.get(name)
            if v is None:
                v = _cache[name] = Validator(name)
    return v
